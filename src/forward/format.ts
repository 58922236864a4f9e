import { Decoder, Encoder, Tag } from 'cbor-x';
import type { SequencedEvent } from '../core/event.js';
import { EdgehaulError } from '../core/errors.js';

/**
 * The Kafka record value: one CBOR batch of events that share a route and a
 * partition key. Plain CBOR (RFC 8949) with no custom tags, so any CBOR library
 * can read it; the layout is documented in README ("Kafka record format").
 *
 * ```
 * { v: 1, gw: <gateway id>, route: <route>, key: <partition key>,
 *   s0: <first seq>, t0: <earliest received-at, ms>,
 *   topics: [<mqtt topic>, ...],
 *   ev: [[seq - s0, receivedAt - t0, <index into topics>, <data>], ...] }
 * ```
 * `<data>` is the MQTT payload as a byte string when the route has no decode
 * step, else the transformed value as an embedded CBOR data item (tag 24,
 * RFC 8949 section 3.4.5.1: a byte string holding one CBOR item).
 * Tuples with deltas instead of maps keep a 120-byte reading close to its own
 * size; the topic table stores each MQTT topic once per batch.
 * Version 1 (edgehaul 0.1) is version 2 without tag 24.
 */
export const FORMAT_VERSION = 2;
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
  /** The MQTT payload, or for a transformed event the CBOR encoding of `value`. */
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

type WireEvent = [number, number, number, Uint8Array | Tag];
interface WireBatch {
  v: number;
  gw: string;
  route: string;
  key: string;
  s0: number;
  t0: number;
  topics: string[];
  ev: WireEvent[];
}

const encoder = new Encoder({ useRecords: false, tagUint8Array: false, variableMapSize: true });
const decoder = new Decoder({ useRecords: false, mapsAsObjects: true });

/** Events must share route and key and be in sequence order. */
export function encodeBatch(gatewayId: string, route: string, key: string, events: readonly SequencedEvent[]): Buffer {
  if (events.length === 0) throw new Error('a batch needs at least one event');
  const s0 = events[0]!.seq;
  let t0 = events[0]!.receivedAt;
  for (const e of events) if (e.receivedAt < t0) t0 = e.receivedAt;
  const topicIndex = new Map<string, number>();
  const topics: string[] = [];
  const ev: WireEvent[] = events.map((e) => {
    let ti = topicIndex.get(e.topic);
    if (ti === undefined) {
      ti = topics.length;
      topics.push(e.topic);
      topicIndex.set(e.topic, ti);
    }
    return [e.seq - s0, e.receivedAt - t0, ti, e.encoded === true ? new Tag(e.payload, TAG_ENCODED_CBOR) : e.payload];
  });
  const wire: WireBatch = { v: FORMAT_VERSION, gw: gatewayId, route, key, s0, t0, topics, ev };
  return encoder.encode(wire);
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

/** Decodes a record value written by any edgehaul of format version 1. Throws EH_ERR_DECODE_FORMAT otherwise. */
export function decodeBatch(value: Uint8Array): Batch {
  let wire: unknown;
  try {
    wire = decoder.decode(value);
  } catch (err) {
    throw new EdgehaulError('EH_ERR_DECODE_FORMAT', `not CBOR: ${(err as Error).message}`);
  }
  const w = wire as Partial<WireBatch> | null;
  if (w === null || typeof w !== 'object') throw formatError('the value is not a CBOR map');
  if (w.v !== 1 && w.v !== FORMAT_VERSION) throw formatError(`unsupported format version ${String(w.v)} (this decoder reads 1 and ${FORMAT_VERSION})`);
  if (typeof w.gw !== 'string' || typeof w.route !== 'string' || typeof w.key !== 'string') throw formatError('gw, route and key must be strings');
  if (!Number.isSafeInteger(w.s0) || !Number.isSafeInteger(w.t0)) throw formatError('s0 and t0 must be integers');
  if (!Array.isArray(w.topics) || !Array.isArray(w.ev)) throw formatError('topics and ev must be arrays');
  const topics = w.topics;
  const s0 = w.s0!;
  const t0 = w.t0!;
  const events = w.ev.map((e, i): BatchEvent => {
    if (!Array.isArray(e) || e.length !== 4) throw formatError(`ev[${i}] is not a 4-tuple`);
    const [ds, dt, ti, data] = e;
    const topic = topics[ti];
    const embedded = data instanceof Tag && data.tag === TAG_ENCODED_CBOR && data.value instanceof Uint8Array ? data.value : null;
    const bytes = embedded ?? data;
    if (!Number.isSafeInteger(ds) || !Number.isSafeInteger(dt) || typeof topic !== 'string' || !(bytes instanceof Uint8Array)) {
      throw formatError(`ev[${i}] has a wrong type`);
    }
    const payload = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (embedded === null) return { seq: s0 + ds, receivedAt: t0 + dt, topic, payload };
    let value: unknown;
    try {
      value = decoder.decode(payload);
    } catch (err) {
      throw formatError(`ev[${i}]: the embedded CBOR item does not decode: ${(err as Error).message}`);
    }
    return { seq: s0 + ds, receivedAt: t0 + dt, topic, payload, value };
  });
  return { version: w.v, gatewayId: w.gw, route: w.route, key: w.key, events };
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
