/**
 * Process plumbing shared by the benchmark entry points (suite.ts,
 * durability.ts): option reading, the run frame (temp dir, Kafka, cleanup on
 * exit, errors, Ctrl-C and a watchdog, checked with pgrep), child process
 * tracking, Kafka and a plain MQTT broker process (both from the shared
 * test-support library, test/support/), load generator processes (load.ts)
 * and small report helpers.
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { startUpstreamBroker } from '../../test/support/broker.js';
import { brokerEnv, ROOT, startKafka as startOwnKafka, stopKafka as stopKafkaDir } from '../../test/support/kafka.js';
import { freePort } from '../../test/support/ports.js';
import { mergeHistograms, percentile, type HistogramData } from './histogram.js';
import { kafkaClient } from './kafka-count.js';
import type { DeviceTally, FromLoad, LoadResult, LoadSpec, ToLoad } from './load.js';

export { ROOT };

// ---------------------------------------------------------------- options

/**
 * Reads the values of util.parseArgs, each falling back to the environment
 * variable EDGEHAUL_BENCH_<NAME> (upper case, - as _).
 */
export function optionReader<V extends Record<string, string | boolean | undefined>>(
  values: V,
): {
  get: (name: keyof V & string) => string | boolean | undefined;
  num: (name: keyof V & string, dflt: number, min: number, max: number) => number;
  flag: (name: keyof V & string) => boolean;
  str: (name: keyof V & string) => string | null;
} {
  const get = (name: keyof V & string): string | boolean | undefined => {
    const v = values[name];
    if (v !== undefined) return v;
    return process.env[`EDGEHAUL_BENCH_${name.toUpperCase().replace(/-/g, '_')}`];
  };
  return {
    get,
    num: (name, dflt, min, max) => {
      const raw = get(name);
      if (raw === undefined || raw === '') return dflt;
      const n = Number(raw);
      if (!Number.isFinite(n) || n < min || n > max)
        throw new Error(`--${name} must be a number in [${min}, ${max}], got ${String(raw)}`);
      return n;
    },
    flag: (name) => {
      const v = get(name);
      return v === true || v === '1' || v === 'true';
    },
    str: (name) => {
      const v = get(name);
      return typeof v === 'string' && v !== '' ? v : null;
    },
  };
}

/** Prints the first doc comment of a benchmark's source file (its --help) and exits. */
export function printHelp(sourceFile: string): never {
  const text = readFileSync(join(ROOT, sourceFile), 'utf8');
  process.stdout.write(`${/\/\*\*([\s\S]*?)\*\//.exec(text)?.[1]?.replace(/^ \* ?/gm, '') ?? ''}\n`);
  process.exit(0);
}

// ---------------------------------------------------------------- logging

let logStart = Date.now();
export function resetLogClock(): void {
  logStart = Date.now();
}
export function log(msg: string): void {
  process.stderr.write(`[bench +${((Date.now() - logStart) / 1000).toFixed(1).padStart(5)}s] ${msg}\n`);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));
export const sleepUntil = (epochMs: number): Promise<void> => sleep(epochMs - Date.now());

// ---------------------------------------------------------------- child processes

const children = new Set<ChildProcess>();

export function track<T extends ChildProcess>(child: T): T {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** SIGTERM to every tracked child still running, SIGKILL after `graceMs`. */
export async function killChildren(graceMs = 5000): Promise<void> {
  const list = [...children].filter((c) => c.exitCode === null && c.signalCode === null);
  if (list.length === 0) return;
  const exits = list.map((c) => new Promise<void>((r) => c.once('exit', () => r())));
  for (const c of list) c.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.all(exits), new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
  clearTimeout(timer);
  for (const c of list) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

/** PIDs of processes whose command line contains `pattern` (our temp dir), excluding this process. */
export function pgrep(pattern: string): Array<{ pid: number; cmd: string }> {
  try {
    const out = execFileSync('pgrep', ['-af', pattern], { encoding: 'utf8' });
    return out
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => {
        const sp = l.indexOf(' ');
        return { pid: Number(l.slice(0, sp)), cmd: l.slice(sp + 1) };
      })
      .filter((p) => p.pid !== process.pid);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

/** Kills, by pid, whatever still has our temp dir in its command line (nothing should); returns what survived. */
export async function reapLeftovers(tmpRoot: string): Promise<Array<{ pid: number; cmd: string }>> {
  let left = pgrep(tmpRoot);
  if (left.length > 0) {
    log(`leftover processes, killing: ${left.map((p) => `${p.pid} ${p.cmd.slice(0, 80)}`).join('; ')}`);
    for (const p of left) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await sleep(500);
    left = pgrep(tmpRoot);
  }
  log(`pgrep -f ${tmpRoot}: ${left.length === 0 ? 'no processes left' : `${left.length} still running`}`);
  return left;
}

// ---------------------------------------------------------------- kafka

export interface KafkaHandle {
  readonly brokers: string[];
  readonly pid: number | null;
  readonly version: string | null;
  stop(): Promise<void>;
}

/** scripts/kafka/stop.sh: idempotent; a failure is logged, not thrown (cleanup goes on). */
export async function stopKafka(dir: string): Promise<void> {
  await stopKafkaDir(dir).catch((err: Error) => {
    process.stderr.write(`kafka stop.sh failed: ${err.message}\n`);
  });
}

export async function startKafka(dir: string): Promise<KafkaHandle> {
  const t0 = Date.now();
  const k = await startOwnKafka({ dir });
  log(`Kafka ${k.version ?? '?'} on ${k.brokers[0]} (pid ${k.pid}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return { brokers: k.brokers, pid: k.pid, version: k.version, stop: () => stopKafka(dir) };
}

/** A broker started earlier with scripts/kafka/start.sh --dir DIR (not stopped by us). */
export function existingKafka(dir: string): KafkaHandle {
  const env = brokerEnv(dir);
  return {
    brokers: env.brokers.length > 0 ? env.brokers : [''],
    pid: env.pid,
    version: env.version,
    stop: async () => undefined,
  };
}

/** A fresh broker answers the first idempotent producer with "coordinator is loading" for a moment; absorb that here. */
export async function warmKafka(brokers: string[]): Promise<void> {
  const producer = kafkaClient(brokers).producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: true,
  });
  const t0 = Date.now();
  try {
    await producer.connect();
    await producer.send({ topic: 'eh.bench.warmup', acks: -1, messages: [{ key: 'warmup', value: 'warmup' }] });
    log(`Kafka warm-up (idempotent producer + one record) ${Date.now() - t0} ms`);
  } catch (err) {
    log(`Kafka warm-up failed (continuing): ${(err as Error).message}`);
  } finally {
    await producer.disconnect().catch(() => undefined);
  }
}

/** `--kafka X`: a running broker (HOST:PORT, or the --dir of scripts/kafka/start.sh), else one of our own in `ownDir`. */
export async function openKafka(kafka: string | null, ownDir: string): Promise<KafkaHandle> {
  if (kafka !== null && existsSync(join(kafka, 'broker.env'))) {
    const h = existingKafka(kafka);
    log(`using the Kafka started in ${kafka}: ${h.brokers[0]}`);
    return h;
  }
  if (kafka !== null) return { brokers: kafka.split(','), pid: null, version: null, stop: async () => undefined };
  log('starting Kafka (scripts/kafka/start.sh)');
  return startKafka(ownDir);
}

// ---------------------------------------------------------------- the run frame

let abortingRun = false;
/** True once a signal, the watchdog or a stray rejection began stopping the run: write no results then. */
export function aborting(): boolean {
  return abortingRun;
}

export interface BenchFrame {
  readonly tmpRoot: string;
  /** where our own Kafka lives (null with --kafka) */
  readonly ownKafkaDir: string | null;
}

/**
 * Runs a benchmark body in a fresh temp dir and always cleans up after it:
 * every tracked child process, our own Kafka (stop.sh), and anything else
 * that still has the temp dir on its command line (pgrep), also on errors,
 * SIGINT/SIGTERM and when the watchdog fires after `maxSecs`. Returns the
 * body's exit code (1 when processes were left over), after removing the
 * temp dir (unless `keep`). `childGraceMs`: how long a child may take to
 * exit after SIGTERM (longer than its own children's, when it runs a frame
 * of its own).
 */
export async function runFrame(
  o: { prefix: string; kafka: string | null; keep: boolean; maxSecs: number; childGraceMs?: number },
  body: (f: BenchFrame) => Promise<number>,
): Promise<number> {
  resetLogClock();
  const tmpRoot = mkdtempSync(join(tmpdir(), o.prefix));
  const ownKafkaDir = o.kafka === null ? join(tmpRoot, 'kafka') : null;
  let cleaned: Promise<Array<{ pid: number; cmd: string }>> | null = null;
  const cleanup = (): Promise<Array<{ pid: number; cmd: string }>> => {
    cleaned ??= (async () => {
      await killChildren(o.childGraceMs);
      if (ownKafkaDir !== null && existsSync(ownKafkaDir)) {
        log('stopping Kafka');
        await stopKafka(ownKafkaDir);
      }
      return reapLeftovers(tmpRoot);
    })();
    return cleaned;
  };
  const finish = (): void => {
    if (o.keep) log(`kept ${tmpRoot}`);
    else rmSync(tmpRoot, { recursive: true, force: true });
  };
  const abort = (why: string, code: number): void => {
    abortingRun = true;
    log(`${why}: cleaning up`);
    void cleanup().finally(() => {
      finish();
      process.exit(code);
    });
  };
  const onSignal = (signal: NodeJS.Signals): void => abort(signal, 130);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // a stray rejection must not end the process before Kafka and the children are stopped
  const onRejection = (err: unknown): void => {
    log(`unhandled rejection: ${(err as Error)?.stack ?? String(err)}`);
    abort('unhandled rejection', 1);
  };
  process.on('unhandledRejection', onRejection);
  const watchdog = setTimeout(
    () => abort(`watchdog: still running after --max-secs ${o.maxSecs}`, 1),
    o.maxSecs * 1000,
  );
  watchdog.unref();
  let code: number;
  try {
    code = await body({ tmpRoot, ownKafkaDir });
  } finally {
    clearTimeout(watchdog);
    const left = await cleanup();
    if (left.length > 0) code = 1;
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    process.removeListener('unhandledRejection', onRejection);
    finish();
  }
  return code;
}

/** A benchmark's main(): exit with its code; on a crash, kill the children first. */
export function runMain(main: () => Promise<number>): void {
  main().then(
    (code) => process.exit(code),
    async (err: unknown) => {
      process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
      await killChildren();
      process.exit(1);
    },
  );
}

// ---------------------------------------------------------------- a plain MQTT broker process

/** The tests' plain MQTT broker process (aedes); `tag` on its command line for pgrep, tracked for cleanup. */
export async function startBrokerProcess(
  tag: string,
): Promise<{ port: number; pid: number; stop: () => Promise<void> }> {
  return startUpstreamBroker({ tag, track });
}

export { freePort };

// ---------------------------------------------------------------- load generators

export interface LoadRun {
  /** epoch ms the publishers start */
  readonly at: number;
  readonly measureFrom: number;
  readonly measureTo: number;
  readonly pids: number[];
  readonly done: Promise<LoadResult[]>;
  /** ends the publishing phase now (the generators then wait for outstanding PUBACKs and report) */
  stop(): void;
  /** publishes and PUBACKs of all processes, from their last progress messages */
  progress(): { sent: number; acked: number };
}

/**
 * Forks one load.ts per spec, waits until all are connected, starts them
 * together (150 ms later), returns at once. `tag` goes on their command line
 * so that pgrep finds them.
 */
export async function startLoad(specs: LoadSpec[], tag: string): Promise<LoadRun> {
  const latest = specs.map(() => ({ sent: 0, acked: 0 }));
  const procs = specs.map((spec, i) => {
    const child = track(
      fork(join(ROOT, 'dist/scripts/bench/load.js'), [JSON.stringify(spec), tag], {
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      }),
    );
    let onReady: () => void = () => undefined;
    let onFail: (err: Error) => void = () => undefined;
    const ready = new Promise<void>((res, rej) => {
      onReady = res;
      onFail = rej;
    });
    const result = new Promise<LoadResult>((res, rej) => {
      child.on('message', (m: FromLoad) => {
        if (m.type === 'ready') onReady();
        else if (m.type === 'progress') latest[i] = { sent: m.sent, acked: m.acked };
        else if (m.type === 'result') {
          latest[i] = { sent: m.result.sent, acked: m.result.acked };
          res(m.result);
        } else if (m.type === 'error') {
          const err = new Error(`load generator failed: ${m.message}`);
          onFail(err);
          rej(err);
        }
      });
      child.once('exit', (code, signal) => {
        const err = new Error(`load generator exited (${code ?? signal}) before reporting`);
        onFail(err);
        rej(err);
      });
    });
    result.catch(() => undefined);
    return { child, ready, result };
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      Promise.all(procs.map((p) => p.ready)),
      new Promise<never>(
        (_, rej) => (timer = setTimeout(() => rej(new Error('load generators not ready within 30 s')), 30_000)),
      ),
    ]);
  } catch (err) {
    for (const p of procs) p.child.kill('SIGKILL');
    throw err;
  } finally {
    clearTimeout(timer);
  }
  const at = Date.now() + 150;
  for (const p of procs) p.child.send({ type: 'start', at } satisfies ToLoad);
  const measureFrom = at + specs[0]!.warmupMs;
  const done = Promise.all(procs.map((p) => p.result));
  // rejected when a generator is killed (Ctrl-C) before anyone awaits it: not an unhandled rejection
  done.catch(() => undefined);
  return {
    at,
    measureFrom,
    measureTo: measureFrom + specs[0]!.durationMs,
    pids: procs.map((p) => p.child.pid!),
    done,
    stop: () => {
      for (const p of procs) if (p.child.connected) p.child.send({ type: 'stop' } satisfies ToLoad);
    },
    progress: () =>
      latest.reduce((a, b) => ({ sent: a.sent + b.sent, acked: a.acked + b.acked }), { sent: 0, acked: 0 }),
  };
}

/** Splits devices round-robin over `procs` groups (no empty group). */
export function splitDevices(names: readonly string[], procs: number): string[][] {
  const groups: string[][] = Array.from({ length: Math.max(1, Math.min(procs, names.length)) }, () => []);
  names.forEach((d, i) => groups[i % groups.length]!.push(d));
  return groups;
}

export interface LoadSummary {
  readonly processes: number;
  readonly sent: number;
  readonly acked: number;
  readonly ackedInWindow: number;
  readonly ackedPerSec: number;
  readonly unacked: number;
  readonly payloadBytesPerEvent: number | null;
  readonly latencyMs: {
    p50: number | null;
    p90: number | null;
    p99: number | null;
    p999: number | null;
    max: number;
    mean: number | null;
    samples: number;
  };
  readonly startedAt: number;
  readonly stoppedAt: number;
  readonly lastAckAt: number;
  readonly resent: number;
  readonly disconnects: number;
  readonly reconnects: number;
  readonly maxOwed: number;
  readonly cpuSecs: number;
  readonly errors: string[];
}

export function summariseLoad(results: LoadResult[], windowMs: number): LoadSummary {
  const hist: HistogramData = mergeHistograms(results.map((r) => r.latency));
  const sent = results.reduce((n, r) => n + r.sent, 0);
  return {
    processes: results.length,
    sent,
    acked: results.reduce((n, r) => n + r.acked, 0),
    ackedInWindow: results.reduce((n, r) => n + r.ackedInWindow, 0),
    ackedPerSec: results.reduce((n, r) => n + r.ackedInWindow, 0) / (windowMs / 1000),
    unacked: results.reduce((n, r) => n + r.unacked, 0),
    payloadBytesPerEvent: sent > 0 ? results.reduce((n, r) => n + r.payloadBytes, 0) / sent : null,
    latencyMs: {
      p50: percentile(hist, 0.5),
      p90: percentile(hist, 0.9),
      p99: percentile(hist, 0.99),
      p999: percentile(hist, 0.999),
      max: hist.maxMs,
      mean: hist.count > 0 ? hist.sumMs / hist.count : null,
      samples: hist.count,
    },
    startedAt: Math.min(...results.map((r) => r.startedAt)),
    stoppedAt: Math.max(...results.map((r) => r.stoppedAt)),
    lastAckAt: Math.max(...results.map((r) => r.lastAckAt)),
    resent: results.reduce((n, r) => n + r.resent, 0),
    disconnects: results.reduce((n, r) => n + r.disconnects, 0),
    reconnects: results.reduce((n, r) => n + r.reconnects, 0),
    maxOwed: Math.max(...results.map((r) => r.maxOwed)),
    cpuSecs: results.reduce((n, r) => n + (r.cpuUserMs + r.cpuSystemMs) / 1000, 0),
    errors: results.flatMap((r) => r.errors),
  };
}

/**
 * Checks that every acknowledged reading is in Kafka: readings n = 0..next-1
 * of each device, minus those never acknowledged. Feed it the payloads read
 * from Kafka with `see`, then `report`.
 */
export class AckedCheck {
  private readonly seen = new Map<string, Uint8Array>();
  private readonly tallies = new Map<string, DeviceTally>();
  private unparsable = 0;
  private foreign = 0;

  constructor(tallies: readonly DeviceTally[]) {
    for (const t of tallies) {
      this.tallies.set(t.device, t);
      this.seen.set(t.device, new Uint8Array(t.next));
    }
  }

  /** One payload from Kafka (a load.ts reading: JSON with device and n). */
  see(payload: Uint8Array): void {
    let r: { device?: unknown; n?: unknown };
    try {
      r = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8')) as typeof r;
    } catch {
      this.unparsable++;
      return;
    }
    const marks = typeof r.device === 'string' ? this.seen.get(r.device) : undefined;
    if (marks === undefined || typeof r.n !== 'number' || r.n < 0 || r.n >= marks.length) {
      this.foreign++;
      return;
    }
    if (marks[r.n]! < 255) marks[r.n]!++;
  }

  report(): {
    acked: number;
    found: number;
    missing: number;
    missingSample: string[];
    duplicateReadings: number;
    unackedButFound: number;
    unparsable: number;
    foreign: number;
  } {
    let acked = 0;
    let found = 0;
    let missing = 0;
    let dups = 0;
    let unackedButFound = 0;
    const sample: string[] = [];
    for (const [device, t] of this.tallies) {
      const marks = this.seen.get(device)!;
      const unacked = new Set(t.unacked);
      for (let n = 0; n < t.next; n++) {
        const m = marks[n]!;
        if (m > 1) dups += m - 1;
        if (unacked.has(n)) {
          if (m > 0) unackedButFound++;
          continue;
        }
        acked++;
        if (m > 0) found++;
        else {
          missing++;
          if (sample.length < 10) sample.push(`${device}#${n}`);
        }
      }
    }
    return {
      acked,
      found,
      missing,
      missingSample: sample,
      duplicateReadings: dups,
      unackedButFound,
      unparsable: this.unparsable,
      foreign: this.foreign,
    };
  }
}

// ---------------------------------------------------------------- report helpers

export const int = (n: number | null | undefined): string =>
  n === null || n === undefined || !Number.isFinite(n) ? '-' : Math.round(n).toLocaleString('en-US');
export const fix = (n: number | null | undefined, d = 1): string =>
  n === null || n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(d);
export const mib = (b: number | null | undefined, d = 1): string =>
  b === null || b === undefined || !Number.isFinite(b) ? '-' : (b / 1048576).toFixed(d);

/** fsyncs per second of a 4 KiB write in `dir`, for the record: the disk's commit ceiling. */
export function fsyncProbe(dir: string, ms = 1000): number {
  const file = join(dir, 'fsync-probe.bin');
  const fd = openSync(file, 'w');
  const buf = Buffer.alloc(4096, 1);
  let n = 0;
  const t0 = Date.now();
  try {
    while (Date.now() - t0 < ms) {
      writeSync(fd, buf);
      fsyncSync(fd);
      n++;
    }
  } finally {
    closeSync(fd);
    unlinkSync(file);
  }
  return n / ((Date.now() - t0) / 1000);
}

export function gitInfo(): { head: string | null; dirtyFiles: number | null } {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .split('\n')
      .filter((l) => l.trim() !== '').length;
    return { head, dirtyFiles: dirty };
  } catch {
    return { head: null, dirtyFiles: null };
  }
}

/** What every benchmark's JSON records about the run: machine, Node, git, options, disk fsync rate. */
export function runMeta(
  options: unknown,
  tmpRoot: string,
): {
  startedAt: string;
  node: string;
  platform: string;
  cpus: number;
  cpuModel: string | null;
  memTotalBytes: number;
  loadavgBefore: number[];
  git: ReturnType<typeof gitInfo>;
  options: unknown;
  kafkaVersion: string | null;
  fsyncPerSec: number;
} {
  const meta = {
    startedAt: new Date().toISOString(),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? null,
    memTotalBytes: totalmem(),
    loadavgBefore: loadavg(),
    git: gitInfo(),
    options,
    kafkaVersion: null as string | null,
    fsyncPerSec: Math.round(fsyncProbe(tmpRoot)),
  };
  log(
    `temp dir ${tmpRoot}; fsync probe ${meta.fsyncPerSec}/s; load average ${meta.loadavgBefore.map((l) => l.toFixed(2)).join(' ')}`,
  );
  return meta;
}
