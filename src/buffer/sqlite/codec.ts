import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { Encoder } from 'cbor-x';
import type { RoutedEvent, SequencedEvent } from '../../core/event.js';

// Stored tuples rather than maps: the field names would otherwise be repeated per event on flash.
// Route and Kafka topic are the same for every event of a row, so they live in the row's columns.
// A fifth element 1 marks a payload that is a CBOR-encoded value (a transform's output); a sixth
// (with the fifth 0 or 1) holds the route's topic captures. Rows made by downsampling hold events
// whose numbers are not contiguous: each of their tuples has eight elements, the seventh its own
// sequence number and the eighth the number of events an aggregate stands for (or null).
type StoredTuple = [
  key: string,
  topic: string,
  payload: Uint8Array,
  receivedAt: number,
  encoded?: 0 | 1,
  captures?: Record<string, string> | null,
  seq?: number,
  aggregate?: number | null,
];
/** Rows written by schema version 1 carried route and Kafka topic in every tuple. */
type LegacyTuple = [
  route: string,
  kafkaTopic: string,
  key: string,
  topic: string,
  payload: Uint8Array,
  receivedAt: number,
];

/** The columns a row's events are read back with. */
export interface RowHead {
  readonly route: string;
  readonly kafka_topic: string;
  readonly first_seq: number;
}

/** A row's body: its events as a CBOR array of tuples, compressed when that pays. */
export class RowCodec {
  private readonly encoder = new Encoder({ useRecords: false, tagUint8Array: false });

  /** `explicit`: the events keep their own sequence numbers (a downsampled row), not first_seq + index. */
  encode(events: readonly RoutedEvent[], explicit = false): Buffer {
    const tuples: StoredTuple[] = events.map((e): StoredTuple => {
      if (explicit)
        return [
          e.key,
          e.topic,
          e.payload,
          e.receivedAt,
          e.encoded === true ? 1 : 0,
          e.captures ?? null,
          (e as SequencedEvent).seq,
          e.aggregate ?? null,
        ];
      if (e.captures !== undefined)
        return [e.key, e.topic, e.payload, e.receivedAt, e.encoded === true ? 1 : 0, e.captures];
      return e.encoded === true
        ? [e.key, e.topic, e.payload, e.receivedAt, 1]
        : [e.key, e.topic, e.payload, e.receivedAt];
    });
    return pack(this.encoder.encode(tuples));
  }

  /** The body as the events take it decoded (what the read limits count). */
  raw(body: Buffer): Buffer {
    return unpack(body);
  }

  decode(raw: Buffer, row: RowHead): SequencedEvent[] {
    const tuples = this.encoder.decode(raw) as Array<StoredTuple | LegacyTuple>;
    return tuples.map((t, i): SequencedEvent => {
      if (t.length === 6 && t[4] instanceof Uint8Array) {
        const [route, kafkaTopic, key, topic, payload, receivedAt] = t as LegacyTuple;
        return { seq: row.first_seq + i, route, kafkaTopic, key, topic, payload: asBuffer(payload), receivedAt };
      }
      const [key, topic, payload, receivedAt, encoded, caps, seq, aggregate] = t as StoredTuple;
      const captures = caps ?? undefined;
      // one object shape whatever the tuple held (absent fields undefined): the forwarder's hot paths
      // (toRecords, encodeBatch) stay monomorphic; spreads made a shape per combination
      return {
        seq: seq ?? row.first_seq + i,
        route: row.route,
        kafkaTopic: row.kafka_topic,
        key,
        topic,
        payload: asBuffer(payload),
        receivedAt,
        encoded: encoded === 1 ? true : undefined,
        captures,
        aggregate: aggregate ?? undefined,
        priority: undefined,
      };
    });
  }
}

/**
 * Readings of one device repeat their field names and most of their values, so
 * a row compresses to a fraction of its size: less flash written per event and
 * more backlog in the same bound. A compressed body starts with 0x00, which no
 * plain body does (a plain body is a CBOR array, 0x80-0x9f).
 */
const COMPRESSED = 0x00;
const COMPRESS_FROM_BYTES = 256;

function pack(body: Buffer): Buffer {
  if (body.length < COMPRESS_FROM_BYTES) return body;
  // a 4 KiB window still spans dozens of readings; the default 32 KiB window and memLevel 8 cost
  // ~256 KiB of native memory per call, which the GC frees late: RSS grew by 80+ MB under a drain
  const deflated = deflateRawSync(body, { level: 1, windowBits: 12, memLevel: 5 });
  if (deflated.length + 1 >= body.length) return body;
  return Buffer.concat([Buffer.of(COMPRESSED), deflated]);
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function unpack(body: Buffer): Buffer {
  return body[0] === COMPRESSED ? inflateRawSync(body.subarray(1)) : body;
}
