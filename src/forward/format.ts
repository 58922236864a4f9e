import { Decoder, Encoder, Tag } from 'cbor-x';
import type { SequencedEvent } from '../core/event.js';
import { EdgehaulError } from '../core/errors.js';
import { CborWriter, headSize, intSize, MAJOR_ARRAY, MAJOR_MAP, MAJOR_TAG, MAJOR_UINT, textSize } from './cbor-bytes.js';
import { ShapeTable, type ShapedValue } from './shapes.js';

/**
 * The Kafka record value: one CBOR batch of events that share a route and a
 * partition key. Plain CBOR (RFC 8949) with no custom tags, so any CBOR library
 * can read it; the layout is documented in README ("Kafka record format").
 *
 * ```
 * { v: 3, gw: <gateway id>, route: <route>, key: <partition key>,
 *   s0: <first seq>, t0: <earliest received-at, ms>,
 *   topics: [<mqtt topic>, ...],
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
 * without shapes (every transformed value as tag 24).
 */
export const FORMAT_VERSION = 3;
/** RFC 8949 "encoded CBOR data item" */
const TAG_ENCODED_CBOR = 24;
export const CONTENT_TYPE = 'application/vnd.edgehaul.batch+cbor';

export const HEADERS = {
  contentType: 'content-type',
  format: 'edgehaul-format',
  gateway: 'edgehaul-gateway',
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
  /**
   * The MQTT payload, or for a transformed event the CBOR encoding of `value`:
   * as sent for tag 24; for a shaped map, cbor-x's encoding of `value`, which
   * is the payload the gateway stored unless a key was `__proto__` (cbor-x
   * decodes it as `__proto_`) or a float was -0 (cbor-x writes 0).
   */
  readonly payload: Buffer;
  /** The transformed value (decoded JSON, CBOR, aggregates ...); absent for raw payloads. */
  readonly value?: unknown;
}

export interface Batch {
  readonly version: number;
  readonly gatewayId: string;
  readonly route: string;
  readonly key: string;
  readonly events: readonly BatchEvent[];
}

interface WireBatch {
  v: number;
  gw: string;
  route: string;
  key: string;
  s0: number;
  t0: number;
  topics: string[];
  shapes: unknown;
  ev: unknown[];
}

const encoder = new Encoder({ useRecords: false, tagUint8Array: false, variableMapSize: true });
const decoder = new Decoder({ useRecords: false, mapsAsObjects: true });

/** Bytes of the batch map's field names; `shapes` is written only when used. */
const FIELD_NAME_BYTES = ['v', 'gw', 'route', 'key', 's0', 't0', 'topics', 'ev'].reduce((n, f) => n + textSize(f), 0);
const SHAPES_NAME_BYTES = textSize('shapes');

/**
 * Events must share route and key and be in sequence order. Written byte by
 * byte rather than through cbor-x so that a shaped value's items are copied
 * from its payload, never decoded and re-encoded. Maps are shaped only when
 * that makes the record smaller than tag 24 would (not for a single map).
 */
export function encodeBatch(gatewayId: string, route: string, key: string, events: readonly SequencedEvent[]): Buffer {
  if (events.length === 0) throw new Error('a batch needs at least one event');
  const s0 = events[0]!.seq;
  let t0 = events[0]!.receivedAt;
  for (const e of events) if (e.receivedAt < t0) t0 = e.receivedAt;
  const topicIndex = new Map<string, number>();
  const topics: string[] = [];
  const topicOf = new Array<number>(events.length);
  const table = new ShapeTable();
  let shaped: Array<ShapedValue | null> | null = null;
  // sizes with every transformed value as tag 24; `saved`: what shaping saves on the events
  let size = headSize(9) /* the map's head, for 8 fields as for 9 */ + FIELD_NAME_BYTES + intSize(FORMAT_VERSION) + textSize(gatewayId) + textSize(route) + textSize(key) +
    intSize(s0) + intSize(t0) + headSize(events.length);
  let saved = 0;
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    let ti = topicIndex.get(e.topic);
    if (ti === undefined) {
      ti = topics.length;
      topics.push(e.topic);
      topicIndex.set(e.topic, ti);
      size += textSize(e.topic);
    }
    topicOf[i] = ti;
    size += 1 + intSize(e.seq - s0) + intSize(e.receivedAt - t0) + headSize(ti);
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
  let tableSize = SHAPES_NAME_BYTES + headSize(table.shapes.length);
  for (const s of table.shapes) tableSize += headSize(s.keyCount) + s.keyItems.length;
  if (shaped !== null && saved > tableSize) size += tableSize - saved;
  else shaped = null;

  const w = new CborWriter(size);
  w.head(MAJOR_MAP, shaped === null ? 8 : 9);
  w.text('v');
  w.int(FORMAT_VERSION);
  w.text('gw');
  w.text(gatewayId);
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
    w.head(MAJOR_ARRAY, 4);
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
  }
  return w.done();
}

export function batchHeaders(gatewayId: string, route: string, events: readonly SequencedEvent[]): Record<string, string> {
  return {
    [HEADERS.contentType]: CONTENT_TYPE,
    [HEADERS.format]: String(FORMAT_VERSION),
    [HEADERS.gateway]: gatewayId,
    [HEADERS.route]: route,
    [HEADERS.seqFirst]: String(events[0]!.seq),
    [HEADERS.seqLast]: String(events[events.length - 1]!.seq),
    [HEADERS.events]: String(events.length),
  };
}

/** Decodes a record value of format version 1, 2 or 3. Throws EH_ERR_DECODE_FORMAT otherwise. */
export function decodeBatch(value: Uint8Array): Batch {
  // byte strings inside values come out as Buffers, as from a Buffer record
  const bytes = Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  let wire: unknown;
  try {
    wire = decoder.decode(bytes);
  } catch (err) {
    throw new EdgehaulError('EH_ERR_DECODE_FORMAT', `not CBOR: ${(err as Error).message}`);
  }
  const w = wire as Partial<WireBatch> | null;
  if (w === null || typeof w !== 'object') throw formatError('the value is not a CBOR map');
  if (w.v !== 1 && w.v !== 2 && w.v !== 3) throw formatError(`unsupported format version ${String(w.v)} (this decoder reads 1, 2 and 3)`);
  if (typeof w.gw !== 'string' || typeof w.route !== 'string' || typeof w.key !== 'string') throw formatError('gw, route and key must be strings');
  if (!Number.isSafeInteger(w.s0) || !Number.isSafeInteger(w.t0)) throw formatError('s0 and t0 must be integers');
  if (!Array.isArray(w.topics) || !Array.isArray(w.ev)) throw formatError('topics and ev must be arrays');
  const topics = w.topics;
  const shapes = w.v === 3 && w.shapes !== undefined ? readShapes(w.shapes) : [];
  const s0 = w.s0!;
  const t0 = w.t0!;
  const events = w.ev.map((e, i): BatchEvent => {
    if (!Array.isArray(e) || e.length !== 4) throw formatError(`ev[${i}] is not a 4-tuple`);
    const [ds, dt, ti, data] = e;
    const topic = topics[ti];
    if (!Number.isSafeInteger(ds) || !Number.isSafeInteger(dt) || typeof topic !== 'string') throw formatError(`ev[${i}] has a wrong type`);
    const seq = s0 + ds;
    const receivedAt = t0 + dt;
    if (data instanceof Uint8Array) return { seq, receivedAt, topic, payload: asBuffer(data) };
    if (data instanceof Tag && data.tag === TAG_ENCODED_CBOR && data.value instanceof Uint8Array) {
      const payload = asBuffer(data.value);
      let value: unknown;
      try {
        value = decoder.decode(payload);
      } catch (err) {
        throw formatError(`ev[${i}]: the embedded CBOR item does not decode: ${(err as Error).message}`);
      }
      return { seq, receivedAt, topic, payload, value };
    }
    if (!Array.isArray(data) || w.v !== 3) throw formatError(`ev[${i}] has a wrong type`);
    const value = rebuild(data, shapes, i);
    return { seq, receivedAt, topic, payload: encoder.encode(value), value };
  });
  return { version: w.v, gatewayId: w.gw, route: w.route, key: w.key, events };
}

/** Each shape as the property names cbor-x gives a map's keys (it renames `__proto__`, which would set the prototype). */
function readShapes(shapes: unknown): string[][] {
  if (!Array.isArray(shapes)) throw formatError('shapes must be an array');
  return shapes.map((keys, i) => {
    if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string')) throw formatError(`shapes[${i}] is not an array of strings`);
    if (new Set(keys).size !== keys.length) throw formatError(`shapes[${i}] repeats a key`);
    return keys.map((k: string) => (k === '__proto__' ? '__proto_' : k));
  });
}

/** `[shape index, v1, ..., vn]` back to the map, as a plain object like any decoded map. */
function rebuild(data: unknown[], shapes: readonly string[][], i: number): Record<string, unknown> {
  const index = data[0];
  const keys = typeof index === 'number' ? shapes[index] : undefined;
  if (keys === undefined) throw formatError(`ev[${i}]: shape ${String(index)} is not in the shapes table (${shapes.length} shapes)`);
  if (data.length !== keys.length + 1) throw formatError(`ev[${i}] has ${data.length - 1} values for a shape of ${keys.length} keys`);
  const value: Record<string, unknown> = {};
  for (let k = 0; k < keys.length; k++) value[keys[k]!] = data[k + 1];
  return value;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** One JSON object per event, as `edgehaul decode` prints it. */
export function batchToJsonLines(batch: Batch): string[] {
  return batch.events.map((e) => {
    const text = 'value' in e ? null : utf8OrNull(e.payload);
    return JSON.stringify({
      gateway: batch.gatewayId,
      route: batch.route,
      key: batch.key,
      seq: e.seq,
      received_at: new Date(e.receivedAt).toISOString(),
      topic: e.topic,
      ...('value' in e ? { value: e.value } : text !== null ? { payload: text } : { payload_base64: e.payload.toString('base64') }),
    }, bytesAsBase64);
  });
}

/** Byte strings inside values (a dead letter's payload, a raw field) print as base64. */
function bytesAsBase64(_key: string, v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
  if (v !== null && typeof v === 'object' && (v as { type?: unknown }).type === 'Buffer' && Array.isArray((v as { data?: unknown }).data)) {
    return Buffer.from((v as { data: number[] }).data).toString('base64');
  }
  if (typeof v === 'bigint') return v.toString();
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
