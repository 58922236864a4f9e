import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { decodeBatch, HEADERS, type Batch } from '../../src/forward/format.js';
import { onLines } from './lines.js';
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
  /** The broker's process id and Kafka version (from DIR/broker.env), when start.sh wrote them. */
  readonly pid: number | null;
  readonly version: string | null;
  stop(): Promise<void>;
  /** Starts the stopped broker again, same port and data. */
  start(): Promise<void>;
}

export interface StartKafkaOptions {
  /** Where the broker's data and broker.env live (created if missing); a new temp dir by default. */
  dir?: string;
  sasl?: { username: string; password: string };
  tlsPem?: string;
  /** Each line start.sh writes to stderr (its progress; the first run fetches jars); dropped by default. */
  onProgress?: (line: string) => void;
  /** Stops start.sh (it kills the broker it started) and rejects with the signal's reason. */
  signal?: AbortSignal;
  /** 240 s by default; 0: none (a first run may fetch the jars for minutes) */
  timeoutMs?: number;
}

/**
 * A single-node broker of the caller's own, started with the project's script
 * (scripts/kafka/start.sh --dir DIR). When start.sh fails, stop.sh cleans up
 * what it left before the error is thrown.
 */
export async function startKafka(opts: StartKafkaOptions = {}): Promise<KafkaBroker> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'edgehaul-test-kafka-'));
  mkdirSync(dir, { recursive: true });
  const sasl = opts.sasl !== undefined ? ['--sasl', `${opts.sasl.username}:${opts.sasl.password}`] : [];
  const tls = opts.tlsPem !== undefined ? ['--tls', opts.tlsPem] : [];
  let stdout: string;
  try {
    stdout = await runScript(
      join(SCRIPTS, 'start.sh'),
      ['--dir', dir, ...sasl, ...tls],
      opts.timeoutMs ?? 240_000,
      opts.onProgress,
      opts.signal,
    );
  } catch (err) {
    await stopKafka(dir).catch(() => undefined);
    throw err;
  }
  const m = /^KAFKA_BROKERS=(\S+)/m.exec(stdout);
  if (m === null) {
    await stopKafka(dir).catch(() => undefined);
    throw new Error(`start.sh printed no KAFKA_BROKERS: ${stdout}`);
  }
  const s = /^KAFKA_SASL_BROKERS=(\S+)/m.exec(stdout);
  const t = /^KAFKA_TLS_BROKERS=(\S+)/m.exec(stdout);
  const env = brokerEnv(dir);
  return {
    brokers: [m[1]!],
    saslBrokers: s !== null ? [s[1]!] : [],
    tlsBrokers: t !== null ? [t[1]!] : [],
    dir,
    pid: env.pid,
    version: env.version,
    stop: () => stopKafka(dir),
    start: async () => {
      await runScript(join(SCRIPTS, 'start.sh'), ['--dir', dir, '--keep'], 180_000);
    },
  };
}

/** scripts/kafka/stop.sh DIR: idempotent, does nothing when no broker runs in DIR. */
export async function stopKafka(dir: string): Promise<void> {
  await run('bash', [join(SCRIPTS, 'stop.sh'), dir], { timeout: 90_000 });
}

/** What start.sh wrote to DIR/broker.env of a broker it started (brokers empty when there is none). */
export function brokerEnv(dir: string): { brokers: string[]; pid: number | null; version: string | null } {
  let env = '';
  try {
    env = readFileSync(join(dir, 'broker.env'), 'utf8');
  } catch {
    // no broker.env: an older start.sh, or none started
  }
  const pid = Number(/KAFKA_PID=(\d+)/.exec(env)?.[1] ?? NaN);
  const brokers = /KAFKA_BROKERS=(\S+)/.exec(env)?.[1];
  return {
    brokers: brokers !== undefined ? [brokers] : [],
    pid: Number.isFinite(pid) ? pid : null,
    version: /KAFKA_VERSION=(\S+)/.exec(env)?.[1] ?? null,
  };
}

/** `bash script args`: its stdout; stderr lines to `onLine`; rejects on a non-zero exit, the timeout (0: none) or `signal`. */
function runScript(
  script: string,
  args: string[],
  timeoutMs: number,
  onLine?: (line: string) => void,
  signal?: AbortSignal,
): Promise<string> {
  if (signal?.aborted === true) return Promise.reject(signal.reason as Error);
  const child = spawn('bash', [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  const stderr: string[] = [];
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  onLines(child.stderr, (line) => {
    stderr.push(line);
    if (stderr.length > 40) stderr.shift();
    onLine?.(line);
  });
  let why: Error | null = null;
  const stopWith = (err: Error): void => {
    why ??= err;
    child.kill('SIGTERM');
  };
  const timer =
    timeoutMs > 0
      ? setTimeout(() => stopWith(new Error(`${script} took longer than ${timeoutMs} ms`)), timeoutMs)
      : undefined;
  const onAbort = (): void => stopWith(signal!.reason as Error);
  signal?.addEventListener('abort', onAbort, { once: true });
  return new Promise<string>((resolvePromise, reject) => {
    child.once('error', (err) => stopWith(err));
    child.once('close', (code, sig) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (why !== null) reject(why);
      else if (code !== 0)
        reject(new Error(`${script} ${args.join(' ')} failed (${code ?? sig}):\n${stderr.join('\n')}`));
      else resolvePromise(stdout);
    });
  });
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
    await waitFor(
      `topic ${topic} to exist`,
      async () => {
        await consumer.subscribe({ topic, fromBeginning: true });
        return true;
      },
      timeoutMs,
    );
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
        records.push({
          partition,
          offset: message.offset,
          key: message.key?.toString() ?? '',
          headers,
          batch: decodeBatch(message.value!),
        });
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
  const kafka = new Kafka({
    clientId: 'edgehaul-test-admin',
    brokers,
    logLevel: logLevel.NOTHING,
    retry: { retries: 2 },
  });
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
