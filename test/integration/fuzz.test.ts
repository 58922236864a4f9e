import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import { test } from 'node:test';
import mqtt from 'mqtt';
import { Daemon, testConfig } from '../support/daemon.js';
import { runDevice } from '../support/devices.js';
import { consumeAll } from '../support/consume.js';
import { consumeUntil, eventCount } from '../support/kafka.js';
import { useSharedKafka } from '../support/shared-kafka.js';
import { prng, testSeed } from '../support/random.js';
import { waitFor } from '../support/poll.js';
import { latestStats, RssSampler, type DaemonStats } from '../support/stats.js';

const kafka = useSharedKafka();

const SEED = testSeed('EDGEHAUL_FUZZ_SEED');
const PAYLOADS = 100_000;
const MAX_PAYLOAD = 4096;
const PHASE_MS = 60_000;

type Rand = () => number;
const int = (rand: Rand, n: number): number => Math.floor(rand() * n);

function randomBytes(rand: Rand, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = int(rand, 256);
  return b;
}

/** A valid reading, then 1-4 mutations: bit flips, inserted/deleted bytes, truncation, duplicated spans. */
function mutated(rand: Rand, n: number): Buffer {
  let b = Buffer.from(
    JSON.stringify({ device: `d${n % 50}`, n, temp: 20 + rand() * 5, ok: rand() < 0.5, tags: ['a', 'b'] }),
  );
  for (let m = 1 + int(rand, 4); m > 0; m--) {
    const at = int(rand, b.length + 1);
    switch (int(rand, 5)) {
      case 0:
        if (b.length > 0) b[Math.min(at, b.length - 1)]! ^= 1 << int(rand, 8);
        break;
      case 1:
        b = Buffer.concat([b.subarray(0, at), randomBytes(rand, 1 + int(rand, 8)), b.subarray(at)]);
        break;
      case 2:
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + int(rand, 8))]);
        break;
      case 3:
        b = b.subarray(0, at);
        break;
      default:
        b = Buffer.concat([b, b.subarray(at, at + int(rand, 64))]);
    }
  }
  return Buffer.from(b);
}

const SPECIAL = [
  Buffer.alloc(0),
  Buffer.alloc(64, 0),
  Buffer.from([0xff, 0xfe, 0xfd]),
  Buffer.from('{"a":'.repeat(500)),
  Buffer.from('\u0000\u{10ffff}\ud7ff', 'utf8'),
  Buffer.from('1e999999'),
  Buffer.alloc(MAX_PAYLOAD, 0x61),
  Buffer.alloc(MAX_PAYLOAD + 1, 0x61),
];

interface Fuzzed {
  readonly topic: string;
  readonly payload: Buffer;
}

function fuzzed(rand: Rand, n: number, device: string): Fuzzed {
  const r = rand();
  const payload =
    r < 0.45
      ? randomBytes(rand, int(rand, 600))
      : r < 0.9
        ? mutated(rand, n)
        : r < 0.97
          ? SPECIAL[int(rand, SPECIAL.length)]!
          : randomBytes(rand, MAX_PAYLOAD - 200 + int(rand, 2000)); // around the payload limit, both sides
  // mostly routed; some topics no route matches; odd but legal topic text
  const t = rand();
  const topic =
    t < 0.95
      ? `fuzz/${device}/${['t', 'ä/ö', 'x y', '', 'a'.repeat(200)][int(rand, 5)]}`
      : `nowhere/${device}/${int(rand, 1000)}`;
  return { topic, payload };
}

function digest(b: Buffer): string {
  return createHash('sha1').update(b).digest('base64');
}

/**
 * How an acknowledged payload may end: delivered to Kafka, or refused for a
 * counted reason. Each reason names the daemon counter that must account for
 * it exactly. (The 'decoded' route's dead letters are reconciled on their own:
 * a payload goes to both routes.)
 */
const REFUSALS = {
  oversize: (s: DaemonStats) => s.dropped_oversize_total as number,
  unrouted: (s: DaemonStats) => s.dropped_unrouted_total as number,
} as const;
type Outcome = 'delivered' | keyof typeof REFUSALS;

function expectedOutcome(f: Fuzzed): Outcome {
  if (f.payload.length > MAX_PAYLOAD) return 'oversize';
  if (!f.topic.startsWith('fuzz/')) return 'unrouted';
  return 'delivered';
}

test(
  `fuzzing: ${PAYLOADS} random and mutated payloads are each delivered, dead-lettered or refused with a counted reason; garbage MQTT packets do not hurt the daemon (seed ${SEED})`,
  { timeout: 300_000 },
  async (t) => {
    const topic = `it.fuzz.${Date.now()}`;
    const steadyTopic = `it.fuzz.steady.${Date.now()}`;
    const decodedTopic = `it.fuzz.decoded.${Date.now()}`;
    const deadTopic = `it.fuzz.dead.${Date.now()}`;
    const daemon = new Daemon(
      Daemon.tempDir(),
      testConfig(kafka.brokers, {
        ingest: { max_payload_bytes: MAX_PAYLOAD, embedded: { host: '127.0.0.1', port: 0 } },
        routes: [
          { name: 'fuzz', match: 'fuzz/+device/#', topic, key: '{device}' },
          { name: 'steady', match: 'steady/+device/#', topic: steadyTopic, key: '{device}' },
          // the same payloads once more through transforms: each one decodes and validates, or becomes a dead letter
          {
            name: 'decoded',
            match: 'fuzz/+device/t',
            topic: decodedTopic,
            key: '{device}',
            steps: [
              { decode: 'json' },
              {
                validate: {
                  fields: { temp: { type: 'number', required: true }, n: { type: 'integer', required: true } },
                },
              },
              { map: { compute: { temp_f: 'temp * 9.0 / 5.0 + 32.0' } } },
            ],
          },
        ],
        dead_letters: { topic: deadTopic },
        log: { level: 'info', stats_interval_secs: 1 },
      }),
    );
    t.after(() => daemon.stop('SIGKILL').catch(() => undefined));
    const url = await daemon.start();
    const port = Number(new URL(url).port);
    const rss = new RssSampler(daemon.pid!, 100);
    t.after(() => rss.stop());

    // ---- phase 1: payloads over real MQTT connections, QoS 1, bounded in count and time
    rss.phase('payloads');
    const rand = prng(SEED);
    const expected = new Map<string, number>();
    const acked: Record<Outcome, number> = { delivered: 0, oversize: 0, unrouted: 0 };
    let transformed = 0; // routable payloads on fuzz/<device>/t: the 'decoded' route's inputs
    const started = Date.now();
    const deadline = started + PHASE_MS;
    const clients = 8;
    let next = 0;
    await Promise.all(
      Array.from({ length: clients }, async (_, c) => {
        const client = await mqtt.connectAsync(url, { clientId: `fuzzer-${c}`, reconnectPeriod: 0 });
        const worker = async (): Promise<void> => {
          while (next < PAYLOADS && Date.now() < deadline) {
            const f = fuzzed(rand, next++, `dev-${c}`);
            await client.publishAsync(f.topic, f.payload, { qos: 1 });
            const outcome = expectedOutcome(f);
            acked[outcome]++;
            if (outcome === 'delivered') {
              if (f.topic.endsWith('/t')) transformed++;
              const d = digest(f.payload);
              expected.set(d, (expected.get(d) ?? 0) + 1);
            }
          }
        };
        await Promise.all(Array.from({ length: 50 }, worker));
        await client.endAsync();
      }),
    );
    const phaseMs = Date.now() - started;
    const total = acked.delivered + acked.oversize + acked.unrouted;
    assert.equal(total, PAYLOADS, `all ${PAYLOADS} payloads acknowledged within ${PHASE_MS} ms (got ${total})`);
    assert.ok(acked.oversize > 0 && acked.unrouted > 0, `every outcome exercised: ${JSON.stringify(acked)}`);

    // reconcile: delivered = what Kafka holds (content, not just counts); refused = the counters
    await consumeUntil(kafka.brokers, topic, (rs) => eventCount(rs) >= acked.delivered, 120_000);
    const settled = await waitFor(
      'a stats line covering phase 1',
      () => {
        const s = latestStats(daemon);
        return s !== undefined &&
          s.stats.received_messages_total >= PAYLOADS &&
          s.stats.sent_events_total >= acked.delivered
          ? s.stats
          : undefined;
      },
      30_000,
    );
    const records = await consumeAll(kafka.brokers, topic);
    const got = new Map<string, number>();
    for (const e of records.flatMap((r) => r.batch.events))
      got.set(digest(e.payload), (got.get(digest(e.payload)) ?? 0) + 1);
    assert.equal(eventCount(records), acked.delivered, 'delivered = acknowledged and routable, exactly');
    assert.deepEqual(
      [...expected].filter(([d, n]) => got.get(d) !== n),
      [],
      'every delivered payload arrived byte for byte, as often as it was sent',
    );

    // transforms: every input of the 'decoded' route came out decoded or as a counted dead letter, never neither
    const deadCounted =
      (settled.lost_events_total as unknown as { dead_letter: Record<string, number> }).dead_letter.decoded ?? 0;
    const decoded = await consumeUntil(
      kafka.brokers,
      decodedTopic,
      (rs) => eventCount(rs) >= transformed - deadCounted,
      120_000,
    );
    const dead =
      deadCounted > 0
        ? await consumeUntil(kafka.brokers, deadTopic, (rs) => eventCount(rs) >= deadCounted, 120_000)
        : [];
    assert.equal(
      eventCount(decoded) + deadCounted,
      transformed,
      `decoded ${eventCount(decoded)} + dead letters ${deadCounted} = inputs ${transformed}`,
    );
    assert.equal(eventCount(dead), deadCounted, 'every dead letter reached the dead-letter topic');
    for (const e of decoded.flatMap((r) => r.batch.events)) {
      const v = e.value as { temp: number; temp_f: number };
      assert.ok(
        typeof v.temp === 'number' && Math.abs(v.temp_f - ((v.temp * 9) / 5 + 32)) < 1e-6,
        `a decoded event is valid: ${JSON.stringify(v)}`,
      );
    }
    for (const e of dead.flatMap((r) => r.batch.events)) {
      const v = e.value as { route: string; step: string; reason: string };
      assert.ok(
        v.route === 'decoded' && /^[0-2]:(decode|validate|map)$/.test(v.step) && v.reason.length > 0,
        JSON.stringify(v),
      );
    }
    t.diagnostic(`transforms: ${transformed} inputs, ${eventCount(decoded)} decoded, ${deadCounted} dead letters`);
    for (const [reason, counter] of Object.entries(REFUSALS) as Array<
      [keyof typeof REFUSALS, (s: DaemonStats) => number]
    >) {
      assert.equal(counter(settled), acked[reason], `refused as ${reason}: counted exactly`);
    }
    assert.equal(settled.received_messages_total, PAYLOADS);
    assert.equal(settled.acked_messages_total, PAYLOADS);

    // ---- phase 2: malformed and garbage MQTT over raw TCP, while a well-behaved device keeps publishing
    rss.phase('garbage');
    const steady = runDevice(url, 'steady', 500, { window: 5, topic: (d) => `steady/${d}/t` });
    const grand = prng(SEED ^ 0x5eed);
    const connect = (id: string): Buffer => {
      const body = Buffer.concat([
        Buffer.from('00044d5154540402003c', 'hex'),
        Buffer.from([0, id.length]),
        Buffer.from(id),
      ]);
      return Buffer.concat([Buffer.from([0x10, body.length]), body]);
    };
    const publish = (topicName: string, payload: Buffer): Buffer => {
      const body = Buffer.concat([
        Buffer.from([topicName.length >> 8, topicName.length & 0xff]),
        Buffer.from(topicName),
        Buffer.from([0, 1]),
        payload,
      ]);
      return Buffer.concat([Buffer.from([0x32, (body.length & 0x7f) | 0x80, body.length >> 7]), body]);
    };
    const garbage: Array<(i: number) => Buffer> = [
      () => randomBytes(grand, 1 + int(grand, 2000)),
      (i) => Buffer.concat([connect(`g${i}`), randomBytes(grand, 1 + int(grand, 500))]),
      (i) => {
        const p = Buffer.concat([connect(`m${i}`), publish('raw/x', randomBytes(grand, 200))]);
        for (let k = 0; k < 3; k++) p[int(grand, p.length)] = int(grand, 256);
        return p;
      },
      (i) => Buffer.concat([connect(`f${i}`), Buffer.from([0x3f, 0x02, 0x00, 0x00])]), // PUBLISH with QoS 3
      (i) => Buffer.concat([connect(`r${i}`), Buffer.from([0xf0, 0x00])]), // reserved packet type 15
      () => Buffer.concat([Buffer.from([0x30, 0x05, 0x00, 0x01, 0x61]), Buffer.from('xy')]), // PUBLISH before CONNECT
      (i) => Buffer.concat([connect(`d${i}`), connect(`d${i}`)]), // a second CONNECT
      () => Buffer.from('101000044d5154540909003c000178', 'hex'), // protocol level 9
      (i) => Buffer.concat([connect(`v${i}`), Buffer.from([0x32, 0xff, 0xff, 0xff, 0xff, 0x7f])]), // 5-byte remaining length
      (i) =>
        Buffer.concat([
          connect(`s${i}`),
          Buffer.from([0x82, 0x08, 0x00, 0x01, 0x00, 0x03, 0x61, 0x2f, 0x23, 0x02]),
        ]).subarray(0, 16), // truncated SUBSCRIBE
      (i) => Buffer.concat([connect(`t${i}`), publish('raw/#', Buffer.from('x'))]), // wildcard in a PUBLISH topic
      (i) => Buffer.concat([connect(`b${i}`), Buffer.from([0x32, 0xff, 0xff, 0xff, 0x7f])]), // 268 MB announced
    ];
    const sockets = 600;
    const before = latestStats(daemon)!.stats;
    for (let i = 0; i < sockets; i += 30) {
      await Promise.all(
        Array.from(
          { length: Math.min(30, sockets - i) },
          (_, k) =>
            new Promise<void>((resolve) => {
              const s = netConnect(port, '127.0.0.1');
              const timer = setTimeout(() => s.destroy(), 3000);
              s.on('error', () => undefined);
              s.once('close', () => {
                clearTimeout(timer);
                resolve();
              });
              s.once('connect', () => s.end(garbage[(i + k) % garbage.length]!(i + k)));
            }),
        ),
      );
    }
    const steadyRun = await steady;
    assert.equal(steadyRun.acked.length, 500, 'the well-behaved device was served throughout');
    await consumeUntil(kafka.brokers, steadyTopic, (rs) => eventCount(rs) >= 500);
    assert.ok(daemon.running, `the daemon is still up: ${daemon.describe()}`);
    const afterGarbage = await waitFor(
      'a fresh stats line',
      () => {
        const s = latestStats(daemon);
        return s !== undefined && s.stats.committed_events_total >= before.committed_events_total + 500
          ? s.stats
          : undefined;
      },
      30_000,
    );
    const refusedConnections =
      (afterGarbage.connection_errors_total as number) -
      (before.connection_errors_total as number) +
      (afterGarbage.oversize_packets_total as number) -
      (before.oversize_packets_total as number);
    assert.ok(refusedConnections > 0, 'garbage connections are counted');
    rss.stop();
    const peakMiB = rss.peakKiB / 1024;
    const payloadPeak = (rss.phases.get('payloads') ?? 0) / 1024;
    const garbagePeak = (rss.phases.get('garbage') ?? 0) / 1024;
    t.diagnostic(
      `seed ${SEED}; ${PAYLOADS} payloads in ${phaseMs} ms; acked ${JSON.stringify(acked)}; RSS MiB ${rss.describePhases()}; garbage connections counted ${refusedConnections} of ${sockets}`,
    );
    // bounded: well below the box's RAM, and the garbage phase does not grow it
    assert.ok(peakMiB < 400, `peak RSS ${peakMiB.toFixed(0)} MiB`);
    assert.ok(garbagePeak < payloadPeak + 64, `garbage did not grow memory: ${rss.describePhases()}`);
    assert.equal((await daemon.stop('SIGTERM')).code, 0, daemon.describe());
  },
);
