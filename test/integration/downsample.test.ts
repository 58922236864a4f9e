import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { test } from 'node:test';
import mqtt from 'mqtt';
import type { AggregateValue } from '../../src/buffer/downsample.js';
import { Deduper } from '../../src/forward/dedupe.js';
import { consumeAll, type TimedRecord } from '../support/consume.js';
import { Daemon, testConfig } from '../support/daemon.js';
import { startKafka } from '../support/kafka.js';
import { waitFor } from '../support/poll.js';
import { latestStats, lost, statsLines, type DaemonStats } from '../support/stats.js';

/** How long Kafka stays away, at least. */
const OUTAGE_MS = 8_000;
/** Each route's bound: about a second and a half of the load below, raw. */
const MAX_BYTES = 16_384;
/** Publishes per device at most (the load stops long before). */
const MAX_PUBLISHES = 20_000;

interface Delivered {
  readonly seq: number;
  /** received-at span the event covers: one instant, or an aggregate's first/last */
  readonly from: number;
  readonly to: number;
  /** the reading numbers n it stands for: one, or an aggregate's min..max */
  readonly nMin: number;
  readonly nMax: number;
  readonly count: number;
  readonly aggregate: boolean;
  readonly bucketMs: number;
}

/**
 * The events a consumer keeps (Deduper: the bounded rule), with the readings
 * each stands for; `wronglyDropped`: events the rule dropped whose seq it had
 * not kept before (an aggregate overtaken by a newer event would be one).
 */
function delivered(records: readonly TimedRecord[]): Delivered[] & { wronglyDropped: number; trace: string[] } {
  const dedupe = new Deduper();
  const out: Delivered[] = [];
  const all = new Set<number>();
  const trace: string[] = [];
  for (const r of records) {
    for (const e of r.batch.events) all.add(e.seq);
    const fresh = dedupe.accept(r.batch);
    trace.push(
      `p${r.partition}@${r.offset} ${r.batch.events.map((e) => `${e.seq}${e.aggregate !== undefined ? `x${e.aggregate}` : ''}${fresh.includes(e) ? '' : '(dropped)'}`).join(' ')}`,
    );
    for (const e of fresh) {
      if (e.aggregate !== undefined) {
        const v = e.value as AggregateValue;
        const n = v.fields.n!;
        assert.equal(n.count, e.aggregate, 'every reading of the aggregate carried n');
        out.push({
          seq: e.seq,
          from: v.first_at,
          to: v.last_at,
          nMin: n.min,
          nMax: n.max,
          count: e.aggregate,
          aggregate: true,
          bucketMs: v.bucket_ms,
        });
      } else {
        const v = e.value as { n: number };
        out.push({
          seq: e.seq,
          from: e.receivedAt,
          to: e.receivedAt,
          nMin: v.n,
          nMax: v.n,
          count: 1,
          aggregate: false,
          bucketMs: 0,
        });
      }
    }
  }
  return Object.assign(out, { wronglyDropped: all.size - out.length, trace });
}

/** Whole seconds of [from, to) with no delivered event in them. */
function emptySeconds(events: readonly Delivered[], from: number, to: number): number[] {
  const empty: number[] = [];
  for (let s = Math.ceil(from / 1000) * 1000; s + 1000 <= to; s += 1000)
    if (!events.some((e) => e.from < s + 1000 && e.to >= s)) empty.push((s - from) / 1000);
  return empty;
}

/** One device publishing QoS 1 readings {device, n, temp, pad}, one at a time, until stopped. */
function startPublisher(url: string, device: string) {
  let stop = false;
  const acked: number[] = [];
  const ackMs: number[] = [];
  const finished = (async () => {
    const client = await mqtt.connectAsync(url, { clientId: device, clean: true, reconnectPeriod: 0 });
    try {
      for (let n = 0; !stop && n < MAX_PUBLISHES; n++) {
        // incompressible padding: rows are deflated and the bound is on stored bytes
        const pad = createHash('sha256').update(`${device}/${n}`).digest('hex');
        const reading = JSON.stringify({ device, n, temp: 20 + (n % 40) / 4, pad: pad + pad });
        const at = performance.now();
        await client.publishAsync(`devices/${device}/telemetry`, reading, { qos: 1 });
        ackMs.push(performance.now() - at);
        acked.push(n);
      }
    } finally {
      await client.endAsync();
    }
  })();
  return {
    acked,
    ackMs,
    finished,
    stop: () => {
      stop = true;
    },
  };
}

const sent = (d: Daemon): number => latestStats(d)?.stats.sent_events_total ?? 0;

test(
  `degrade before drop: Kafka stopped for ${OUTAGE_MS / 1000}+ s under load with a ${MAX_BYTES}-byte route bound; after Kafka returns, when_full downsample delivers the whole outage at coarser resolution (every second represented, every reading counted once), where drop_oldest leaves a gap`,
  { timeout: 150_000 },
  async (t) => {
    const started = Date.now();
    const own = await startKafka();
    t.after(async () => {
      await own.stop();
      rmSync(own.dir, { recursive: true, force: true });
    });
    const kafkaReadyMs = Date.now() - started;
    const stamp = Date.now();
    const daemons = (['downsample', 'drop_oldest'] as const).map((policy) => {
      const topic = `it.${policy}.${stamp}`;
      const dir = Daemon.tempDir();
      const daemon = new Daemon(
        dir,
        testConfig(own.brokers, {
          routes: [
            {
              name: 'telemetry',
              match: 'devices/+device/#',
              topic,
              key: '{device}',
              when_full: policy,
              downsample: { bucket_secs: 1 },
              max_bytes: MAX_BYTES,
              steps: [{ decode: 'json' }],
            },
          ],
          kafka: {
            brokers: own.brokers,
            retry: { initial_ms: 100, max_ms: 500 },
            connection_timeout_ms: 1000,
            request_timeout_ms: 1000,
            delivery_timeout_ms: 2000,
            // a send leases what it reads: keep most of the backlog in reach of the full policy
            max_events_per_send: 20,
          },
          log: { level: 'info', stats_interval_secs: 1 },
        }),
      );
      t.after(async () => {
        await daemon.stop('SIGKILL').catch(() => undefined);
        rmSync(dir, { recursive: true, force: true });
      });
      return { policy, topic, daemon };
    });
    const [ds, dro] = daemons as [(typeof daemons)[0], (typeof daemons)[0]];
    const urls = await Promise.all(daemons.map((d) => d.daemon.start()));
    const publishers = urls.map((url, i) => startPublisher(url, `dev-${i}`));
    let downAt: number;
    let upAt: number;
    try {
      await waitFor(
        'both daemons delivering before the outage',
        () => daemons.every((d) => sent(d.daemon) >= 50),
        30_000,
      );
      await own.stop();
      downAt = Date.now();
      await waitFor(
        'the outage to last, both routes full: aggregates made on one, oldest evicted on the other',
        () => {
          const a = latestStats(ds.daemon)?.stats;
          const b = latestStats(dro.daemon)?.stats;
          return (
            Date.now() - downAt >= OUTAGE_MS &&
            a !== undefined &&
            b !== undefined &&
            lost(a, 'downsampled', 'telemetry') > 0 &&
            lost(b, 'dropped_full', 'telemetry') > 0
          );
        },
        OUTAGE_MS + 20_000,
        100,
      );
      await own.start();
      upAt = Date.now();
      const sentAtUp = daemons.map((d) => sent(d.daemon));
      await waitFor(
        'delivery to resume on both',
        () => daemons.every((d, i) => sent(d.daemon) >= sentAtUp[i]! + 100),
        40_000,
        100,
      );
    } finally {
      for (const p of publishers) p.stop();
    }
    await Promise.all(publishers.map((p) => p.finished));
    const stoppedAt = daemons.map((d) => d.daemon.lines.length);
    await waitFor(
      'both buffers to drain',
      () => daemons.every((d, i) => statsLines(d.daemon, stoppedAt[i]).some((l) => l.buffer?.events === 0)),
      30_000,
      100,
    );
    for (const d of daemons) assert.equal((await d.daemon.stop('SIGTERM')).code, 0, d.daemon.describe());
    const [a, b] = await Promise.all(daemons.map(async (d) => delivered(await consumeAll(own.brokers, d.topic))));
    const [statsA, statsB] = daemons.map((d) => d.daemon.lastStats() as unknown as DaemonStats) as [
      DaemonStats,
      DaemonStats,
    ];
    const [ackedA, ackedB] = publishers.map((p) => p.acked.length) as [number, number];

    const aggregates = a!.filter((e) => e.aggregate);
    const represented = a!.reduce((n, e) => n + e.count, 0);
    const widest = Math.max(...aggregates.map((e) => e.bucketMs));
    // the stall downsampling adds to the group commit: the longest commit of any stats line, the PUBACK latency
    const commitMax = daemons.map((d) => Math.max(0, ...statsLines(d.daemon).map((l) => l.commit?.max_ms ?? 0)));
    const ackFigures = publishers.map((p) => {
      const sorted = [...p.ackMs].sort((x, y) => x - y);
      const at = (q: number): string => (sorted[Math.floor(q * (sorted.length - 1))] ?? 0).toFixed(1);
      return `PUBACK p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${at(1)} ms, longest commit ${commitMax[publishers.indexOf(p)]} ms`;
    });
    const gapA = emptySeconds(a!, downAt, upAt);
    const gapB = emptySeconds(b!, downAt, upAt);
    t.diagnostic(
      `Kafka ready in ${(kafkaReadyMs / 1000).toFixed(1)} s; outage ${((upAt - downAt) / 1000).toFixed(1)} s; ` +
        `downsample: ${ackedA} acknowledged, ${a!.length} events delivered (${aggregates.length} aggregates standing for ${represented - (a!.length - aggregates.length)} readings, widest bucket ${widest} ms), lost ${JSON.stringify(statsA.lost_events_total)}; ` +
        `drop_oldest: ${ackedB} acknowledged, ${b!.length} delivered, dropped_full ${lost(statsB, 'dropped_full', 'telemetry')}, ` +
        `downsample: ${ackFigures[0]}; drop_oldest: ${ackFigures[1]}; ` +
        `empty seconds of the outage: downsample [${gapA.join(', ')}], drop_oldest [${gapB.join(', ')}]; test ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );

    await t.test('downsample: every reading is delivered or represented, exactly once', () => {
      assert.ok(aggregates.length > 0, 'aggregates were delivered');
      assert.equal(represented, ackedA, 'events in = events delivered as they came + events represented by aggregates');
      const covered = a!.flatMap((e) => (e.aggregate ? [] : [e.nMin]));
      for (const e of aggregates)
        assert.equal(e.nMax - e.nMin + 1, e.count, `aggregate ${e.seq}: readings ${e.nMin}..${e.nMax} are ${e.count}`);
      const ranges = a!.map((e) => [e.nMin, e.nMax] as const).sort((x, y) => x[0] - y[0]);
      let next = 0;
      for (const [lo, hi] of ranges) {
        assert.equal(lo, next, `reading ${next} is represented (next range starts at ${lo})`);
        next = hi + 1;
      }
      assert.equal(next, ackedA, `readings 0..${ackedA - 1} all represented`);
      assert.ok(covered.length > 0);
      assert.equal(lost(statsA, 'dropped_full', 'telemetry'), 0, 'nothing evicted or dropped');
      assert.equal(
        lost(statsA, 'downsampled', 'telemetry'),
        aggregates.reduce((n, e) => n + e.count, 0),
        'lost_events_total{reason="downsampled"} counts each reading folded into a delivered aggregate once',
      );
    });
    await t.test('downsample: every second of the outage is represented; drop_oldest has a gap', () => {
      assert.deepEqual(gapA, [], 'downsample covers the whole outage');
      assert.ok(gapB.length >= 3, `drop_oldest leaves a gap of whole seconds: [${gapB.join(', ')}]`);
      assert.ok(lost(statsB, 'dropped_full', 'telemetry') > 0);
    });
    await t.test('the bounded rule (a watermark per key) drops only true duplicates: no aggregate is overtaken', () => {
      assert.equal(a!.wronglyDropped, 0, `records in topic order:\n${a!.trace.join('\n')}`);
      assert.equal(b!.wronglyDropped, 0);
    });
  },
);
