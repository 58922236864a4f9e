/**
 * The delivery contract on the Kafka users run: three KRaft nodes,
 * replication 3, min.insync.replicas 2. Leaders die under load, a majority
 * goes away, the whole cluster restarts; a consumer then finds every
 * acknowledged event, each device's events in order, and duplicates only with
 * the sequence number they had the first time.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { assertDelivered } from '../support/assertions.js';
import { Daemon, testConfig } from '../support/daemon.js';
import type { DeviceRun } from '../support/devices.js';
import { consumeUntil, startKafkaCluster, type ConsumedRecord, type KafkaCluster } from '../support/kafka.js';
import { startLoadDevice } from '../support/load.js';
import { waitFor } from '../support/poll.js';
import { latestStats } from '../support/stats.js';

const DEVICES = 8;
let cluster: KafkaCluster;
before(async () => {
  cluster = await startKafkaCluster(3);
});
after(async () => {
  await cluster.stop();
});

interface Load {
  readonly acked: () => number;
  /** Stops publishing and returns what each device had acknowledged. */
  finish(): Promise<DeviceRun[]>;
}

/** DEVICES devices publishing QoS 1 readings, 50 in flight each, until finish(); bounded by `maxPerDevice`. */
function startLoad(url: string, tag: string, maxPerDevice: number): Load {
  let stopped = false;
  const counts = new Array<number>(DEVICES).fill(0);
  const devices = Array.from({ length: DEVICES }, (_, i) =>
    startLoadDevice(url, `${tag}-${i}`, () => stopped || counts[i]! >= maxPerDevice, { window: 50, payloadBytes: 120 }),
  );
  const timer = setInterval(() => devices.forEach((d, i) => (counts[i] = d.acked.length)), 50);
  return {
    acked: () => devices.reduce((n, d) => n + d.acked.length, 0),
    finish: async () => {
      stopped = true;
      clearInterval(timer);
      return Promise.all(devices.map((d) => d.finished));
    },
  };
}

function daemonFor(topic: string): Daemon {
  return new Daemon(
    Daemon.tempDir(),
    testConfig(cluster.brokers, {
      routes: [{ name: 'r', match: 'devices/+device/#', topic, key: '{device}' }],
      // the daemon's own Kafka settings: what a gateway runs
      kafka: { brokers: cluster.brokers },
      log: { level: 'info', stats_interval_secs: 1 },
    }),
  );
}

/** Waits until every partition of `topic` has a leader and all 3 replicas in sync. */
async function healthy(topic: string): Promise<void> {
  await waitFor(
    `all partitions of ${topic} led and fully in sync`,
    async () => {
      const ps = await cluster.partitions(topic);
      return ps.length > 0 && ps.every((p) => p.leader >= 1 && p.isr === 3);
    },
    120_000,
    250,
  );
}

/** The node leading most partitions of `topic`. */
async function busiestLeader(topic: string): Promise<number> {
  const counts = new Map<number, number>();
  for (const p of await cluster.partitions(topic)) counts.set(p.leader, (counts.get(p.leader) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1])[0]![0];
}

/** Reads the topic until every acknowledged message is there (or the deadline), then checks the contract. */
async function assertAllThere(
  topic: string,
  runs: DeviceRun[],
  daemon: Daemon,
): Promise<{ delivered: number; duplicates: number; acked: number }> {
  const acked = runs.reduce((n, r) => n + r.acked.length, 0);
  const wanted = new Map(runs.map((r) => [r.device, new Set(r.acked)]));
  let found = 0;
  let scanned = 0;
  const records: ConsumedRecord[] = await consumeUntil(
    cluster.brokers,
    topic,
    (rs) => {
      for (; scanned < rs.length; scanned++) {
        for (const e of rs[scanned]!.batch.events) {
          const m = JSON.parse(e.payload.toString()) as { device: string; n: number };
          if (wanted.get(m.device)?.delete(m.n) === true) found++;
        }
      }
      return found === acked;
    },
    120_000,
  ).catch((err: unknown) => {
    throw new Error(
      `${acked - found} of ${acked} acknowledged events not in Kafka: ${(err as Error).message}\n${daemon.describe()}`,
    );
  });
  const check = assertDelivered(records, runs, { exactlyOnce: false, gatewayId: 'gw-test' });
  return { ...check, acked };
}

test(
  'leaders SIGKILLed under load, three times: every acknowledged event reaches Kafka, in per-device order, duplicates share a sequence number',
  { timeout: 600_000 },
  async (t) => {
    const topic = `it.failover.leader.${Date.now()}`;
    const daemon = daemonFor(topic);
    t.after(() => daemon.stop('SIGKILL').catch(() => undefined));
    const url = await daemon.start();
    const load = startLoad(url, 'lf', 100_000);
    await waitFor(
      'the topic to exist with its leaders',
      async () => (await cluster.partitions(topic).catch(() => [])).length === 6,
      60_000,
      250,
    );
    await healthy(topic);
    const stalls: number[] = [];
    for (let round = 1; round <= 3; round++) {
      const victim = await busiestLeader(topic);
      const before = latestStats(daemon)?.stats.sent_events_total ?? 0;
      await waitFor(
        'events flowing before the kill',
        () => (latestStats(daemon)?.stats.sent_events_total ?? 0) > before,
        30_000,
        100,
      );
      const ackedAtKill = load.acked();
      const killedAt = Date.now();
      await cluster.kill(victim);
      const sentAtKill = latestStats(daemon)?.stats.sent_events_total ?? 0;
      // devices keep publishing while the partitions move: the buffer takes them
      await waitFor(
        'more acknowledged events while a node is down',
        () => load.acked() >= ackedAtKill + 2000,
        60_000,
        100,
      );
      const resumed = await waitFor(
        'the forwarder delivering again',
        () => {
          const s = latestStats(daemon);
          return s !== undefined && s.stats.sent_events_total > sentAtKill + 1000 ? Date.now() : undefined;
        },
        120_000,
        100,
      );
      stalls.push(resumed - killedAt);
      await cluster.restart(victim);
      await healthy(topic);
      t.diagnostic(
        `round ${round}: killed node ${victim}; delivering again ${resumed - killedAt} ms after the kill (1 s stats resolution)`,
      );
    }
    const runs = await load.finish();
    const result = await assertAllThere(topic, runs, daemon);
    const stats = latestStats(daemon)!.stats;
    t.diagnostic(
      `acknowledged ${result.acked}, delivered ${result.delivered} (duplicates ${result.duplicates}), unconfirmed records ${String(stats.upstream_unconfirmed_records_total)}, send errors ${stats.send_errors_total}, stalls ${stalls.join(', ')} ms`,
    );
    assert.equal(
      stats.upstream_reordered_records_total,
      0,
      'no record was confirmed after an unconfirmed one of its key',
    );
    assert.equal((await daemon.stop('SIGTERM')).code, 0, daemon.describe());
  },
);

/**
 * Load until events flow, then `outage` (nodes killed) while the daemon keeps
 * acknowledging, then `recover`; every acknowledged event must arrive.
 */
async function outageUnderLoad(
  t: { after: (fn: () => Promise<unknown>) => void; diagnostic: (m: string) => void },
  tag: string,
  outage: () => Promise<void>,
  recover: () => Promise<void>,
): Promise<void> {
  const topic = `it.failover.${tag}.${Date.now()}`;
  const daemon = daemonFor(topic);
  t.after(() => daemon.stop('SIGKILL').catch(() => undefined));
  const url = await daemon.start();
  const load = startLoad(url, tag, 40_000);
  await waitFor(
    'the topic to exist with its leaders',
    async () => (await cluster.partitions(topic).catch(() => [])).length === 6,
    60_000,
    250,
  );
  await healthy(topic);
  await waitFor('events flowing', () => (latestStats(daemon)?.stats.sent_events_total ?? 0) > 1000, 30_000, 100);
  await outage();
  const ackedAtKill = load.acked();
  await waitFor(
    'the daemon acknowledging while Kafka cannot take writes',
    () => load.acked() > ackedAtKill + 1000,
    30_000,
    100,
  );
  await recover();
  await healthy(topic);
  const runs = await load.finish();
  const result = await assertAllThere(topic, runs, daemon);
  t.diagnostic(`acknowledged ${result.acked}, delivered ${result.delivered} (duplicates ${result.duplicates})`);
  assert.equal((await daemon.stop('SIGTERM')).code, 0, daemon.describe());
}

test(
  'two of three nodes down for 30 s (below min.insync.replicas), then back: nothing acknowledged is lost',
  { timeout: 400_000 },
  async (t) => {
    let downAt = 0;
    await outageUnderLoad(
      t,
      'majority',
      async () => {
        await cluster.kill(2);
        await cluster.kill(3);
        downAt = Date.now();
      },
      async () => {
        await waitFor('30 s of outage', () => Date.now() - downAt >= 30_000, 40_000, 250);
        await Promise.all([cluster.restart(2), cluster.restart(3)]);
      },
    );
  },
);

test(
  'the whole cluster SIGKILLed and restarted under load: nothing acknowledged is lost',
  { timeout: 400_000 },
  async (t) => {
    await outageUnderLoad(
      t,
      'all',
      async () => {
        await Promise.all([cluster.kill(1), cluster.kill(2), cluster.kill(3)]);
      },
      async () => {
        await Promise.all([cluster.restart(1), cluster.restart(2), cluster.restart(3)]);
      },
    );
  },
);
