/**
 * Kafka side of the benchmark: a topic whose record timestamps are the
 * broker's append time (message.timestamp.type=LogAppendTime), so the time an
 * event reached Kafka can be read afterwards without a consumer competing for
 * CPU during the run; and a counting consumer that reads a topic up to its
 * high watermarks and tallies events in the decoded batches.
 */
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { decodeBatch } from '../../src/forward/format.js';

export function kafkaClient(brokers: string[]): Kafka {
  return new Kafka({ clientId: 'edgehaul-bench', brokers, logLevel: logLevel.NOTHING, retry: { retries: 8 } });
}

/** Creates the topic with LogAppendTime timestamps; returns the timestamp type Kafka reports for it. */
export async function createBenchTopic(admin: Admin, topic: string, partitions: number): Promise<string> {
  await admin.createTopics({
    waitForLeaders: true,
    topics: [
      {
        topic,
        numPartitions: partitions,
        replicationFactor: 1,
        configEntries: [{ name: 'message.timestamp.type', value: 'LogAppendTime' }],
      },
    ],
  });
  const described = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: 2 /* TOPIC */, name: topic, configNames: ['message.timestamp.type'] }],
  });
  return (
    described.resources[0]?.configEntries.find((e) => e.configName === 'message.timestamp.type')?.configValue ??
    'unknown'
  );
}

/** A fresh bench topic (3 partitions, LogAppendTime), named after `name` about as long as a production topic name (it is stored with every buffered event). */
export async function newBenchTopic(brokers: string[], name: string): Promise<string> {
  const topic = `eh.${name.replace(/[^a-z0-9]/g, '').slice(0, 10)}.${Date.now().toString(36)}`;
  const admin = kafkaClient(brokers).admin();
  await admin.connect();
  try {
    await createBenchTopic(admin, topic, 3);
  } finally {
    await admin.disconnect();
  }
  return topic;
}

export interface KafkaTally {
  readonly records: number;
  readonly events: number;
  readonly distinctSeqs: number;
  readonly duplicates: number;
  readonly decodeErrors: number;
  /** sum of record value sizes */
  readonly valueBytes: number;
  /** sum of key and header (name + value) sizes */
  readonly keyHeaderBytes: number;
  /** broker append time (epoch ms) of the first and last record */
  readonly firstAppendAt: number | null;
  readonly lastAppendAt: number | null;
  /** events per append-time millisecond bucket, for windowed rates: [epoch ms, events] */
  readonly arrivals: Array<[number, number]>;
  /** the consumer reached every partition's high watermark */
  readonly complete: boolean;
  readonly consumeMs: number;
}

/** Events whose append time lies in [from, to). */
export function eventsBetween(t: KafkaTally, from: number, to: number): number {
  let n = 0;
  for (const [at, events] of t.arrivals) if (at >= from && at < to) n += events;
  return n;
}

/** One decoded event and the broker append time of its record (epoch ms). */
export type OnEvent = (event: ReturnType<typeof decodeBatch>['events'][number], appendAt: number) => void;

/** One Kafka record as the consumer saw it. */
export interface RawRecord {
  readonly partition: number;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  /** sum of header name and value sizes */
  readonly headerBytes: number;
  /** the record timestamp (epoch ms): the broker's append time on a bench topic */
  readonly appendAt: number;
}

/**
 * Reads the whole topic (nothing may be producing to it any more) up to the
 * high watermarks taken at the start, bounded by timeoutMs, and hands every
 * record to `onRecord`. Returns whether every partition's high watermark was
 * reached, and how long it took.
 */
export async function consumeRecords(
  kafka: Kafka,
  topic: string,
  timeoutMs: number,
  onRecord: (r: RawRecord) => void,
): Promise<{ complete: boolean; consumeMs: number }> {
  const started = Date.now();
  const admin = kafka.admin();
  await admin.connect();
  const highs = new Map<number, bigint>();
  try {
    for (const p of await admin.fetchTopicOffsets(topic)) highs.set(p.partition, BigInt(p.high));
  } finally {
    await admin.disconnect();
  }
  const next = new Map<number, bigint>();
  for (const p of highs.keys()) next.set(p, 0n);
  const reached = (): boolean => [...highs].every(([p, high]) => (next.get(p) ?? 0n) >= high);
  if (!reached()) {
    const consumer = kafka.consumer({
      groupId: `edgehaul-bench-${topic}-${process.pid}`,
      maxWaitTimeInMs: 100,
      maxBytes: 64 * 1024 * 1024,
    });
    await consumer.connect();
    try {
      await consumer.subscribe({ topic, fromBeginning: true });
      let done: () => void = () => undefined;
      const finished = new Promise<void>((r) => (done = r));
      await consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch }) => {
          for (const m of batch.messages) {
            let headerBytes = 0;
            for (const [k, v] of Object.entries(m.headers ?? {}))
              headerBytes +=
                Buffer.byteLength(k) + (Buffer.isBuffer(v) ? v.length : Buffer.byteLength(String(v ?? '')));
            onRecord({
              partition: batch.partition,
              key: m.key,
              value: m.value,
              headerBytes,
              appendAt: Number(m.timestamp),
            });
            next.set(batch.partition, BigInt(m.offset) + 1n);
          }
          if (reached()) done();
        },
      });
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([finished, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
      clearTimeout(timer);
    } finally {
      await consumer.disconnect().catch(() => undefined);
    }
  }
  return { complete: reached(), consumeMs: Date.now() - started };
}

/**
 * Reads the whole topic of edgehaul batches (see consumeRecords) and tallies
 * the events in them. `onEvent`, if given, sees every decoded event
 * (duplicates included).
 */
export async function consumeAll(
  kafka: Kafka,
  topic: string,
  timeoutMs: number,
  onEvent?: OnEvent,
): Promise<KafkaTally> {
  const seqs = new Set<number>();
  const arrivals = new Map<number, number>();
  let records = 0;
  let events = 0;
  let duplicates = 0;
  let decodeErrors = 0;
  let valueBytes = 0;
  let keyHeaderBytes = 0;
  let first: number | null = null;
  let last: number | null = null;
  const { complete, consumeMs } = await consumeRecords(kafka, topic, timeoutMs, (m) => {
    records++;
    const at = m.appendAt;
    if (first === null || at < first) first = at;
    if (last === null || at > last) last = at;
    keyHeaderBytes += (m.key?.length ?? 0) + m.headerBytes;
    if (m.value === null) {
      decodeErrors++;
      return;
    }
    valueBytes += m.value.length;
    try {
      const b = decodeBatch(m.value);
      events += b.events.length;
      arrivals.set(at, (arrivals.get(at) ?? 0) + b.events.length);
      for (const e of b.events) {
        if (seqs.has(e.seq)) duplicates++;
        else seqs.add(e.seq);
        onEvent?.(e, at);
      }
    } catch {
      decodeErrors++;
    }
  });
  return {
    records,
    events,
    distinctSeqs: seqs.size,
    duplicates,
    decodeErrors,
    valueBytes,
    keyHeaderBytes,
    firstAppendAt: first,
    lastAppendAt: last,
    arrivals: [...arrivals].sort((a, b) => a[0] - b[0]),
    complete,
    consumeMs,
  };
}
