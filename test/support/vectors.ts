/**
 * The test/vectors corpus: Kafka record values with their keys and headers,
 * the events each must decode to, and invalid records with the text their
 * error must contain (docs/record-format.md, "Test vectors"). Format 4 and 5
 * records come from the real encoder (encodeBatch, batchHeaders); formats 1 to 3 are
 * written as their encoders wrote them (cbor-x over the wire map).
 * scripts/vectors.ts writes it (`npm run vectors`); test/unit/forward/vectors.test.ts
 * checks the checked-in files against it.
 *
 * Values are described in a small typed model (integers vs floats, byte
 * strings, maps with any keys) so that the expected JSON says what the CBOR
 * holds: JavaScript alone cannot tell a float 3.0 from an integer 3.
 */
import { resolve } from 'node:path';
import { Encoder, Tag } from 'cbor-x';
import type { SequencedEvent } from '../../src/core/event.js';
import { batchHeaders, CONTENT_TYPE, encodeBatch, HEADERS } from '../../src/forward/format.js';

/** A float of the given width (an integer-valued float stays a float). */
export class Float {
  constructor(
    readonly n: number,
    readonly width: 16 | 64 = 64,
  ) {}
}
export type Model =
  number | bigint | Float | string | boolean | null | Buffer | Model[] | Map<Model, Model> | { [k: string]: Model };

// ---- model -> CBOR (what a device or a step would have produced)

function head(major: number, n: bigint): Buffer {
  const m = major << 5;
  if (n < 24n) return Buffer.of(m | Number(n));
  if (n < 0x100n) return Buffer.of(m | 24, Number(n));
  if (n < 0x10000n) {
    const b = Buffer.alloc(3);
    b[0] = m | 25;
    b.writeUInt16BE(Number(n), 1);
    return b;
  }
  if (n < 0x100000000n) {
    const b = Buffer.alloc(5);
    b[0] = m | 26;
    b.writeUInt32BE(Number(n), 1);
    return b;
  }
  const b = Buffer.alloc(9);
  b[0] = m | 27;
  b.writeBigUInt64BE(n, 1);
  return b;
}

const HALF: Record<string, string> = {
  '-0': '8000',
  NaN: '7e00',
  Infinity: '7c00',
  '-Infinity': 'fc00',
  '1.5': '3e00',
  '0': '0000',
};

export function encodeModel(v: Model): Buffer {
  if (v === null) return Buffer.of(0xf6);
  if (v === true) return Buffer.of(0xf5);
  if (v === false) return Buffer.of(0xf4);
  if (typeof v === 'number' || typeof v === 'bigint') {
    if (typeof v === 'number' && !Number.isSafeInteger(v))
      throw new Error(`${v}: a number in the model is an integer; use Float`);
    const n = BigInt(v);
    const limit = 1n << 64n;
    if (n >= 0n && n < limit) return head(0, n);
    if (n < 0n && -1n - n < limit) return head(1, -1n - n);
    const tag = n >= 0n ? 2 : 3;
    let m = n >= 0n ? n : -1n - n;
    const bytes: number[] = [];
    while (m > 0n) {
      bytes.unshift(Number(m & 0xffn));
      m >>= 8n;
    }
    return Buffer.concat([head(6, BigInt(tag)), head(2, BigInt(bytes.length)), Buffer.from(bytes)]);
  }
  if (v instanceof Float) {
    if (v.width === 16) {
      const key = Object.is(v.n, -0) ? '-0' : String(v.n);
      const h = HALF[key];
      if (h === undefined) throw new Error(`no half float for ${key}`);
      return Buffer.from(`f9${h}`, 'hex');
    }
    const b = Buffer.alloc(9);
    b[0] = 0xfb;
    b.writeDoubleBE(v.n, 1);
    return b;
  }
  if (typeof v === 'string') {
    const bytes = Buffer.from(v, 'utf8');
    return Buffer.concat([head(3, BigInt(bytes.length)), bytes]);
  }
  if (Buffer.isBuffer(v)) return Buffer.concat([head(2, BigInt(v.length)), v]);
  if (Array.isArray(v)) return Buffer.concat([head(4, BigInt(v.length)), ...v.map(encodeModel)]);
  const entries: Array<[Model, Model]> =
    v instanceof Map ? [...v] : Object.keys(v).map((k) => [k, (v as Record<string, Model>)[k]!]);
  return Buffer.concat([
    head(5, BigInt(entries.length)),
    ...entries.flatMap(([k, x]) => [encodeModel(k), encodeModel(x)]),
  ]);
}

// ---- model -> expected JSON (docs/record-format.md, "Test vectors")

export function expectedJson(v: Model): string {
  if (v === null || typeof v === 'boolean') return String(v);
  if (typeof v === 'number' || typeof v === 'bigint') return BigInt(v).toString();
  if (v instanceof Float) {
    const n = v.n;
    if (Number.isNaN(n)) return '{"$float":"NaN"}';
    if (n === Infinity) return '{"$float":"Infinity"}';
    if (n === -Infinity) return '{"$float":"-Infinity"}';
    if (Object.is(n, -0)) return '-0.0';
    const s = String(n);
    return /[.e]/.test(s) ? s : `${s}.0`;
  }
  if (typeof v === 'string') return JSON.stringify(v);
  if (Buffer.isBuffer(v)) return `{"$bytes":${JSON.stringify(v.toString('base64'))}}`;
  if (Array.isArray(v)) return `[${v.map(expectedJson).join(',')}]`;
  if (v instanceof Map)
    return `{"$map":[${[...v].map(([k, x]) => `[${expectedJson(k)},${expectedJson(x)}]`).join(',')}]}`;
  return `{${Object.keys(v)
    .map((k) => `${JSON.stringify(k)}:${expectedJson((v as Record<string, Model>)[k]!)}`)
    .join(',')}}`;
}

// ---- the corpus

interface Ev {
  readonly seq: number;
  readonly receivedAt: number;
  readonly topic: string;
  readonly captures?: Record<string, string>;
  /** a raw payload ... */
  readonly payload?: Buffer;
  /** ... or a transformed value */
  readonly value?: Model;
  /** format 5: an aggregate standing for this many events (value: its aggregate-value) */
  readonly aggregate?: number;
}

interface Valid {
  readonly name: string;
  readonly description: string;
  readonly version: number;
  readonly route: string;
  readonly key: string;
  readonly events: readonly Ev[];
}

const GW = 'gw-3d1219c7c4c5';
const INC = '9f2c4e1a7b3d5e60';
const T = 1_795_430_000_000;

const reading = (n: number, extra: Record<string, Model> = {}): Model => ({
  device: 'dev-7',
  n,
  temp: new Float(21.5 + n / 10),
  ts: T + n * 1000,
  ok: true,
  ...extra,
});

const health = Buffer.from(
  JSON.stringify({
    type: 'edgehaul.health',
    version: 1,
    gateway_id: GW,
    at: '2026-11-23T10:33:20.000Z',
    health: { status: 'ok', reasons: [] },
    buffer: { events: 0, bytes: 0 },
  }),
);

const deadLetter = (n: number, step: string, reason: string, payload: Buffer): Model => ({
  route: 'telemetry',
  step,
  reason,
  topic: 'site/s1/dev-7/telemetry',
  client_id: 'dev-7',
  received_at: T + n,
  payload,
});

const ODD: Record<string, Model> = {
  u64max: 18446744073709551615n,
  i64min: -9223372036854775808n,
  above2p53: 9007199254740993n,
  ts: T,
  bignum: 2n ** 70n,
  negbignum: -(2n ** 70n) - 1n,
  negzero_half: new Float(-0, 16),
  negzero: new Float(-0),
  nan: new Float(NaN, 16),
  inf: new Float(Infinity),
  neginf: new Float(-Infinity),
  three_float: new Float(3),
  three_int: 3,
  tiny: new Float(5e-324),
  huge: new Float(1e300),
  nested: { a: { b: [1, new Float(2.5), { c: null }] } },
  int_keys: new Map<Model, Model>([
    [1, 'one'],
    [-2, 'minus two'],
    [Buffer.from([0, 255]), true],
  ]),
  ['__proto__']: { polluted: true },
  text: 'ünïcødé ✓',
};

export const VALID: Valid[] = [
  {
    name: 'v4-raw',
    version: 4,
    route: 'telemetry',
    key: 'dev-7',
    description:
      'raw payloads (no decode step): JSON text, bytes that are not UTF-8, an empty payload; captures shared by the record',
    events: [
      {
        seq: 1042,
        receivedAt: T + 123,
        topic: 'site/s1/dev-7/telemetry',
        captures: { site: 's1', device: 'dev-7' },
        payload: Buffer.from('{"temp":21.5}'),
      },
      {
        seq: 1045,
        receivedAt: T + 100,
        topic: 'site/s1/dev-7/status',
        captures: { site: 's1', device: 'dev-7' },
        payload: Buffer.from([0xc3, 0x28, 0xff]),
      },
      {
        seq: 1050,
        receivedAt: T + 2000,
        topic: 'site/s1/dev-7/telemetry',
        captures: { site: 's1', device: 'dev-7' },
        payload: Buffer.alloc(0),
      },
    ],
  },
  {
    name: 'v4-shaped',
    version: 4,
    route: 'telemetry',
    key: 'dev-7',
    description:
      'decoded JSON maps travel shaped (keys once per record), beside a raw payload and a map of another shape; captures differ per topic',
    events: [
      {
        seq: 7,
        receivedAt: T,
        topic: 'site/s1/dev-7/telemetry',
        captures: { site: 's1', device: 'dev-7' },
        value: reading(1),
      },
      {
        seq: 8,
        receivedAt: T + 10,
        topic: 'site/s2/dev-7/telemetry',
        captures: { site: 's2', device: 'dev-7' },
        value: reading(2),
      },
      {
        seq: 9,
        receivedAt: T + 20,
        topic: 'site/s1/dev-7/telemetry',
        captures: { site: 's1', device: 'dev-7' },
        payload: Buffer.from('raw'),
      },
      {
        seq: 12,
        receivedAt: T + 30,
        topic: 'site/s1/dev-7/telemetry',
        captures: { site: 's1', device: 'dev-7' },
        value: reading(3),
      },
      {
        seq: 13,
        receivedAt: T + 40,
        topic: 'site/s1/dev-7/alarm',
        captures: { site: 's1', device: 'dev-7' },
        value: { level: 3, what: 'fire' },
      },
      {
        seq: 14,
        receivedAt: T + 50,
        topic: 'site/s1/dev-7/alarm',
        captures: { site: 's1', device: 'dev-7' },
        value: { level: 1, what: 'smoke' },
      },
    ],
  },
  {
    name: 'v4-single-map',
    version: 4,
    route: 'telemetry',
    key: 'dev-8',
    description: 'a record with a single map keeps it as tag 24 (shaping would cost more than it saves); no captures',
    events: [{ seq: 1, receivedAt: T, topic: 'plant/dev-8', value: reading(1) }],
  },
  {
    name: 'v4-tag24',
    version: 4,
    route: 'values',
    key: 'k',
    description:
      'transformed values that are not maps with distinct text keys travel as tag 24: numbers, text, arrays, a map with integer keys, an empty map',
    events: [
      { seq: 1, receivedAt: T, topic: 't', value: new Float(21.5) },
      { seq: 2, receivedAt: T, topic: 't', value: 42 },
      { seq: 3, receivedAt: T, topic: 't', value: 'text' },
      { seq: 4, receivedAt: T, topic: 't', value: [1, 'two', [new Float(3.5)], null] },
      {
        seq: 5,
        receivedAt: T,
        topic: 't',
        value: new Map<Model, Model>([
          [1, 'a'],
          [2, 'b'],
        ]),
      },
      { seq: 6, receivedAt: T, topic: 't', value: false },
    ],
  },
  {
    name: 'v4-odd-numbers',
    version: 4,
    route: 'odd',
    key: 'k',
    description:
      '64-bit integers, bignums, -0.0 (half and double), NaN, infinities, 3.0 vs 3, nested maps, non-text keys, a __proto__ key; shaped twice, then alone as tag 24',
    events: [
      { seq: 1, receivedAt: T, topic: 't', value: ODD },
      { seq: 2, receivedAt: T + 1, topic: 't', value: { ...ODD, three_int: 4 } },
      { seq: 3, receivedAt: T + 2, topic: 't', value: [ODD] },
      { seq: 4, receivedAt: T + 3, topic: 't', value: { ['__proto__']: 1, constructor: 'x' } },
    ],
  },
  {
    name: 'v4-dead-letters',
    version: 4,
    route: '$dead_letters',
    key: 'dev-7',
    description:
      "dead letters: {route, step, reason, topic, client_id, received_at, payload}, with the input's captures",
    events: [
      {
        seq: 20,
        receivedAt: T,
        topic: 'site/s1/dev-7/telemetry',
        captures: { site: 's1', device: 'dev-7' },
        value: deadLetter(
          0,
          '0:decode',
          'decode json: Unexpected token \'}\', "{"a":}" is not valid JSON',
          Buffer.from('{"a":}'),
        ),
      },
      {
        seq: 21,
        receivedAt: T + 5,
        topic: 'site/s1/dev-7/telemetry',
        captures: { site: 's1', device: 'dev-7' },
        value: deadLetter(5, '1:validate', 'validate: temp must be a number', Buffer.from([0x01, 0x02])),
      },
    ],
  },
  {
    name: 'v4-health',
    version: 4,
    route: 'edgehaul.health',
    key: GW,
    description: 'a health record: raw JSON on the internal topic $edgehaul/health, keyed by the gateway id',
    events: [{ seq: 99, receivedAt: T, topic: '$edgehaul/health', payload: health }],
  },
  {
    name: 'v5-aggregate',
    version: 5,
    route: 'telemetry',
    key: 'dev-7',
    description:
      'format 5 (when_full: downsample): a reading, an aggregate of three map readings (fields with count/min/max/sum/mean/last and times) and an aggregate of two raw payloads (count and last payload only)',
    events: [
      {
        seq: 40,
        receivedAt: T,
        topic: 'site/s1/dev-7/telemetry',
        captures: { site: 's1', device: 'dev-7' },
        value: { temp: new Float(20.5), state: 'idle' },
      },
      {
        seq: 47,
        receivedAt: T + 60_000,
        topic: 'site/s1/dev-7/telemetry',
        captures: { site: 's1', device: 'dev-7' },
        aggregate: 3,
        value: {
          count: 3,
          first_at: T + 60_000,
          last_at: T + 61_500,
          bucket_ms: 120_000,
          fields: {
            temp: {
              count: 3,
              min: new Float(21.5),
              max: new Float(23.5),
              sum: new Float(67.5),
              mean: new Float(22.5),
              last: new Float(23.5),
              first_at: T + 60_000,
              last_at: T + 61_500,
            },
            n: {
              count: 2,
              min: 4,
              max: 9,
              sum: 13,
              mean: new Float(6.5),
              last: 9,
              first_at: T + 60_000,
              last_at: T + 61_500,
            },
          },
          last: { temp: new Float(23.5), n: 9, state: 'run' },
        },
      },
      {
        seq: 52,
        receivedAt: T + 120_000,
        topic: 'site/s1/dev-7/raw',
        captures: { site: 's1', device: 'dev-7' },
        aggregate: 2,
        value: {
          count: 2,
          first_at: T + 120_000,
          last_at: T + 120_900,
          bucket_ms: 120_000,
          fields: {},
          last: Buffer.from('{"t":19.0}'),
        },
      },
    ],
  },
  {
    name: 'v3-shaped',
    version: 3,
    route: 'telemetry',
    key: 'dev-7',
    description: 'format 3: shapes, no inc or caps; t0 and integers above 2^32 as float64',
    events: [
      {
        seq: 5,
        receivedAt: T,
        topic: 'site/s1/dev-7/telemetry',
        value: { device: 'dev-7', temp: new Float(21.5), ts: new Float(T) },
      },
      {
        seq: 6,
        receivedAt: T + 7,
        topic: 'site/s1/dev-7/telemetry',
        value: { device: 'dev-7', temp: new Float(22.5), ts: new Float(T + 7) },
      },
      { seq: 8, receivedAt: T + 9, topic: 'site/s1/dev-7/telemetry', payload: Buffer.from('raw') },
    ],
  },
  {
    name: 'v2-tag24',
    version: 2,
    route: 'telemetry',
    key: 'dev-7',
    description: 'format 2: a raw payload and a transformed value as tag 24',
    events: [
      { seq: 5, receivedAt: T, topic: 'site/a/dev-1', payload: Buffer.from('raw') },
      {
        seq: 7,
        receivedAt: T + 7,
        topic: 'site/a/dev-1',
        value: { temp: new Float(21.5), ok: true, raw: Buffer.from([1, 2]) },
      },
    ],
  },
  {
    name: 'v1-raw',
    version: 1,
    route: 'telemetry',
    key: 'k',
    description: 'format 1 (edgehaul 0.1): raw payloads only',
    events: [
      { seq: 5, receivedAt: 1000, topic: 't', payload: Buffer.from('x') },
      { seq: 6, receivedAt: 1002, topic: 't', payload: Buffer.from('y') },
    ],
  },
];

const legacyEncoder = new Encoder({ useRecords: false, tagUint8Array: false, variableMapSize: true });

/** Formats 1 to 3 as their encoders wrote them: cbor-x over the wire map (integers above 2^32 as float64). */
function legacyValue(v: Valid): Buffer {
  const s0 = v.events[0]!.seq;
  const t0 = Math.min(...v.events.map((e) => e.receivedAt));
  const topics = [...new Set(v.events.map((e) => e.topic))];
  const maps = v.events.filter((e) => e.value !== undefined);
  const shapes: string[][] = [];
  const ev = v.events.map((e) => {
    let data: unknown;
    if (e.payload !== undefined) data = e.payload;
    else if (v.version === 3 && maps.length > 1) {
      const keys = Object.keys(e.value as object);
      let s = shapes.findIndex((k) => k.join('\u0000') === keys.join('\u0000'));
      if (s < 0) s = shapes.push(keys) - 1;
      // the values' own CBOR, copied: decoded through cbor-x they would lose their float widths
      data = new RawItems(
        s,
        keys.map((k) => encodeModel((e.value as Record<string, Model>)[k]!)),
      );
    } else data = new Tag(encodeModel(e.value!), 24);
    return [e.seq - s0, e.receivedAt - t0, topics.indexOf(e.topic), data];
  });
  const wire: Record<string, unknown> = { v: v.version, gw: GW, route: v.route, key: v.key, s0, t0, topics };
  if (shapes.length > 0) wire.shapes = shapes;
  wire.ev = ev;
  // cbor-x cannot copy items: write the map through it with placeholders, then splice the items in
  const placeholders: Buffer[] = [];
  const withMarks = {
    ...wire,
    ev: ev.map((e) =>
      e.map((x) =>
        x instanceof RawItems ? (placeholders.push(x.bytes()), `\u0000raw${placeholders.length - 1}\u0000`) : x,
      ),
    ),
  };
  let out = legacyEncoder.encode(withMarks);
  placeholders.forEach((bytes, i) => {
    const mark = legacyEncoder.encode(`\u0000raw${i}\u0000`);
    const at = out.indexOf(mark);
    out = Buffer.concat([out.subarray(0, at), bytes, out.subarray(at + mark.length)]);
  });
  return out;
}

class RawItems {
  constructor(
    readonly shape: number,
    readonly items: Buffer[],
  ) {}
  bytes(): Buffer {
    return Buffer.concat([
      encodeModel(Array.from({ length: this.items.length + 1 }, () => null)).subarray(0, 1),
      encodeModel(this.shape),
      ...this.items,
    ]);
  }
}

function value(v: Valid): Buffer {
  if (v.version < 4) return legacyValue(v);
  return encodeBatch({ gatewayId: GW, incarnation: INC }, v.route, v.key, v.events.map(sequenced(v)));
}

function sequenced(v: Valid) {
  return (e: Ev): SequencedEvent => ({
    seq: e.seq,
    route: v.route,
    kafkaTopic: 'plant.telemetry',
    key: v.key,
    topic: e.topic,
    receivedAt: e.receivedAt,
    ...(e.captures !== undefined ? { captures: e.captures } : {}),
    ...(e.aggregate !== undefined ? { aggregate: e.aggregate } : {}),
    ...(e.payload !== undefined ? { payload: e.payload } : { payload: encodeModel(e.value!), encoded: true }),
  });
}

function headers(v: Valid): Record<string, string> {
  if (v.version >= 4) return batchHeaders({ gatewayId: GW, incarnation: INC }, v.route, v.events.map(sequenced(v)));
  return {
    [HEADERS.contentType]: CONTENT_TYPE,
    [HEADERS.format]: String(v.version),
    [HEADERS.gateway]: GW,
    [HEADERS.route]: v.route,
    [HEADERS.seqFirst]: String(v.events[0]!.seq),
    [HEADERS.seqLast]: String(v.events.at(-1)!.seq),
    [HEADERS.events]: String(v.events.length),
  };
}

function expectedLines(v: Valid): string {
  return v.events
    .map((e) => {
      const captures = v.version >= 4 ? (e.captures ?? {}) : {};
      const fields = [
        `"gateway":${JSON.stringify(GW)}`,
        `"incarnation":${v.version >= 4 ? JSON.stringify(INC) : 'null'}`,
        `"route":${JSON.stringify(v.route)}`,
        `"key":${JSON.stringify(v.key)}`,
        `"seq":${e.seq}`,
        `"received_at":${e.receivedAt}`,
        `"topic":${JSON.stringify(e.topic)}`,
        `"captures":${expectedJson(captures)}`,
        ...(e.aggregate !== undefined ? [`"aggregate":${e.aggregate}`] : []),
        e.payload !== undefined ? `"payload":${expectedJson(e.payload)}` : `"value":${expectedJson(e.value!)}`,
      ];
      return `{${fields.join(',')}}\n`;
    })
    .join('');
}

interface Invalid {
  readonly name: string;
  readonly description: string;
  /** text the decoder's error message must contain */
  readonly error: string;
  readonly value: () => Buffer;
}

const wireV4 = (over: Record<string, unknown>): Buffer =>
  legacyEncoder.encode({
    v: 4,
    gw: GW,
    inc: INC,
    route: 'r',
    key: 'k',
    s0: 1,
    t0: 1000,
    topics: ['t'],
    ev: [
      [0, 0, 0, Buffer.from('x')],
      [1, 0, 0, Buffer.from('y')],
    ],
    ...over,
  });

export const INVALID: Invalid[] = [
  {
    name: 'bad-truncated',
    description: 'a valid record cut in half',
    error: 'truncated',
    value: () => {
      const b = value(VALID[1]!);
      return b.subarray(0, Math.floor(b.length / 2));
    },
  },
  {
    name: 'bad-version',
    description: 'an unknown format version (99)',
    error: 'version',
    value: () => wireV4({ v: 99 }),
  },
  {
    name: 'bad-topic-index',
    description: 'ev[1][2], the topic index, is text',
    error: 'ev[1][2]',
    value: () =>
      wireV4({
        ev: [
          [0, 0, 0, Buffer.from('x')],
          [1, 0, 'zero', Buffer.from('y')],
        ],
      }),
  },
  { name: 'bad-s0', description: 's0 is text', error: 's0', value: () => wireV4({ s0: '1' }) },
  {
    name: 'bad-shape-index',
    description: 'ev[0][3] names shape 7 of a table of 1',
    error: 'ev[0][3]',
    value: () => wireV4({ shapes: [['a']], ev: [[0, 0, 0, [7, 1]]] }),
  },
  {
    name: 'bad-no-inc',
    description: 'format 4 without the incarnation',
    error: 'inc',
    value: () => legacyEncoder.encode({ v: 4, gw: GW, route: 'r', key: 'k', s0: 1, t0: 1000, topics: ['t'], ev: [] }),
  },
  {
    name: 'bad-aggregate-count',
    description: 'format 5: ev[0][4], the aggregate count, is 0',
    error: 'ev[0][4]',
    value: () => wireV4({ v: 5, ev: [[0, 0, 0, new Tag(encodeModel({ count: 0 }), 24), 0]] }),
  },
  {
    name: 'bad-five-in-v4',
    description: 'format 4 has no fifth event element (aggregates are format 5)',
    error: 'ev[0]',
    value: () => wireV4({ ev: [[0, 0, 0, Buffer.from('x'), 2]] }),
  },
  {
    name: 'bad-not-map',
    description: 'the value is a CBOR array',
    error: 'map',
    value: () => legacyEncoder.encode([4, GW]),
  },
];

export interface Corpus {
  readonly files: Map<string, Buffer>;
}

export function buildCorpus(): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const manifest = {
    about:
      'edgehaul Kafka record test vectors; see docs/record-format.md, "Test vectors". Generated by scripts/vectors.ts: do not edit.',
    vectors: VALID.map((v) => {
      files.set(`${v.name}.cbor`, value(v));
      files.set(`${v.name}.events.jsonl`, Buffer.from(expectedLines(v)));
      return {
        name: v.name,
        description: v.description,
        format: v.version,
        value: `${v.name}.cbor`,
        key: v.key,
        headers: headers(v),
        events: `${v.name}.events.jsonl`,
      };
    }),
    invalid: INVALID.map((v) => {
      files.set(`${v.name}.cbor`, v.value());
      return { name: v.name, description: v.description, value: `${v.name}.cbor`, error: v.error };
    }),
  };
  files.set('manifest.json', Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`));
  return files;
}

/** test/vectors in the checkout (this file runs from dist/test/support). */
export const VECTORS_DIR = resolve(import.meta.dirname, '..', '..', '..', 'test', 'vectors');
