import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { decodeBatch, HEADERS, type Batch } from '../../src/forward/format.js';
import { waitFor } from './poll.js';

const run = promisify(execFile);
export const ROOT = resolve(import.meta.dirname, '../../..');
const SCRIPTS = join(ROOT, 'scripts/kafka');

export interface KafkaBroker {
  readonly brokers: string[];
  /** With `sasl`: the SASL_PLAINTEXT listener (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512). */
  readonly saslBrokers: string[];
  /** With `tls`: the SSL listener. */
  readonly tlsBrokers: string[];
  readonly dir: string;
  stop(): Promise<void>;
  /** Starts the stopped broker again, same port and data. */
  start(): Promise<void>;
}

/** A broker of this test's own, started with the project's script (its data lives in a temp dir). */
export async function startKafka(opts: { sasl?: { username: string; password: string }; tlsPem?: string } = {}): Promise<KafkaBroker> {
  const dir = mkdtempSync(join(tmpdir(), 'edgehaul-test-kafka-'));
  const sasl = opts.sasl !== undefined ? ['--sasl', `${opts.sasl.username}:${opts.sasl.password}`] : [];
  const tls = opts.tlsPem !== undefined ? ['--tls', opts.tlsPem] : [];
  const { stdout } = await run('bash', [join(SCRIPTS, 'start.sh'), '--dir', dir, ...sasl, ...tls], { timeout: 180_000 });
  const m = /^KAFKA_BROKERS=(\S+)/m.exec(stdout);
  if (m === null) throw new Error(`start.sh printed no KAFKA_BROKERS: ${stdout}`);
  const brokers = [m[1]!];
  const s = /^KAFKA_SASL_BROKERS=(\S+)/m.exec(stdout);
  const t = /^KAFKA_TLS_BROKERS=(\S+)/m.exec(stdout);
  return {
    brokers,
    saslBrokers: s !== null ? [s[1]!] : [],
    tlsBrokers: t !== null ? [t[1]!] : [],
    dir,
    stop: async () => {
      await run('bash', [join(SCRIPTS, 'stop.sh'), dir], { timeout: 60_000 });
    },
    start: async () => {
      await run('bash', [join(SCRIPTS, 'start.sh'), '--dir', dir, '--keep'], { timeout: 180_000 });
    },
  };
}

/** The run's shared broker (scripts/run-tests sets KAFKA_BROKERS), else one of this test's own. */
export async function sharedKafka(): Promise<{ brokers: string[]; stop: () => Promise<void> }> {
  const env = process.env.KAFKA_BROKERS;
  if (env !== undefined && env !== '') return { brokers: env.split(','), stop: async () => undefined };
  return startKafka();
}

export interface ConsumedRecord {
  readonly partition: number;
  readonly offset: string;
  readonly key: string;
  readonly headers: Record<string, string>;
  readonly batch: Batch;
}

/** Reads every record of `topic` from the beginning until `done(records)` holds. */
export async function consumeUntil(
  brokers: string[],
  topic: string,
  done: (records: readonly ConsumedRecord[]) => boolean,
  timeoutMs = 60_000,
): Promise<ConsumedRecord[]> {
  const kafka = new Kafka({ clientId: 'edgehaul-test', brokers, logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: `test-${topic}-${process.pid}-${Date.now()}`, retry: { retries: 10 } });
  const records: ConsumedRecord[] = [];
  await consumer.connect();
  try {
    await waitFor(`topic ${topic} to exist`, async () => {
      await consumer.subscribe({ topic, fromBeginning: true });
      return true;
    }, timeoutMs);
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
        records.push({ partition, offset: message.offset, key: message.key?.toString() ?? '', headers, batch: decodeBatch(message.value!) });
      },
    });
    await waitFor(`records on ${topic}`, () => done(records), timeoutMs, 100);
  } finally {
    await consumer.disconnect();
  }
  return records;
}

export function eventCount(records: readonly ConsumedRecord[]): number {
  return records.reduce((n, r) => n + r.batch.events.length, 0);
}

export { HEADERS };

export interface KafkaCluster {
  readonly brokers: string[];
  readonly dir: string;
  /** Signals node `id` (1-based; SIGKILL by default) and waits until its process is gone. */
  kill(id: number, signal?: 'KILL' | 'TERM'): Promise<void>;
  /** Starts node `id` again with its data and ports; resolves once it serves. */
  restart(id: number): Promise<void>;
  stop(): Promise<void>;
  /** Partition -> leader node id (-1: none) and in-sync replica count, from the cluster's metadata. */
  partitions(topic: string): Promise<Array<{ partition: number; leader: number; isr: number }>>;
}

/** A replicated KRaft cluster of `nodes` nodes (scripts/kafka/cluster.sh), replication 3, min.insync.replicas 2. */
export async function startKafkaCluster(nodes = 3): Promise<KafkaCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'edgehaul-test-cluster-'));
  const script = join(SCRIPTS, 'cluster.sh');
  const { stdout } = await run('bash', [script, 'start', '--dir', dir, '--nodes', String(nodes)], { timeout: 240_000 });
  const m = /^KAFKA_BROKERS=(\S+)/m.exec(stdout);
  if (m === null) throw new Error(`cluster.sh printed no KAFKA_BROKERS: ${stdout}`);
  const brokers = m[1]!.split(',');
  const kafka = new Kafka({ clientId: 'edgehaul-test-admin', brokers, logLevel: logLevel.NOTHING, retry: { retries: 2 } });
  return {
    brokers,
    dir,
    kill: async (id, signal = 'KILL') => {
      await run('bash', [script, 'kill', dir, String(id), signal], { timeout: 90_000 });
    },
    restart: async (id) => {
      await run('bash', [script, 'restart', dir, String(id)], { timeout: 180_000 });
    },
    stop: async () => {
      await run('bash', [script, 'stop', dir], { timeout: 90_000 });
    },
    partitions: async (topic) => {
      // a fresh admin each time: the one before may hold a connection to a node killed since
      const admin = kafka.admin();
      await admin.connect();
      try {
        const md = await admin.fetchTopicMetadata({ topics: [topic] });
        return md.topics[0]!.partitions.map((p) => ({ partition: p.partitionId, leader: p.leader, isr: p.isr.length }));
      } finally {
        await admin.disconnect();
      }
    },
  };
}
