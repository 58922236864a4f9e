import { Kafka, logLevel } from 'kafkajs';
import { decodeBatch } from '../../src/forward/format.js';
import type { DeviceRun } from './devices.js';
import type { ConsumedRecord } from './kafka.js';
import { waitFor } from './poll.js';

/** A consumed record with the Kafka record timestamp (ms, CreateTime: set by the producer when it built the request). */
export interface TimedRecord extends ConsumedRecord {
  readonly timestamp: number;
  /** the record value as it was read (to write it again, as a gateway's re-send does) */
  readonly value: Buffer;
}

/**
 * Reads every record of `topic` that exists now: the high watermark of each
 * partition is taken first, then records are read from the beginning until
 * every partition reached it. Call it when no producer writes to the topic
 * any more, and the result is the topic's complete content.
 */
export async function consumeAll(brokers: string[], topic: string, timeoutMs = 60_000): Promise<TimedRecord[]> {
  const kafka = new Kafka({ clientId: 'edgehaul-test', brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  let high: Map<number, bigint>;
  try {
    const offsets = await waitFor(`offsets of ${topic}`, () => admin.fetchTopicOffsets(topic), timeoutMs);
    high = new Map(offsets.map((o) => [o.partition, BigInt(o.high)]));
  } finally {
    await admin.disconnect();
  }
  const consumer = kafka.consumer({
    groupId: `test-all-${topic}-${process.pid}-${Date.now()}`,
    retry: { retries: 10 },
    maxWaitTimeInMs: 250,
  });
  const records: TimedRecord[] = [];
  const next = new Map<number, bigint>();
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
        records.push({
          partition,
          offset: message.offset,
          key: message.key?.toString() ?? '',
          headers,
          timestamp: Number(message.timestamp),
          value: message.value!,
          batch: decodeBatch(message.value!),
        });
        next.set(partition, BigInt(message.offset) + 1n);
      },
    });
    await waitFor(
      `all of ${topic} up to its high watermarks`,
      () => [...high].every(([p, h]) => (next.get(p) ?? 0n) >= h),
      timeoutMs,
      100,
    );
  } finally {
    await consumer.disconnect();
  }
  return records;
}

/**
 * A `done` check for consumeUntil: true once every acknowledged message of
 * `runs` was read (payloads `{"device":..,"n":..}` as startStubbornDevice and
 * runDevice write them). It looks at each record once, so polling stays cheap
 * for large topics.
 */
export function allAckedSeen(runs: readonly DeviceRun[]): (records: readonly ConsumedRecord[]) => boolean {
  const wanted = new Map<string, Set<number>>(runs.map((r) => [r.device, new Set(r.acked)]));
  let missing = runs.reduce((n, r) => n + new Set(r.acked).size, 0);
  let looked = 0;
  return (records) => {
    for (; looked < records.length; looked++) {
      for (const e of records[looked]!.batch.events) {
        let msg: { device?: unknown; n?: unknown };
        try {
          msg = JSON.parse(e.payload.toString()) as typeof msg;
        } catch {
          continue;
        }
        const set = typeof msg.device === 'string' ? wanted.get(msg.device) : undefined;
        if (set !== undefined && typeof msg.n === 'number' && set.delete(msg.n)) missing--;
      }
    }
    return missing === 0;
  };
}
