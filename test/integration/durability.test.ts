import assert from 'node:assert/strict';
import { closeSync, existsSync, openSync, readdirSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { assertDelivered } from '../support/assertions.js';
import { allAckedSeen, consumeAll, type TimedRecord } from '../support/consume.js';
import { Daemon, testConfig } from '../support/daemon.js';
import { runDevice, type DeviceRun } from '../support/devices.js';
import { consumeUntil, startKafka } from '../support/kafka.js';
import { useSharedKafka } from '../support/shared-kafka.js';
import { paddedReading, startLoadDevice } from '../support/load.js';
import { waitFor } from '../support/poll.js';
import { publishSequence, publishUntilHeld } from '../support/publishing.js';
import { latestStats, lossesOf, lost, RssSampler, statsLines, type DaemonStats } from '../support/stats.js';

const kafka = useSharedKafka();

/** Nothing listens there: every connect is refused at once. */
const DEAD_KAFKA = ['127.0.0.1:1'];
/** A stats line every second, so tests can poll the buffer depth and the counters. */
const STATS_EVERY_SEC = { level: 'info', stats_interval_secs: 1 };
/** How long Kafka stays away in the outage test, at least (from the moment its process is gone). */
const OUTAGE_MS = 4000;
/**
 * Peak RSS bound of the outage test. The brief suggested ~200 MB; measured peaks on a 2-core
 * test box were 190-270 MiB (V8 lets its heap grow under this load: the same run with
 * --max-old-space-size=64 peaks at ~160 MiB), so 200 would fail at random. 300 MiB still
 * catches a backlog held in memory: the backlog on disk reaches 100-200 MB of 1 KB readings.
 */
const RSS_BOUND_MIB = 300;
/** Payload size of the outage test's readings. */
const OUTAGE_PAYLOAD_BYTES = 1000;

/** A ~200-byte JSON reading that assertDelivered understands ({device, n}). */
const reading = (device: string, n: number, bytes = 200): string => paddedReading(device, n, bytes);

/** Distinct events (by sequence number) of the given records. */
function distinct(records: readonly TimedRecord[]): Map<number, { n: number; device: string }> {
  const out = new Map<number, { n: number; device: string }>();
  for (const r of records) {
    for (const e of r.batch.events) {
      const msg = JSON.parse(e.payload.toString()) as { n: number; device: string };
      out.set(e.seq, { n: msg.n, device: msg.device });
    }
  }
  return out;
}

/** Wall time of a test's phases, for its diagnostics. */
function phases(): { mark(name: string): void; describe(): string } {
  let last = Date.now();
  const out: string[] = [];
  return {
    mark(name) {
      const now = Date.now();
      out.push(`${name} ${((now - last) / 1000).toFixed(1)} s`);
      last = now;
    },
    describe: () => out.join(', '),
  };
}

/** [0,1,2,5,6] -> "0..2, 5..6" */
function describeRanges(sorted: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; i++) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}..${sorted[j]}`);
    i = j;
  }
  return parts.length === 0 ? 'none' : parts.join(', ');
}

function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
}

function stoppedLine(daemon: Daemon): { buffered_events?: number } | undefined {
  return daemon.lines.find((l) => l.msg === 'stopped') as { buffered_events?: number } | undefined;
}

test(
  `outage: Kafka stopped for ${OUTAGE_MS / 1000}+ s under QoS 1 load from 4 devices (1 KB readings) and started again: acknowledgements keep flowing, the backlog drains to 0, every acknowledged event arrives, and RSS stays under ${RSS_BOUND_MIB} MiB`,
  { timeout: 240_000 },
  async (t) => {
    const started = Date.now();
    const own = await startKafka();
    t.after(async () => {
      await own.stop();
      rmSync(own.dir, { recursive: true, force: true });
    });
    const topic = `it.outage.${Date.now()}`;
    const route = 'telemetry';
    const dir = Daemon.tempDir();
    const daemon = new Daemon(
      dir,
      testConfig(own.brokers, {
        routes: [{ name: route, match: 'devices/+device/#', topic, key: '{device}' }],
        log: STATS_EVERY_SEC,
      }),
    );
    t.after(async () => {
      await daemon.stop('SIGKILL').catch(() => undefined);
      rmSync(dir, { recursive: true, force: true }); // the buffer file keeps the size of the outage backlog (100+ MB)
    });
    const url = await daemon.start();
    const rss = new RssSampler(daemon.pid!, 100);
    t.after(() => rss.stop());
    rss.phase('load, Kafka up');

    let loadStopped = false;
    const devices = ['o1', 'o2', 'o3', 'o4'].map((d) =>
      startLoadDevice(url, d, () => loadStopped, { window: 10, payloadBytes: OUTAGE_PAYLOAD_BYTES }),
    );
    const acked = (): number => devices.reduce((n, d) => n + d.acked.length, 0);
    let ackedDuringOutage = 0;
    let outageMs: number;
    try {
      await waitFor(
        'events delivered to Kafka before the outage',
        () => (latestStats(daemon)?.stats.sent_events_total ?? 0) >= 1000,
        30_000,
      );

      rss.phase('kafka stopping');
      await own.stop();
      rss.phase('outage');
      const downAt = Date.now();
      const ackedAtDown = acked();
      const linesAtDown = daemon.lines.length;
      // Kafka is gone: the devices are still acknowledged and the backlog grows, for at least OUTAGE_MS
      await waitFor(
        'acknowledgements and a growing backlog while Kafka is down',
        () => {
          const backlog = statsLines(daemon, linesAtDown).map((l) => l.buffer?.events ?? 0);
          return (
            Date.now() - downAt >= OUTAGE_MS &&
            acked() >= ackedAtDown + 1000 &&
            backlog.length >= 2 &&
            backlog.at(-1)! > backlog[0]!
          );
        },
        OUTAGE_MS + 30_000,
        100,
      );
      ackedDuringOutage = acked() - ackedAtDown;

      rss.phase('kafka starting');
      await own.start();
      rss.phase('recovery under load');
      outageMs = Date.now() - downAt;
      const linesAtUp = daemon.lines.length;
      const sentAtUp = latestStats(daemon)!.stats.sent_events_total;
      const ackedAtUp = acked();
      // delivery resumes while the load goes on
      await waitFor(
        'delivery to resume after Kafka is back',
        () => statsLines(daemon, linesAtUp).some((l) => l.stats.sent_events_total >= sentAtUp + ackedDuringOutage),
        90_000,
        100,
      );
      await waitFor('acknowledgements after Kafka is back', () => acked() >= ackedAtUp + 500, 30_000);
    } finally {
      loadStopped = true;
    }
    const runs = await Promise.all(devices.map((d) => d.finished));
    const total = runs.reduce((n, r) => n + r.acked.length, 0);
    rss.phase('load stopped');

    const linesAtLoadStop = daemon.lines.length;
    const drained = await waitFor(
      'the backlog to drain to 0',
      () => statsLines(daemon, linesAtLoadStop).find((l) => l.buffer !== null && l.buffer.events === 0),
      90_000,
      100,
    );
    assert.equal(drained.buffer!.bytes, 0);

    const records = await consumeUntil(own.brokers, topic, allAckedSeen(runs), 90_000);
    const check = assertDelivered(records, runs, { exactlyOnce: false, gatewayId: 'gw-test' });

    assert.equal((await daemon.stop('SIGTERM')).code, 0, daemon.describe());
    rss.stop();
    assert.equal(stoppedLine(daemon)?.buffered_events, 0, 'nothing left buffered at shutdown');
    const final = latestStats(daemon)!;
    assert.equal(final.buffer?.events, 0);
    assert.deepEqual(lossesOf(final.stats, route), {}, 'no event counted as lost');
    assert.ok(rss.samples > 10, `RSS sampled ${rss.samples} times`);
    const peakBacklog = Math.max(...statsLines(daemon).map((l) => l.buffer?.events ?? 0));
    const peakBacklogBytes = Math.max(...statsLines(daemon).map((l) => l.buffer?.bytes ?? 0));
    t.diagnostic(
      `outage ${(outageMs / 1000).toFixed(1)} s (Kafka process gone until restarted): ${ackedDuringOutage} events acknowledged meanwhile, backlog peak ${peakBacklog} events, ${(peakBacklogBytes / 1_048_576).toFixed(0)} MiB on disk`,
    );
    t.diagnostic(
      `acknowledged ${total}, ${check.delivered} events read from Kafka, ${check.duplicates} duplicates by sequence number; send errors ${final.stats.send_errors_total}`,
    );
    t.diagnostic(
      `daemon peak RSS ${rss.peakMiB.toFixed(1)} MiB (${(rss.anonAtPeakKiB / 1024).toFixed(1)} MiB of it anonymous; kernel VmHWM ${(rss.hwmKiB / 1024).toFixed(1)} MiB) over ${rss.samples} samples; peak per phase, MiB: ${rss.describePhases()}; test ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    // the kernel's high-water mark catches a spike between two samples
    const peakMiB = Math.max(rss.peakKiB, rss.hwmKiB) / 1024;
    assert.ok(peakMiB < RSS_BOUND_MIB, `peak RSS ${peakMiB.toFixed(1)} MiB`);
  },
);

test(
  'full, when_full block: at the route max_bytes the next publish is held unacknowledged; nothing acknowledged is dropped; after a restart with Kafka reachable every acknowledged event arrives and new publishes are acknowledged',
  { timeout: 120_000 },
  async (t) => {
    const dir = Daemon.tempDir();
    const topic = `it.block.${Date.now()}`;
    const route = 'telemetry';
    const device = 'blk-1';
    const mqttTopic = `devices/${device}/telemetry`;
    const routes = [
      { name: route, match: 'devices/+device/#', topic, key: '{device}', when_full: 'block', max_bytes: 20_000 },
    ];

    const down = new Daemon(dir, testConfig(DEAD_KAFKA, { routes, log: STATS_EVERY_SEC }));
    t.after(() => down.stop('SIGKILL').catch(() => undefined));
    const url = await down.start();
    const client = await mqtt.connectAsync(url, { clientId: device, clean: true, reconnectPeriod: 0 });
    t.after(() => client.end(true));
    const { acked, held } = await publishUntilHeld(client, down, {
      topic: mqttTopic,
      payload: (n) => reading(device, n),
      max: 1000,
    });
    // 20000 bytes of ~200-byte readings plus their stored topic/route/key
    assert.ok(acked.length >= 40 && acked.length <= 100, `${acked.length} acknowledged before the route was full`);

    // held for a while: three more stats lines all report it held, and the device has no PUBACK
    const heldFrom = down.lines.length;
    await waitFor(
      'three more stats lines while the publish is held',
      () => statsLines(down, heldFrom).length >= 3,
      15_000,
    );
    for (const l of statsLines(down, heldFrom)) {
      assert.equal(l.stats.blocked_messages, 1, 'one message held');
      assert.equal(l.buffer?.events, acked.length, 'the buffer holds exactly the acknowledged events');
      assert.ok(
        l.health.reasons.some((r) => /acknowledgements held/.test(r)),
        `health reasons: ${l.health.reasons.join('; ')}`,
      );
    }
    assert.equal(held.state(), 'pending', 'the held publish is not acknowledged');
    assert.ok(
      down.lines.some((l) => l.code === 'EH_ERR_BUFFER_FULL' && l.how === 'held' && l.route === route),
      'holding is logged as EH_ERR_BUFFER_FULL',
    );

    assert.equal((await down.stop('SIGTERM')).code, 0, down.describe());
    assert.notEqual(held.state(), 'acked', 'a held message is not acknowledged at shutdown');
    client.end(true);
    assert.equal(stoppedLine(down)?.buffered_events, acked.length, 'the acknowledged events stay buffered');
    const downStats = down.lastStats() as unknown as DaemonStats;
    assert.equal(lost(downStats, 'dropped_full', route), 0, 'no dropped_full for a block route');
    assert.deepEqual(lossesOf(downStats, route), {}, 'nothing counted as lost');

    // the same state dir, Kafka reachable now
    const up = new Daemon(dir, testConfig(kafka.brokers, { routes, log: STATS_EVERY_SEC }));
    t.after(() => up.stop('SIGKILL').catch(() => undefined));
    const url2 = await up.start();
    assert.equal(up.lines.find((l) => l.msg === 'buffer open')?.buffered_events, acked.length);
    // the device sends the unacknowledged message again and goes on
    const again = await mqtt.connectAsync(url2, { clientId: device, clean: true, reconnectPeriod: 0 });
    t.after(() => again.end(true));
    const later = await publishSequence(again, {
      topic: mqttTopic,
      payload: (n) => reading(device, n),
      first: held.n,
      count: 5,
    });
    await again.endAsync();
    const run: DeviceRun = { device, acked: [...acked, ...later] };
    const records = await consumeUntil(kafka.brokers, topic, allAckedSeen([run]), 60_000);
    const check = assertDelivered(records, [run], { exactlyOnce: false, gatewayId: 'gw-test' });

    assert.equal((await up.stop('SIGTERM')).code, 0, up.describe());
    assert.equal(stoppedLine(up)?.buffered_events, 0);
    assert.deepEqual(
      lossesOf(up.lastStats() as unknown as DaemonStats, route),
      {},
      'nothing counted as lost after the restart',
    );
    t.diagnostic(
      `${acked.length} acknowledged before the hold (route max_bytes 20000), publish ${held.n} held; after the restart ${later.length} more; ${check.delivered} events read, ${check.duplicates} duplicates`,
    );
  },
);

test(
  'full, when_full drop_oldest: the dropped count is exact and the oldest go first: after a restart exactly the newest 300 - D events arrive',
  { timeout: 120_000 },
  async (t) => {
    const dir = Daemon.tempDir();
    const topic = `it.dropoldest.${Date.now()}`;
    const route = 'telemetry';
    const device = 'dro-1';
    const routes = [
      { name: route, match: 'devices/+device/#', topic, key: '{device}', when_full: 'drop_oldest', max_bytes: 20_000 },
    ];

    const down = new Daemon(dir, testConfig(DEAD_KAFKA, { routes, log: STATS_EVERY_SEC }));
    t.after(() => down.stop('SIGKILL').catch(() => undefined));
    const url = await down.start();
    const client = await mqtt.connectAsync(url, { clientId: device, clean: true, reconnectPeriod: 0 });
    t.after(() => client.end(true));
    // window 1: every publish is one group commit, so an eviction removes whole single events
    const acked = await publishSequence(client, {
      topic: `devices/${device}/telemetry`,
      payload: (n) => reading(device, n),
      count: 300,
    });
    await client.endAsync();
    assert.equal(acked.length, 300, 'drop_oldest acknowledges every publish');

    assert.equal((await down.stop('SIGTERM')).code, 0, down.describe());
    const downStats = down.lastStats() as unknown as DaemonStats;
    const dropped = lost(downStats, 'dropped_full', route);
    assert.ok(dropped > 0 && dropped < 300, `dropped_full.${route} = ${dropped}`);
    assert.equal(stoppedLine(down)?.buffered_events, 300 - dropped, 'buffered + dropped = published');
    assert.ok(
      down.lines.some((l) => l.code === 'EH_ERR_BUFFER_FULL' && l.route === route && l.how === 'evicted_oldest'),
      'the eviction is logged',
    );

    const up = new Daemon(dir, testConfig(kafka.brokers, { routes, log: STATS_EVERY_SEC }));
    t.after(() => up.stop('SIGKILL').catch(() => undefined));
    await up.start();
    const from = up.lines.length;
    await waitFor(
      'the backlog to be delivered',
      () => statsLines(up, from).some((l) => l.buffer?.events === 0),
      60_000,
      100,
    );
    // the only producer of this topic is gone: what is in the topic now is everything it will ever hold
    assert.equal((await up.stop('SIGTERM')).code, 0, up.describe());
    const records = await consumeAll(kafka.brokers, topic, 60_000);
    const events = distinct(records);
    const numbers = [...events.values()].map((e) => e.n).sort((a, b) => a - b);
    const fullLogs = down.lines.filter((l) => l.code === 'EH_ERR_BUFFER_FULL').map((l) => String(l.how));
    t.diagnostic(
      `300 published and acknowledged, dropped_full ${dropped}, ${events.size} distinct events delivered; missing numbers: ${describeRanges(range(0, 300).filter((n) => !numbers.includes(n)))}; EH_ERR_BUFFER_FULL lines (rate-limited): ${fullLogs.join(', ')}`,
    );
    await t.test('the dropped count is exact: 300 - D distinct events arrive', () => {
      assert.equal(events.size, 300 - dropped, `${events.size} distinct events in Kafka, expected 300 - ${dropped}`);
    });
    await t.test('the oldest go first: the events that arrive are numbers D..299, in order', () => {
      assert.deepEqual(
        describeRanges(numbers),
        describeRanges(range(dropped, 300)),
        'exactly the newest events arrive: the dropped ones were the oldest',
      );
      assertDelivered(records, [{ device, acked: range(dropped, 300) }], { exactlyOnce: false, gatewayId: 'gw-test' });
    });
  },
);

test(
  'full, priorities: with the buffer full of blocked telemetry (priority 0) alarms (priority 10) are acknowledged by evicting the oldest telemetry; alarms lose nothing, arrive, and are sent first after the restart',
  { timeout: 120_000 },
  async (t) => {
    const clock = phases();
    const dir = Daemon.tempDir();
    const stamp = Date.now();
    const alarmTopic = `it.prio.alarms.${stamp}`;
    const telemetryTopic = `it.prio.telemetry.${stamp}`;
    const routes = [
      {
        name: 'alarms',
        match: 'site/+device/alarm',
        topic: alarmTopic,
        key: '{device}',
        priority: 10,
        when_full: 'block',
      },
      {
        name: 'telemetry',
        match: 'site/+device/telemetry',
        topic: telemetryTopic,
        key: '{device}',
        priority: 0,
        when_full: 'block',
      },
    ];
    const config = (brokers: string[]): Record<string, unknown> =>
      testConfig(brokers, { routes, buffer: { path: 'buffer.db', max_bytes: 1_048_576 }, log: STATS_EVERY_SEC });

    const down = new Daemon(dir, config(DEAD_KAFKA));
    t.after(() => down.stop('SIGKILL').catch(() => undefined));
    const url = await down.start();
    const tel = await mqtt.connectAsync(url, { clientId: 'tel-1', clean: true, reconnectPeriod: 0 });
    t.after(() => tel.end(true));
    clock.mark('start');
    const filled = await publishUntilHeld(tel, down, {
      topic: 'site/tel-1/telemetry',
      payload: (n) => reading('tel-1', n, 3000),
      max: 2000,
    });
    assert.ok(filled.acked.length >= 250, `${filled.acked.length} telemetry readings of 3 KB before 1 MiB was full`);
    const beforeAlarm = latestStats(down)!;
    assert.equal(
      lost(beforeAlarm.stats, 'dropped_full', 'telemetry'),
      0,
      'telemetry blocks, it does not drop by itself',
    );

    clock.mark('fill until held');
    const alarm = await mqtt.connectAsync(url, { clientId: 'alm-1', clean: true, reconnectPeriod: 0 });
    t.after(() => alarm.end(true));
    const alarmsAcked = await publishSequence(alarm, {
      topic: 'site/alm-1/alarm',
      payload: (n) => reading('alm-1', n, 2000),
      count: 3,
    });
    await alarm.endAsync();
    assert.deepEqual(alarmsAcked, [0, 1, 2], 'every alarm is acknowledged although the buffer is full');
    clock.mark('3 alarms');
    const afterAlarms = down.lines.length;
    const evicted = await waitFor('a stats line after the alarms', () => statsLines(down, afterAlarms)[0], 10_000);
    const droppedTelemetry = lost(evicted.stats, 'dropped_full', 'telemetry');
    assert.ok(droppedTelemetry > 0, 'the alarms evicted telemetry');
    assert.deepEqual(lossesOf(evicted.stats, 'alarms'), {}, 'nothing lost for alarms');

    assert.equal((await down.stop('SIGTERM')).code, 0, down.describe());
    tel.end(true);
    const downStats = down.lastStats() as unknown as DaemonStats;
    const telDropped = lost(downStats, 'dropped_full', 'telemetry');
    // the held telemetry reading may have been taken when an eviction left room; then it was acknowledged too
    const telAcked = filled.held.state() === 'acked' ? [...filled.acked, filled.held.n] : filled.acked;
    assert.equal(stoppedLine(down)?.buffered_events, telAcked.length - telDropped + 3);
    assert.deepEqual(lossesOf(downStats, 'alarms'), {});

    clock.mark('stop');
    const up = new Daemon(dir, config(kafka.brokers));
    t.after(() => up.stop('SIGKILL').catch(() => undefined));
    await up.start();
    const from = up.lines.length;
    await waitFor(
      'the backlog to be delivered',
      () => statsLines(up, from).some((l) => l.buffer?.events === 0),
      60_000,
      100,
    );
    clock.mark('restart and drain');
    assert.equal((await up.stop('SIGTERM')).code, 0, up.describe());

    const alarms = await consumeAll(kafka.brokers, alarmTopic, 60_000);
    const telemetry = await consumeAll(kafka.brokers, telemetryTopic, 60_000);
    clock.mark('consume');
    const telNumbers = [...distinct(telemetry).values()].map((e) => e.n).sort((a, b) => a - b);
    const firstAlarm = Math.min(...alarms.map((r) => r.timestamp));
    const firstTelemetry = Math.min(...telemetry.map((r) => r.timestamp));
    const evictedNumbers = telAcked.filter((n) => !telNumbers.includes(n));
    t.diagnostic(
      `telemetry: ${telAcked.length} acknowledged, ${telDropped} evicted for 3 alarms (numbers ${describeRanges(evictedNumbers)}), ${telNumbers.length} delivered; alarms ${distinct(alarms).size} of 3 delivered, first alarm record ${firstTelemetry - firstAlarm} ms before the first telemetry record`,
    );
    await t.test('the alarms arrive, all three, in order', () => {
      assertDelivered(alarms, [{ device: 'alm-1', acked: [0, 1, 2] }], { exactlyOnce: false, gatewayId: 'gw-test' });
      assert.deepEqual(
        [...distinct(alarms).values()].map((e) => e.n).sort((a, b) => a - b),
        [0, 1, 2],
      );
    });
    await t.test(
      'alarms are sent first after the outage (Kafka CreateTime of the first alarm record <= that of the first telemetry record)',
      () => {
        assert.ok(
          firstAlarm <= firstTelemetry,
          `alarm record at ${firstAlarm}, first telemetry record at ${firstTelemetry}`,
        );
      },
    );
    await t.test('the eviction count is exact: acknowledged telemetry - dropped_full.telemetry arrives', () => {
      assert.equal(telNumbers.length, telAcked.length - telDropped);
    });
    await t.test(
      'the evicted telemetry is the oldest: the telemetry that arrives is the newest acknowledged, in order',
      () => {
        assert.equal(describeRanges(telNumbers), describeRanges(telAcked.slice(telDropped)));
        assertDelivered(telemetry, [{ device: 'tel-1', acked: telAcked.slice(telDropped) }], {
          exactlyOnce: false,
          gatewayId: 'gw-test',
        });
      },
    );
    t.diagnostic(`phases: ${clock.describe()}`);
  },
);

interface Damage {
  readonly name: string;
  /** The byte range to overwrite with 0xEE, chosen while the intact file is open read-only. */
  region(db: Database.Database, size: number, pageSize: number): { offset: number; length: number };
  /** Whether the events of the damaged buffer can still be counted (and so must be counted as corrupt). */
  readonly countable: boolean;
}

const damages: Damage[] = [
  {
    name: 'unreadable: everything after the 100-byte header overwritten',
    region: (_db, size) => ({ offset: 100, length: size - 100 }),
    countable: false,
  },
  {
    name: 'every page after the first overwritten, header and schema page intact',
    region: (_db, size, pageSize) => ({ offset: pageSize, length: size - pageSize }),
    countable: false,
  },
  {
    name: 'one index page overwritten, the events table intact',
    region: (db, _size, pageSize) => {
      const root = (
        db.prepare("SELECT rootpage AS v FROM sqlite_schema WHERE name = 'commits_by_priority'").get() as { v: number }
      ).v;
      return { offset: (root - 1) * pageSize, length: pageSize };
    },
    countable: true,
  },
];

for (const damage of damages) {
  test(
    `damaged store (${damage.name}): moved aside, EH_ERR_STORE_DAMAGED logged and counted, the daemon runs on with an empty buffer and new events arrive with higher sequence numbers`,
    { timeout: 120_000 },
    async (t) => {
      const dir = Daemon.tempDir();
      const topic = `it.damaged.${Date.now()}`;
      const route = 'telemetry';
      const routes = [{ name: route, match: 'devices/+device/#', topic, key: '{device}' }];
      const dbPath = join(dir, 'buffer.db');

      const down = new Daemon(dir, testConfig(DEAD_KAFKA, { routes, log: STATS_EVERY_SEC }));
      t.after(() => down.stop('SIGKILL').catch(() => undefined));
      const url = await down.start();
      const early = await runDevice(url, 'dmg-1', 50, { window: 5 });
      assert.equal(early.acked.length, 50);
      assert.equal((await down.stop('SIGTERM')).code, 0, down.describe());
      assert.equal(stoppedLine(down)?.buffered_events, 50);

      // what the old buffer handed out, read from the file itself
      const db = new Database(dbPath, { readonly: true, fileMustExist: true });
      const maxSeqBefore = (
        db.prepare('SELECT max(first_seq + event_count - 1) AS v FROM commits').get() as { v: number }
      ).v;
      const nextSeqBefore = (db.prepare("SELECT value AS v FROM meta WHERE key = 'next_seq'").get() as { v: number }).v;
      const pageSize = db.pragma('page_size', { simple: true }) as number;
      const size = statSync(dbPath).size;
      const { offset, length } = damage.region(db, size, pageSize);
      db.close();
      assert.ok(maxSeqBefore >= 50, `max seq before ${maxSeqBefore}`);
      // a clean stop leaves no WAL content that could mask the damage
      assert.ok(!existsSync(`${dbPath}-wal`) || statSync(`${dbPath}-wal`).size === 0, 'no WAL left after a clean stop');

      assert.ok(
        offset >= 100 && length > 0 && offset + length <= size,
        `damage ${offset}+${length} within buffer.db of ${size} bytes`,
      );
      const fd = openSync(dbPath, 'r+');
      writeSync(fd, Buffer.alloc(length, 0xee), 0, length, offset);
      closeSync(fd);

      const up = new Daemon(dir, testConfig(kafka.brokers, { routes, log: STATS_EVERY_SEC }));
      t.after(() => up.stop('SIGKILL').catch(() => undefined));
      const url2 = await up.start();
      const damaged = up.lines.find((l) => l.code === 'EH_ERR_STORE_DAMAGED');
      assert.ok(damaged !== undefined, `EH_ERR_STORE_DAMAGED logged: ${up.describe()}`);
      const aside = readdirSync(dir).filter((f) => /^buffer\.db\.damaged-.+/.test(f) && !/-(wal|shm)$/.test(f));
      assert.equal(aside.length, 1, `one damaged file kept next to buffer.db: ${readdirSync(dir).join(', ')}`);
      assert.equal(statSync(join(dir, aside[0]!)).size, size, 'the damaged file is kept as it was');
      assert.equal(up.lines.find((l) => l.msg === 'buffer open')?.buffered_events, 0, 'an empty buffer');

      const late = await runDevice(url2, 'dmg-2', 50, { window: 5 });
      assert.equal(late.acked.length, 50, 'new publishes are acknowledged');
      const records = await consumeUntil(kafka.brokers, topic, allAckedSeen([late]), 60_000);
      assertDelivered(records, [late], { exactlyOnce: false, gatewayId: 'gw-test' });
      const seqs = records.flatMap((r) => r.batch.events.map((e) => e.seq));
      assert.ok(
        Math.min(...seqs) > Math.max(maxSeqBefore, nextSeqBefore - 1),
        `new sequence numbers ${Math.min(...seqs)}.. above the old buffer's ${maxSeqBefore} (next_seq ${nextSeqBefore})`,
      );
      assert.ok(!records.some((r) => r.batch.key === 'dmg-1'), 'nothing of the damaged buffer is sent');

      // not a crash loop: it keeps running and reporting
      const runningFrom = up.lines.length;
      await waitFor('two more stats lines', () => statsLines(up, runningFrom).length >= 2, 10_000);
      assert.ok(up.running, 'the daemon keeps running');
      const health = latestStats(up)!.health;
      assert.ok(
        health.reasons.some((r) => /damaged/.test(r)),
        `health reports the damaged store: ${health.reasons.join('; ')}`,
      );
      assert.equal((await up.stop('SIGTERM')).code, 0, up.describe());
      const final = up.lastStats() as unknown as DaemonStats;
      assert.equal(final.store_damaged_total, 1);
      const lostEvents = damaged.lost_events as number | null;
      if (damage.countable) {
        assert.equal(lostEvents, 50, 'the 50 events of the damaged buffer are counted');
        assert.equal(lost(final, 'corrupt', '*'), 50, 'and reported as lost_events_total.corrupt');
      } else if (lostEvents !== null) {
        assert.equal(
          lost(final, 'corrupt', '*'),
          lostEvents,
          'events that could still be counted are counted as corrupt',
        );
      }
      assert.equal(up.lines.filter((l) => l.msg === 'edgehaul running').length, 1);
      t.diagnostic(
        `damage: bytes ${offset}..${offset + length - 1} of ${size}: ${String(damaged.reason).replace(/\s+/g, ' ')}; lost_events ${String(lostEvents)}; old max seq ${maxSeqBefore}, new seqs from ${Math.min(...seqs)}`,
      );
    },
  );
}
