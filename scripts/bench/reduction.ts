/**
 * `npm run bench:reduction`: bytes sent upstream per input event for a
 * realistic sensor stream (slowly varying values plus noise), in-process and
 * deterministic: the real transform pipeline and the real batch encoder, with
 * simulated time. Compared with what a naive bridge sends (one Kafka record per
 * MQTT message, the JSON payload as the value) and with edgehaul forwarding
 * every event untransformed.
 *
 * Prints a table and writes scripts/bench/results/reduction.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { InboundMessage, RoutedEvent, SequencedEvent } from '../../src/core/event.js';
import { encodeBatch } from '../../src/forward/format.js';
import { Pipeline } from '../../src/transform/pipeline.js';
import type { RouteInput } from '../../src/transform/router.js';
import type { StepConfig } from '../../src/transform/steps/index.js';
import { ROOT } from './harness.js';

const DEVICES = 20;
const PERIOD_MS = 1000; // each device reports once a second
const HOURS = 1;
const EVENTS_PER_RECORD = 1000; // kafka.max_events_per_record
const LINGER_MS = 100; // kafka.linger_ms: what one send gathers at most, per key

/** A deterministic PRNG (mulberry32), so every run measures the same stream. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Temperature and humidity drifting slowly (a daily-like sine plus a random walk), with sensor noise. */
function* stream(): Generator<InboundMessage> {
  const rand = prng(42);
  const walk = Array.from({ length: DEVICES }, () => ({ temp: 20 + rand() * 5, hum: 40 + rand() * 10 }));
  const start = Date.UTC(2026, 10, 23, 0, 0, 0);
  const steps = (HOURS * 3600_000) / PERIOD_MS;
  for (let i = 0; i < steps; i++) {
    for (let d = 0; d < DEVICES; d++) {
      const w = walk[d]!;
      w.temp += (rand() - 0.5) * 0.02;
      w.hum += (rand() - 0.5) * 0.05;
      const t = start + i * PERIOD_MS + d * 7;
      const temp = Math.round((w.temp + Math.sin(i / 600) * 0.5 + (rand() - 0.5) * 0.2) * 100) / 100;
      const hum = Math.round((w.hum + (rand() - 0.5) * 0.5) * 10) / 10;
      const payload = JSON.stringify({ device: `dev-${d}`, n: i, temp, hum, ts: t });
      yield {
        topic: `site/s1/dev/dev-${d}/telemetry`,
        payload: Buffer.from(payload),
        qos: 1,
        clientId: `dev-${d}`,
        receivedAt: t,
      };
    }
  }
}

interface Scenario {
  readonly name: string;
  /** routes as (name, Kafka topic, steps) */
  readonly routes: ReadonlyArray<readonly [string, string, StepConfig[]]>;
}

const decode = { decode: 'json' } as StepConfig;
const deadband = [
  decode,
  { deadband: { field: 'temp', abs: 0.2, max_silence_secs: 300, by: '{device}' } } as StepConfig,
];
const minutes = [
  decode,
  {
    window: { secs: 60, by: '{device}', fields: ['temp', 'hum'], aggregates: ['count', 'min', 'max', 'mean'] },
  } as StepConfig,
];
const SCENARIOS: Scenario[] = [
  { name: 'edgehaul, no transform (payload bytes as received)', routes: [['r', 'plant.telemetry', []]] },
  { name: 'decode json only (value as CBOR)', routes: [['r', 'plant.telemetry', [decode]]] },
  { name: 'deadband temp 0.2 abs, heartbeat 5 min', routes: [['r', 'plant.telemetry', deadband]] },
  { name: 'window 60 s: count/min/max/mean of temp and hum', routes: [['r', 'plant.telemetry', minutes]] },
  {
    name: 'deadband + 60 s window (two routes)',
    routes: [
      ['changes', 'plant.telemetry', deadband],
      ['minutes', 'plant.minutes', minutes],
    ],
  },
];

interface Result {
  readonly scenario: string;
  readonly input_events: number;
  readonly output_events: number;
  readonly records: number;
  readonly bytes: number;
  readonly bytes_gzip: number;
  readonly bytes_per_input_event: number;
  readonly bytes_gzip_per_input_event: number;
}

function routesFor(s: Scenario): RouteInput[] {
  const base = {
    match: 'site/+site/dev/+device/telemetry',
    key: '{device}',
    priority: 0,
    when_full: 'block' as const,
    durability: 'disk' as const,
  };
  return s.routes.map(([name, topic, steps]) => ({ ...base, name, topic, steps }));
}

/** Runs the stream through the pipeline and packs outputs as the forwarder would: per route and key, per linger period. */
function run(s: Scenario): Result {
  const pipeline = new Pipeline(routesFor(s), { gatewayId: 'gw-bench-0001', deadLetterTopic: null });
  let seq = 1;
  let inputs = 0;
  let outputs = 0;
  let records = 0;
  let bytes = 0;
  let gz = 0;
  const pending = new Map<string, SequencedEvent[]>();
  let windowStart = 0;
  const flush = (): void => {
    for (const [k, evs] of pending) {
      for (let i = 0; i < evs.length; i += EVENTS_PER_RECORD) {
        const chunk = evs.slice(i, i + EVENTS_PER_RECORD);
        const value = encodeBatch(
          { gatewayId: 'gw-bench-0001', incarnation: '0123456789abcdef' },
          chunk[0]!.route,
          k.split('\u0000')[1]!,
          chunk,
        );
        records++;
        bytes += value.length;
        gz += gzipSync(value).length;
      }
    }
    pending.clear();
  };
  const take = (events: readonly RoutedEvent[]): void => {
    for (const e of events) {
      outputs++;
      const k = `${e.route}\u0000${e.key}`;
      let list = pending.get(k);
      if (list === undefined) pending.set(k, (list = []));
      list.push({ ...e, seq: seq++ });
    }
  };
  for (const m of stream()) {
    if (m.receivedAt - windowStart >= LINGER_MS) {
      take(pipeline.tick(m.receivedAt).events);
      flush();
      windowStart = m.receivedAt;
    }
    inputs++;
    take(pipeline.process(m).events);
  }
  take(pipeline.tick(Number.MAX_SAFE_INTEGER).events);
  flush();
  return {
    scenario: s.name,
    input_events: inputs,
    output_events: outputs,
    records,
    bytes,
    bytes_gzip: gz,
    bytes_per_input_event: bytes / inputs,
    bytes_gzip_per_input_event: gz / inputs,
  };
}

function naive(): Result {
  let inputs = 0;
  let bytes = 0;
  let gz = 0;
  for (const m of stream()) {
    inputs++;
    bytes += m.payload.length;
    gz += gzipSync(m.payload).length;
  }
  return {
    scenario: 'naive bridge: one JSON record per message',
    input_events: inputs,
    output_events: inputs,
    records: inputs,
    bytes,
    bytes_gzip: gz,
    bytes_per_input_event: bytes / inputs,
    bytes_gzip_per_input_event: gz / inputs,
  };
}

const results = [naive(), ...SCENARIOS.map(run)];
const base = results[0]!.bytes_per_input_event;
process.stdout.write(
  `${DEVICES} devices x ${(HOURS * 3600_000) / PERIOD_MS} readings (1/s, ${HOURS} h), ~${Math.round(base)} B JSON each; record values only (keys and headers excluded), gzip per record\n\n`,
);
process.stdout.write(
  '| scenario | events out | records | B/input event | gzip B/input event | vs naive |\n|---|---:|---:|---:|---:|---:|\n',
);
for (const r of results) {
  process.stdout.write(
    `| ${r.scenario} | ${r.output_events} | ${r.records} | ${r.bytes_per_input_event.toFixed(2)} | ${r.bytes_gzip_per_input_event.toFixed(2)} | ${((r.bytes_per_input_event / base) * 100).toFixed(1)}% |\n`,
  );
}
const dir = join(ROOT, 'scripts/bench/results');
mkdirSync(dir, { recursive: true });
writeFileSync(
  join(dir, 'reduction.json'),
  `${JSON.stringify({ at: new Date().toISOString(), devices: DEVICES, period_ms: PERIOD_MS, hours: HOURS, results }, null, 2)}\n`,
);
