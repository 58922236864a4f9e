import { Decoder, Encoder, Tag } from 'cbor-x';
import type { SequencedEvent } from '../core/event.js';
import { EdgehaulError } from '../core/errors.js';
import {
  CborWriter,
  headSize,
  intSize,
  MAJOR_ARRAY,
  MAJOR_MAP,
  MAJOR_TAG,
  MAJOR_UINT,
  textSize,
} from './cbor-bytes.js';
import { ShapeTable, type ShapedValue } from './shapes.js';
import { narrowInteger, wideIntegers } from '../core/numbers.js';

/**
 * The Kafka record value: one CBOR batch of events that share a route and a
 * partition key. Plain CBOR (RFC 8949) with no custom tags, so any CBOR library
 * can read it; the layout is specified in docs/record-format.md (with a CDDL
 * schema) and test/vectors holds records with the events they decode to.
 *
 * ```
 * { v: 4, gw: <gateway id>, inc: <buffer incarnation>, route: <route>, key: <partition key>,
 *   s0: <first seq>, t0: <earliest received-at, ms>,
 *   topics: [<mqtt topic>, ...],
 *   caps: {<name>: <text>, ...} | [{...} per topics entry],   (only when the route captures)
 *   shapes: [[<key>, ...], ...],         (only when an event uses it)
 *   ev: [[seq - s0, receivedAt - t0, <index into topics>, <data>], ...] }
 * ```
 * `<data>` is the MQTT payload as a byte string when the route has no decode
 * step; a transformed value that is a map with text keys is
 * `[<index into shapes>, <value>, ...]`, the values in the order of the
 * shape's keys; any other transformed value is an embedded CBOR data item
 * (tag 24, RFC 8949 section 3.4.5.1: a byte string holding one CBOR item).
 * Tuples with deltas instead of maps keep a 120-byte reading close to its own
 * size; the topic and shape tables store each MQTT topic and each list of
 * keys once per batch.
 * Version 1 (edgehaul 0.1) is version 2 without tag 24; version 2 is version 3
 * without shapes (every transformed value as tag 24); version 3 is version 4
 * without `inc` and `caps`, with integers above 2^32 (`t0`) as float64.
 */
export const FORMAT_VERSION = 4;
/**
 * Format 5 is format 4 whose events may have a fifth element: the number of
 * events an aggregate (when_full: downsample) stands for. Only a record that
 * holds an aggregate is written as 5, so consumers that read 4 keep reading
 * everything else, and fail on an aggregate instead of taking it for a reading.
 */
export const AGGREGATE_FORMAT_VERSION = 5;
/** Versions decodeBatch reads. */
export const READ_VERSIONS = [1, 2, 3, 4, 5] as const;

/** The version a record of these events is written as. */
export function formatVersionOf(events: readonly SequencedEvent[]): number {
  return events.some((e) => e.aggregate !== undefined) ? AGGREGATE_FORMAT_VERSION : FORMAT_VERSION;
}
/** RFC 8949 "encoded CBOR data item" */
const TAG_ENCODED_CBOR = 24;
export const CONTENT_TYPE = 'application/vnd.edgehaul.batch+cbor';

export const HEADERS = {
  contentType: 'content-type',
  format: 'edgehaul-format',
  gateway: 'edgehaul-gateway',
  incarnation: 'edgehaul-incarnation',
  route: 'edgehaul-route',
  seqFirst: 'edgehaul-seq-first',
  seqLast: 'edgehaul-seq-last',
  events: 'edgehaul-events',
} as const;

export interface BatchEvent {
  readonly seq: number;
  /** ms since the epoch, when the gateway received the MQTT message */
  readonly receivedAt: number;
  readonly topic: string;
  /** The route's named topic captures for this event ({} when none, or before format 4). */
  readonly captures: Readonly<Record<string, string>>;
  /**
   * The MQTT payload, or for a transformed event the CBOR encoding of `value`:
   * as sent for tag 24; for a shaped map, cbor-x's encoding of `value`, which
   * is the payload the gateway stored unless a float was -0 (cbor-x writes 0)
   * or an integer was written with a longer head than needed.
   */
  readonly payload: Buffer;
  /**
   * The transformed value (decoded JSON, CBOR, aggregates ...); absent for raw
   * payloads. Maps with text keys are plain objects (a `__proto__` key is an
   * own property), other maps are Maps; integers beyond 2^53 are BigInt, byte
   * strings Buffers.
   */
  readonly value?: unknown;
  /**
   * Format 5: this event is an aggregate (when_full: downsample) standing for
   * this many original events; `value` holds its statistics.
   */
  readonly aggregate?: number;
}

export interface Batch {
  readonly version: number;
  readonly gatewayId: string;
  /** The buffer incarnation that numbered these events; null before format 4. */
  readonly incarnation: string | null;
  readonly route: string;
  readonly key: string;
  readonly events: readonly BatchEvent[];
}

/** What the encoder needs besides the events: who numbered them. */
export interface BatchSource {
  readonly gatewayId: string;
  /** The buffer's incarnation id (BufferStore.incarnation). */
  readonly incarnation: string;
}

const encoder = new Encoder({ useRecords: false, tagUint8Array: false, variableMapSize: true });
/** Maps as Maps: keys are kept as they are (cbor-x renames `__proto__` and stringifies other keys when it makes objects). */
const decoder = new Decoder({ useRecords: false, mapsAsObjects: false });

/** Bytes of the batch map's field names; `caps` and `shapes` are written only when used. */
const FIELD_NAME_BYTES = ['v', 'gw', 'inc', 'route', 'key', 's0', 't0', 'topics', 'ev'].reduce(
  (n, f) => n + textSize(f),
  0,
);
const SHAPES_NAME_BYTES = textSize('shapes');
const CAPS_NAME_BYTES = textSize('caps');

type Captures = Readonly<Record<string, string>>;

function capturesId(c: Captures | undefined): string {
  if (c === undefined) return '';
  let id = '';
  for (const k in c) if (Object.hasOwn(c, k)) id += `${k}\u0001${c[k]!}\u0002`;
  return id;
}

function capturesSize(c: Captures | undefined): number {
  if (c === undefined) return headSize(0);
  let n = 0;
  let size = 0;
  for (const k in c) {
    if (!Object.hasOwn(c, k)) continue;
    n++;
    size += textSize(k) + textSize(c[k]!);
  }
  return headSize(n) + size;
}

function writeCaptures(w: CborWriter, c: Captures | undefined): void {
  const keys = c === undefined ? [] : Object.keys(c);
  w.head(MAJOR_MAP, keys.length);
  for (const k of keys) {
    w.text(k);
    w.text(c![k]!);
  }
}

/**
 * Events must share route and key and be in sequence order. Written byte by
 * byte rather than through cbor-x so that a shaped value's items are copied
 * from its payload, never decoded and re-encoded. Maps are shaped only when
 * that makes the record smaller than tag 24 would (not for a single map).
 */
export function encodeBatch(
  source: BatchSource,
  route: string,
  key: string,
  events: readonly SequencedEvent[],
): Buffer {
  if (events.length === 0) throw new Error('a batch needs at least one event');
  const { gatewayId, incarnation } = source;
  const version = formatVersionOf(events);
  const s0 = events[0]!.seq;
  let t0 = events[0]!.receivedAt;
  for (const e of events) if (e.receivedAt < t0) t0 = e.receivedAt;
  // one entry per (topic, captures): the same topic has the same captures unless a reload changed the route's filter
  const topicIndex = new Map<string, number>();
  const topics: string[] = [];
  const topicCaps: Array<Captures | undefined> = [];
  let anyCaps = false;
  const topicOf = new Array<number>(events.length);
  const table = new ShapeTable();
  let shaped: Array<ShapedValue | null> | null = null;
  // sizes with every transformed value as tag 24; `saved`: what shaping saves on the events
  let size =
    headSize(11) /* the map's head, for 9 to 11 fields */ +
    FIELD_NAME_BYTES +
    intSize(version) +
    textSize(gatewayId) +
    textSize(incarnation) +
    textSize(route) +
    textSize(key) +
    intSize(s0) +
    intSize(t0) +
    headSize(events.length);
  let saved = 0;
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    const caps = e.captures;
    const id = caps === undefined ? e.topic : `${e.topic}\u0000${capturesId(caps)}`;
    let ti = topicIndex.get(id);
    if (ti === undefined) {
      ti = topics.length;
      topics.push(e.topic);
      topicCaps.push(caps);
      if (caps !== undefined) anyCaps = true;
      topicIndex.set(id, ti);
      size += textSize(e.topic);
    }
    topicOf[i] = ti;
    size += 1 + intSize(e.seq - s0) + intSize(e.receivedAt - t0) + headSize(ti);
    if (e.aggregate !== undefined) size += headSize(e.aggregate);
    const len = e.payload.length;
    if (e.encoded !== true) {
      size += headSize(len) + len;
      continue;
    }
    const asTag24 = headSize(TAG_ENCODED_CBOR) + headSize(len) + len;
    size += asTag24;
    const sv = table.shape(e.payload);
    if (sv === null) continue;
    shaped ??= new Array<ShapedValue | null>(events.length).fill(null);
    shaped[i] = sv;
    saved += asTag24 - sv.size;
  }
  size += headSize(topics.length);
  // captures: one map for the record when every topic entry has the same, else one per topics entry
  let sharedCaps = true;
  if (anyCaps) {
    const first = capturesId(topicCaps[0]);
    for (let t = 1; t < topicCaps.length && sharedCaps; t++) sharedCaps = capturesId(topicCaps[t]) === first;
    size +=
      CAPS_NAME_BYTES +
      (sharedCaps
        ? capturesSize(topicCaps[0])
        : headSize(topicCaps.length) + topicCaps.reduce((n, c) => n + capturesSize(c), 0));
  }
  let tableSize = SHAPES_NAME_BYTES + headSize(table.shapes.length);
  for (const s of table.shapes) tableSize += headSize(s.keyCount) + s.keyItems.length;
  if (shaped !== null && saved > tableSize) size += tableSize - saved;
  else shaped = null;

  const w = new CborWriter(size);
  w.head(MAJOR_MAP, 9 + (anyCaps ? 1 : 0) + (shaped === null ? 0 : 1));
  w.text('v');
  w.int(version);
  w.text('gw');
  w.text(gatewayId);
  w.text('inc');
  w.text(incarnation);
  w.text('route');
  w.text(route);
  w.text('key');
  w.text(key);
  w.text('s0');
  w.int(s0);
  w.text('t0');
  w.int(t0);
  w.text('topics');
  w.head(MAJOR_ARRAY, topics.length);
  for (const t of topics) w.text(t);
  if (anyCaps) {
    w.text('caps');
    if (sharedCaps) writeCaptures(w, topicCaps[0]);
    else {
      w.head(MAJOR_ARRAY, topicCaps.length);
      for (const c of topicCaps) writeCaptures(w, c);
    }
  }
  if (shaped !== null) {
    w.text('shapes');
    w.head(MAJOR_ARRAY, table.shapes.length);
    for (const s of table.shapes) {
      w.head(MAJOR_ARRAY, s.keyCount);
      w.raw(s.keyItems, 0, s.keyItems.length);
    }
  }
  w.text('ev');
  w.head(MAJOR_ARRAY, events.length);
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    w.head(MAJOR_ARRAY, e.aggregate !== undefined ? 5 : 4);
    w.int(e.seq - s0);
    w.int(e.receivedAt - t0);
    w.head(MAJOR_UINT, topicOf[i]!);
    const sv = shaped === null ? null : shaped[i]!;
    if (sv !== null) {
      w.head(MAJOR_ARRAY, sv.shape.keyCount + 1);
      w.head(MAJOR_UINT, sv.shape.index);
      const bounds = sv.bounds;
      for (let j = 0; j < bounds.length; j += 2) w.raw(sv.payload, bounds[j]!, bounds[j + 1]!);
    } else {
      if (e.encoded === true) w.head(MAJOR_TAG, TAG_ENCODED_CBOR);
      w.bytes(e.payload);
    }
    if (e.aggregate !== undefined) w.head(MAJOR_UINT, e.aggregate);
  }
  return w.done();
}

export function batchHeaders(
  source: BatchSource,
  route: string,
  events: readonly SequencedEvent[],
): Record<string, string> {
  return {
    [HEADERS.contentType]: CONTENT_TYPE,
    [HEADERS.format]: String(formatVersionOf(events)),
    [HEADERS.gateway]: source.gatewayId,
    [HEADERS.incarnation]: source.incarnation,
    [HEADERS.route]: route,
    [HEADERS.seqFirst]: String(events[0]!.seq),
    [HEADERS.seqLast]: String(events[events.length - 1]!.seq),
    [HEADERS.events]: String(events.length),
  };
}

const NO_CAPTURES: Captures = Object.freeze({});

/**
 * Decodes a record value of format version 1 to 5. Throws EH_ERR_DECODE_FORMAT
 * naming the field (and event index) that is wrong; never returns part of a batch.
 */
export function decodeBatch(value: Uint8Array): Batch {
  // byte strings inside values come out as Buffers, as from a Buffer record
  const bytes = Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  let wire: unknown;
  try {
    wire = decoder.decode(bytes);
  } catch (err) {
    throw formatError(`truncated or not CBOR (a record of ${bytes.length} bytes): ${(err as Error).message}`);
  }
  if (!(wire instanceof Map)) throw formatError('the value is not a CBOR map');
  const w = wire as Map<unknown, unknown>;
  const v = w.get('v');
  if (v !== 1 && v !== 2 && v !== 3 && v !== 4 && v !== 5)
    throw formatError(
      `field v: unsupported format version ${describeItem(v)} (this decoder reads ${READ_VERSIONS.join(', ')})`,
    );
  const gw = w.get('gw');
  const route = w.get('route');
  const key = w.get('key');
  for (const [name, f] of [
    ['gw', gw],
    ['route', route],
    ['key', key],
  ] as const)
    if (typeof f !== 'string') throw formatError(`field ${name}: expected a text string, got ${describeItem(f)}`);
  let incarnation: string | null = null;
  if (v >= 4) {
    const inc = w.get('inc');
    if (typeof inc !== 'string' || inc === '')
      throw formatError(`field inc: expected a non-empty text string, got ${describeItem(inc)}`);
    incarnation = inc;
  }
  const s0 = wireInt(w.get('s0'), 's0');
  const t0 = wireInt(w.get('t0'), 't0');
  const topics = w.get('topics');
  const ev = w.get('ev');
  if (!Array.isArray(topics) || !topics.every((t) => typeof t === 'string'))
    throw formatError('field topics: expected an array of text strings');
  if (!Array.isArray(ev)) throw formatError(`field ev: expected an array, got ${describeItem(ev)}`);
  const caps = v >= 4 ? readCaptures(w.get('caps'), topics.length) : null;
  const shapes = v >= 3 && w.get('shapes') !== undefined ? readShapes(w.get('shapes')) : [];
  const events = ev.map((e: unknown, i): BatchEvent => {
    if (!Array.isArray(e) || (e.length !== 4 && !(v >= 5 && e.length === 5)))
      throw formatError(`ev[${i}]: expected a 4-array${v >= 5 ? ' or 5-array' : ''}, got ${describeItem(e)}`);
    const [ds, dt, ti, data, n] = e as unknown[];
    const agg = e.length === 5 ? wireInt(n, `ev[${i}][4] (aggregate count)`) : undefined;
    if (agg !== undefined && agg < 1)
      throw formatError(`ev[${i}][4] (aggregate count): expected a positive integer, got ${agg}`);
    const withAgg = <T extends BatchEvent>(x: T): T => (agg === undefined ? x : { ...x, aggregate: agg });
    const dSeq = wireInt(ds, `ev[${i}][0] (seq - s0)`);
    const dTime = wireInt(dt, `ev[${i}][1] (received_at - t0)`);
    const topic = typeof ti === 'number' ? topics[ti] : undefined;
    if (typeof topic !== 'string')
      throw formatError(`ev[${i}][2]: topic index ${describeItem(ti)} is not in topics (${topics.length} topics)`);
    const seq = s0 + dSeq;
    const receivedAt = t0 + dTime;
    const captures = caps === null ? NO_CAPTURES : Array.isArray(caps) ? caps[ti as number]! : caps;
    if (data instanceof Uint8Array) return withAgg({ seq, receivedAt, topic, captures, payload: asBuffer(data) });
    if (data instanceof Tag && data.tag === TAG_ENCODED_CBOR && data.value instanceof Uint8Array) {
      const payload = asBuffer(data.value);
      let value: unknown;
      try {
        value = plainValue(decoder.decode(payload));
      } catch (err) {
        throw formatError(`ev[${i}][3]: the embedded CBOR item (tag 24) does not decode: ${(err as Error).message}`);
      }
      return withAgg({ seq, receivedAt, topic, captures, payload, value });
    }
    if (!Array.isArray(data) || v < 3)
      throw formatError(
        `ev[${i}][3]: expected a byte string, tag 24${v >= 3 ? ' or a shaped array' : ''}, got ${describeItem(data)}`,
      );
    const value = rebuild(data, shapes, i);
    return withAgg({ seq, receivedAt, topic, captures, payload: encoder.encode(wideIntegers(value)), value });
  });
  return { version: v, gatewayId: gw as string, incarnation, route: route as string, key: key as string, events };
}

/** Decodes one CBOR data item as decodeBatch gives values (see BatchEvent.value). */
export function decodeValue(bytes: Uint8Array): unknown {
  return plainValue(decoder.decode(asBuffer(bytes)));
}

/** Maps with text keys become plain objects (own `__proto__` included); safe BigInts numbers. */
function plainValue(v: unknown, depth = 0): unknown {
  if (typeof v === 'bigint') return narrowInteger(v);
  if (typeof v !== 'object' || v === null || depth > 512) return v;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = plainValue(v[i], depth + 1);
    return v;
  }
  if (v instanceof Map) {
    let textKeys = true;
    for (const k of v.keys()) {
      if (typeof k !== 'string') {
        textKeys = false;
        break;
      }
    }
    if (textKeys) {
      const out: Record<string, unknown> = {};
      for (const [k, x] of v) setOwnField(out, k as string, plainValue(x, depth + 1));
      return out;
    }
    const out = new Map<unknown, unknown>();
    for (const [k, x] of v) out.set(plainValue(k, depth + 1), plainValue(x, depth + 1));
    return out;
  }
  if (v instanceof Tag) return new Tag(plainValue(v.value, depth + 1), v.tag);
  return v;
}

function setOwnField(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__')
    Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}

/** An integer field: a CBOR integer (format 4), or a float64 holding an integer (formats 1 to 3 above 2^32). */
function wireInt(v: unknown, field: string): number {
  if (typeof v === 'bigint' && v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER))
    return Number(v);
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  throw formatError(`field ${field}: expected an integer, got ${describeItem(v)}`);
}

/** `caps`: absent, one map of text to text, or an array of such maps with one per topics entry. */
function readCaptures(caps: unknown, topicCount: number): Captures | Captures[] | null {
  if (caps === undefined) return null;
  if (caps instanceof Map) return captureMap(caps, 'caps');
  if (!Array.isArray(caps))
    throw formatError(`field caps: expected a map or an array of maps, got ${describeItem(caps)}`);
  if (caps.length !== topicCount) throw formatError(`field caps: ${caps.length} entries for ${topicCount} topics`);
  return caps.map((c, i) => {
    if (!(c instanceof Map)) throw formatError(`field caps[${i}]: expected a map, got ${describeItem(c)}`);
    return captureMap(c, `caps[${i}]`);
  });
}

function captureMap(m: Map<unknown, unknown>, field: string): Captures {
  const out: Record<string, string> = {};
  for (const [k, v] of m) {
    if (typeof k !== 'string' || typeof v !== 'string')
      throw formatError(`field ${field}: keys and values must be text strings`);
    setOwnField(out, k, v);
  }
  return Object.freeze(out);
}

function readShapes(shapes: unknown): string[][] {
  if (!Array.isArray(shapes)) throw formatError(`field shapes: expected an array, got ${describeItem(shapes)}`);
  return shapes.map((keys, i) => {
    if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string'))
      throw formatError(`field shapes[${i}]: expected an array of text strings`);
    if (new Set(keys).size !== keys.length) throw formatError(`field shapes[${i}]: a key repeats`);
    return keys;
  });
}

/** `[shape index, v1, ..., vn]` back to the map, as a plain object like any decoded map. */
function rebuild(data: unknown[], shapes: readonly string[][], i: number): Record<string, unknown> {
  const index = data[0];
  const keys = typeof index === 'number' ? shapes[index] : undefined;
  if (keys === undefined)
    throw formatError(`ev[${i}][3]: shape ${describeItem(index)} is not in the shapes table (${shapes.length} shapes)`);
  if (data.length !== keys.length + 1)
    throw formatError(`ev[${i}][3]: ${data.length - 1} values for a shape of ${keys.length} keys`);
  const value: Record<string, unknown> = {};
  for (let k = 0; k < keys.length; k++) setOwnField(value, keys[k]!, plainValue(data[k + 1]));
  return value;
}

function describeItem(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (typeof v === 'string') return `the text ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean')
    return `${typeof v === 'boolean' ? 'the boolean' : 'the number'} ${String(v)}`;
  if (v instanceof Uint8Array) return `a byte string (${v.length} bytes)`;
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (v instanceof Map) return `a map of ${v.size}`;
  if (v instanceof Tag) return `tag ${v.tag}`;
  return typeof v;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** One JSON object per event, as `edgehaul decode` prints it. */
export function batchToJsonLines(batch: Batch): string[] {
  return batch.events.map((e) => {
    const text = 'value' in e ? null : utf8OrNull(e.payload);
    return JSON.stringify(
      {
        gateway: batch.gatewayId,
        ...(batch.incarnation !== null ? { incarnation: batch.incarnation } : {}),
        route: batch.route,
        key: batch.key,
        seq: e.seq,
        received_at: new Date(e.receivedAt).toISOString(),
        topic: e.topic,
        captures: e.captures,
        ...(e.aggregate !== undefined ? { aggregate: e.aggregate } : {}),
        ...('value' in e
          ? { value: e.value }
          : text !== null
            ? { payload: text }
            : { payload_base64: e.payload.toString('base64') }),
      },
      bytesAsBase64,
    );
  });
}

/** Byte strings inside values (a dead letter's payload, a raw field) print as base64. */
function bytesAsBase64(_key: string, v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
  if (
    v !== null &&
    typeof v === 'object' &&
    (v as { type?: unknown }).type === 'Buffer' &&
    Array.isArray((v as { data?: unknown }).data)
  ) {
    return Buffer.from((v as { data: number[] }).data).toString('base64');
  }
  if (typeof v === 'bigint') return v.toString();
  // a map with keys other than text: its entries as [key, value] pairs
  if (v instanceof Map) return [...(v as Map<unknown, unknown>)];
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  return v;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
function utf8OrNull(bytes: Uint8Array): string | null {
  try {
    return utf8.decode(bytes);
  } catch {
    return null;
  }
}

function formatError(message: string): EdgehaulError {
  return new EdgehaulError('EH_ERR_DECODE_FORMAT', `not an edgehaul batch: ${message}`);
}
