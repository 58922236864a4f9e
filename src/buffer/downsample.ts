import { Decoder, Encoder } from 'cbor-x';
import type { SequencedEvent } from '../core/event.js';

/**
 * `when_full: downsample`: a full route's oldest events are replaced, per key,
 * MQTT topic and time bucket, by one aggregate each instead of being evicted.
 *
 * An aggregate is an ordinary transformed event (`encoded`, a CBOR map, see
 * AggregateValue) with `aggregate` set to the number of original events it
 * stands for. It takes the sequence number of the last event it replaces, so
 * a consumer's watermark per key moves exactly as it would have with the
 * originals, and the rows of aggregates take the places (row ids) of the rows
 * they replace, in sequence order, so they are still sent before the route's
 * newer events (policy.ts).
 *
 * Buckets are aligned on the epoch and their lengths are the configured length
 * times a power of two, so a bucket of 2w holds exactly two of w: aggregating
 * aggregates gives what aggregating the originals at the coarser length gives
 * (sum-based mean; floats up to rounding).
 */

/** Statistics of one numeric field over the events of an aggregate that carry it. */
export interface FieldStats {
  count: number;
  min: number;
  max: number;
  sum: number;
  mean: number;
  last: number;
  first_at: number;
  last_at: number;
}

/** The value of an aggregate event (its payload, CBOR). */
export interface AggregateValue {
  /** original events it stands for */
  count: number;
  /** received-at of the first and the last of them, ms since the epoch */
  first_at: number;
  last_at: number;
  /** length of the time bucket, ms */
  bucket_ms: number;
  /** numeric fields of map values (a plain number: the field `value`) */
  fields: Record<string, FieldStats>;
  /** the last event's value, or its payload bytes when it was not transformed */
  last: unknown;
}

const encoder = new Encoder({ useRecords: false, tagUint8Array: false, variableMapSize: true });
const decoder = new Decoder({ useRecords: false, mapsAsObjects: true });

export function encodeAggregate(a: AggregateValue): Buffer {
  return encoder.encode(a);
}

export function decodeAggregate(payload: Uint8Array): AggregateValue {
  return decoder.decode(payload) as AggregateValue;
}

/** One event as a partial aggregate of one. */
export function toAggregate(e: SequencedEvent): AggregateValue {
  if (e.aggregate !== undefined) return decodeAggregate(e.payload);
  const t = e.receivedAt;
  const fields: Record<string, FieldStats> = {};
  let last: unknown = e.payload;
  if (e.encoded === true) {
    try {
      last = decoder.decode(e.payload);
    } catch {
      last = e.payload;
    }
    const one = (v: number): FieldStats => ({
      count: 1,
      min: v,
      max: v,
      sum: v,
      mean: v,
      last: v,
      first_at: t,
      last_at: t,
    });
    if (typeof last === 'number' && Number.isFinite(last)) fields.value = one(last);
    else if (last !== null && typeof last === 'object' && !Array.isArray(last) && !(last instanceof Uint8Array)) {
      const entries = last instanceof Map ? [...(last as Map<unknown, unknown>)] : Object.entries(last);
      for (const [k, v] of entries)
        if (typeof k === 'string' && typeof v === 'number' && Number.isFinite(v) && k !== '__proto__')
          fields[k] = one(v);
    }
  }
  return { count: 1, first_at: t, last_at: t, bucket_ms: 0, fields, last };
}

/** `b` follows `a` in sequence order. */
export function mergeAggregates(a: AggregateValue, b: AggregateValue): AggregateValue {
  const fields: Record<string, FieldStats> = { ...a.fields };
  for (const [k, f] of Object.entries(b.fields)) {
    const x = fields[k];
    if (x === undefined) {
      fields[k] = { ...f };
      continue;
    }
    const count = x.count + f.count;
    const sum = x.sum + f.sum;
    fields[k] = {
      count,
      min: Math.min(x.min, f.min),
      max: Math.max(x.max, f.max),
      sum,
      mean: sum / count,
      last: f.last,
      first_at: Math.min(x.first_at, f.first_at),
      last_at: Math.max(x.last_at, f.last_at),
    };
  }
  return {
    count: a.count + b.count,
    first_at: Math.min(a.first_at, b.first_at),
    last_at: Math.max(a.last_at, b.last_at),
    bucket_ms: Math.max(a.bucket_ms, b.bucket_ms),
    fields,
    last: b.last,
  };
}

export interface Downsampled {
  /** the aggregates, in sequence order */
  readonly events: SequencedEvent[];
  /** original (not yet aggregated) events folded in */
  readonly originals: number;
}

/**
 * Replaces `events` (in sequence order, all of one route) by one aggregate per
 * Kafka topic, priority, key, MQTT topic, captures and bucket of `bucketMs`
 * (aligned on the epoch). Events that are aggregates already must have
 * buckets no longer than `bucketMs` and dividing it.
 */
export function downsample(events: readonly SequencedEvent[], bucketMs: number): Downsampled {
  const groups = new Map<string, { first: SequencedEvent; seq: number; agg: AggregateValue }>();
  let originals = 0;
  for (const e of events) {
    const a = toAggregate(e);
    if (e.aggregate === undefined) originals++;
    const bucket = Math.floor(a.first_at / bucketMs);
    const id = [e.kafkaTopic, e.priority ?? '', e.key, e.topic, captureId(e.captures), bucket].join('\u0000');
    const g = groups.get(id);
    if (g === undefined) groups.set(id, { first: e, seq: e.seq, agg: a });
    else {
      g.agg = mergeAggregates(g.agg, a);
      g.seq = Math.max(g.seq, e.seq);
    }
  }
  const out = [...groups.values()].map(({ first, seq, agg }): SequencedEvent => {
    const value: AggregateValue = { ...agg, bucket_ms: bucketMs };
    const e: SequencedEvent = {
      seq,
      route: first.route,
      kafkaTopic: first.kafkaTopic,
      key: first.key,
      topic: first.topic,
      payload: encodeAggregate(value),
      receivedAt: value.first_at,
      encoded: true,
      aggregate: value.count,
    };
    const withCaps = first.captures !== undefined ? { ...e, captures: first.captures } : e;
    return first.priority !== undefined ? { ...withCaps, priority: first.priority } : withCaps;
  });
  out.sort((a, b) => a.seq - b.seq);
  return { events: out, originals };
}

function captureId(c: Readonly<Record<string, string>> | undefined): string {
  if (c === undefined) return '';
  return Object.entries(c)
    .map(([k, v]) => `${k}\u0001${v}`)
    .join('\u0002');
}
