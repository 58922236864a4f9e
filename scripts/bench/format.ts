/**
 * `npm run bench:format`: the cost of the Kafka record format
 * per event, in-process on one core: encodeBatch (and decodeBatch) on batches
 * of the benchmark's reading from one device, sent
 * - raw: the JSON payload as a byte string (routes without decode),
 * - tag 24: decoded and carried as an embedded CBOR item, as format 2 did
 *   (encoded here with cbor-x the way format 2's encodeBatch did it),
 * - shaped: decoded and carried as `[shape, values...]` (format 3),
 * plus raw through format 2's cbor-x encoder, the reference raw must not be
 * slower than. Prints µs/event of CPU time and bytes/event per batch size and
 * writes scripts/bench/results/format.json.
 *
 *   node dist/scripts/bench/format.js [--events N] [--rounds N] [--batches 10,100,1000]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Encoder, Tag } from 'cbor-x';
import type { SequencedEvent } from '../../src/core/event.js';
import { decodeBatch, encodeBatch } from '../../src/forward/format.js';
import { reading } from './reading.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '300000' },
    rounds: { type: 'string', default: '5' },
    batches: { type: 'string', default: '10,100,1000' },
  },
});
const EVENTS = Number(args.events);
const ROUNDS = Number(args.rounds);
const BATCHES = args.batches.split(',').map(Number);

// the options of the pipeline's value encoder and of format 2's batch encoder
const cbor = new Encoder({ useRecords: false, tagUint8Array: false, variableMapSize: true });

/** format 2's encodeBatch, for reference */
function encodeFormat2(events: readonly SequencedEvent[]): Buffer {
  const s0 = events[0]!.seq;
  let t0 = events[0]!.receivedAt;
  for (const e of events) if (e.receivedAt < t0) t0 = e.receivedAt;
  const topics: string[] = [];
  const topicIndex = new Map<string, number>();
  const ev = events.map((e) => {
    let ti = topicIndex.get(e.topic);
    if (ti === undefined) {
      ti = topics.length;
      topics.push(e.topic);
      topicIndex.set(e.topic, ti);
    }
    return [e.seq - s0, e.receivedAt - t0, ti, e.encoded === true ? new Tag(e.payload, 24) : e.payload];
  });
  return cbor.encode({ v: 2, gw: 'gw-bench-0001', route: 'telemetry', key: 'dev-3', s0, t0, topics, ev });
}

function makeBatches(size: number, encoded: boolean): SequencedEvent[][] {
  const count = Math.max(1, Math.floor(20_000 / size));
  const t0 = Date.UTC(2026, 10, 23);
  return Array.from({ length: count }, (_, b) =>
    Array.from({ length: size }, (_, i): SequencedEvent => {
      const n = b * size + i;
      const json = reading('dev-3', n);
      return {
        seq: 1000 + 3 * n,
        route: 'telemetry',
        kafkaTopic: 'plant.telemetry',
        key: 'dev-3',
        topic: 'site/plant-7/dev/dev-3/telemetry',
        payload: encoded ? cbor.encode(JSON.parse(json)) : Buffer.from(json),
        receivedAt: t0 + 50 * n,
        encoded: encoded || undefined,
      };
    }),
  );
}

interface Case {
  name: string;
  encoded: boolean;
  encode: (events: readonly SequencedEvent[]) => Buffer;
}
const CASES: Case[] = [
  { name: 'raw (format 2, cbor-x)', encoded: false, encode: encodeFormat2 },
  {
    name: 'raw',
    encoded: false,
    encode: (e) =>
      encodeBatch({ gatewayId: 'gw-bench-0001', incarnation: '0123456789abcdef' }, 'telemetry', 'dev-3', e),
  },
  { name: 'tag 24 (format 2)', encoded: true, encode: encodeFormat2 },
  {
    name: 'shaped',
    encoded: true,
    encode: (e) =>
      encodeBatch({ gatewayId: 'gw-bench-0001', incarnation: '0123456789abcdef' }, 'telemetry', 'dev-3', e),
  },
];

function cpuUs(f: () => void): number {
  const c0 = process.cpuUsage();
  f();
  const c = process.cpuUsage(c0);
  return c.user + c.system;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface Row {
  case: string;
  batch: number;
  encodeUsPerEvent: number;
  decodeUsPerEvent: number;
  bytesPerEvent: number;
}
const rows: Row[] = [];
process.stderr.write(`format bench: ${EVENTS} events per round, ${ROUNDS} rounds, median of µs/event of CPU time\n`);
for (const size of BATCHES) {
  for (const c of CASES) {
    const batches = makeBatches(size, c.encoded);
    const values = batches.map((b) => c.encode(b));
    const bytesPerEvent = values.reduce((n, v) => n + v.length, 0) / (batches.length * size);
    const passes = Math.max(1, Math.round(EVENTS / (batches.length * size)));
    let sink = 0;
    const encodeRound = (): number =>
      cpuUs(() => {
        for (let p = 0; p < passes; p++) for (const b of batches) sink += c.encode(b).length;
      }) /
      (passes * batches.length * size);
    const decodeRound = (): number =>
      cpuUs(() => {
        for (let p = 0; p < passes; p++) for (const v of values) sink += decodeBatch(v).events.length;
      }) /
      (passes * batches.length * size);
    encodeRound(); // warm-up: let V8 optimise
    decodeRound();
    const enc: number[] = [];
    const dec: number[] = [];
    for (let r = 0; r < ROUNDS; r++) enc.push(encodeRound());
    for (let r = 0; r < ROUNDS; r++) dec.push(decodeRound());
    if (sink === 0) throw new Error('nothing encoded');
    const row = {
      case: c.name,
      batch: size,
      encodeUsPerEvent: Number(median(enc).toFixed(3)),
      decodeUsPerEvent: Number(median(dec).toFixed(3)),
      bytesPerEvent: Number(bytesPerEvent.toFixed(2)),
    };
    rows.push(row);
    process.stdout.write(
      `batch ${String(size).padStart(4)}  ${c.name.padEnd(24)} encode ${row.encodeUsPerEvent.toFixed(3)} µs/event  decode ${row.decodeUsPerEvent.toFixed(3)} µs/event  ${row.bytesPerEvent.toFixed(1)} B/event\n`,
    );
  }
}
const sample = makeBatches(1, true)[0]![0]!;
const result = {
  bench: 'format',
  node: process.version,
  events: EVENTS,
  rounds: ROUNDS,
  readingJsonBytes: Buffer.byteLength(reading('dev-3', 0)),
  readingCborBytes: sample.payload.length,
  rows,
};
const dir = join(ROOT, 'scripts/bench/results');
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, 'format.json'), `${JSON.stringify(result, null, 2)}\n`);
