/**
 * The benchmark suite: `npm run bench` (builds, then runs this; --quick for
 * a short validation run). One Kafka (scripts/kafka/start.sh, in a temp dir)
 * for the whole run; every scenario starts its own processes, drives load
 * from separate load.ts processes over loopback (raw MQTT 3.1.1, QoS 1,
 * ~120-byte JSON readings carrying their publish time), and measures:
 *
 *   aedes               limit: aedes alone in this process, no pipeline, counted in the broker;
 *                       QoS 1 stepped like the others, and QoS 0 at full speed
 *   kafka               limit: Kafka produce rate for the same readings, one record each
 *                       (kcat if installed, else a kafkajs producer sending large batches)
 *   sqlite              limit: better-sqlite3 commits of the same readings (WAL; 1 and 64 per
 *                       transaction; synchronous FULL and NORMAL)
 *   naive               the naive bridge (baselines/naive-bridge.ts) behind a separate aedes process
 *   embedded-disk       edgehaul, embedded broker, route durability disk
 *   embedded-memory     the same, durability memory
 *   client-disk         edgehaul as a client of a separate aedes process, durability disk
 *   client-memory       the same, durability memory
 *   client-disk-mosquitto    edgehaul as a client of Mosquitto set up as README recommends
 *   client-memory-mosquitto  (Debian's package, installed if missing), durability disk / memory
 *   embedded-disk-1core embedded-disk with the daemon pinned to one core (taskset -c 0)
 *   kafka-bytes         Kafka bytes per event, kafka.compression none and gzip, edgehaul
 *                       embedded-disk (raw payloads, and a route with `decode: json`) and the
 *                       naive bridge, at one fixed rate (--bytes-rate)
 *   backlog             durability.ts --parts drain: daemon RSS holding a backlog of
 *                       --backlog events against a fresh process holding none
 *
 * Stepped scenarios offer --steps events/s in turn (each step: fresh load
 * processes, warm-up, measured window) until the PUBACK p99 exceeds 50 ms,
 * the offered rate is no longer met (sustained < 85% of it) or throughput
 * stops rising (< 5% above the previous step), but always up to the 10,000
 * events/s step (the goals are stated there); `max` is a step without a
 * rate limit (publishes in flight per device only). Per step: PUBACK p50/p99,
 * publish-to-Kafka p50/p99 (Kafka LogAppendTime minus the reading's own
 * timestamp, read back by a consumer after the scenario), events/s into
 * Kafka, daemon CPU, disk write_bytes (/proc/<pid>/io) and RSS. Sustained
 * events/s = min(PUBACKs/s, events/s into Kafka) of the best step within
 * the 50 ms PUBACK p99.
 *
 * Writes scripts/bench/results/suite.json, suite.md (tables, goals with
 * PASS/MISS) and suite.svg (throughput and PUBACK p99 against offered load);
 * --publish also copies suite.md and suite.svg to docs/bench/. Everything
 * binds 127.0.0.1 on ephemeral ports; every process it starts is stopped at
 * the end (checked with pgrep), also on errors, Ctrl-C and the --max-secs
 * watchdog.
 *
 * Options (flag, or environment variable EDGEHAUL_BENCH_<NAME> with - as _):
 *   --quick              short validation run (steps 5000,10000,40000 of 3 s, 100,000-event backlog)
 *   --scenarios LIST     comma-separated subset of the names above (all)
 *   --steps LIST         offered events/s per step, `max` for no limit
 *                        (2500,5000,10000,20000,40000,60000,80000,max)
 *   --step-secs S        measured seconds per step (5; quick 3)
 *   --warmup S           warm-up seconds per step (2; quick 1)
 *   --devices N          simulated devices (8)
 *   --window N           QoS 1 publishes in flight per device at most (100)
 *   --procs N            load generator processes (2)
 *   --bytes-rate N       kafka-bytes: offered events/s (2000: the naive bridge keeps up)
 *   --kafka-records N    kafka: records to produce (1000000; quick 200000)
 *   --backlog N          backlog: events (1000000; quick 100000)
 *   --profile            run the daemons with --cpu-prof and summarise the profiles
 *   --route-steps JSON   transform steps for every edgehaul route (the route's `steps` key), e.g. to
 *                        measure Kafka bytes per event with a payload transform
 *   --memprobe           preload memprobe.ts into the daemons: the process.memoryUsage() sample at
 *                        the RSS peak (V8 heap, external, the rest) goes into the results
 *   --daemon-config JSON settings merged into every edgehaul daemon's config (objects key by
 *                        key), e.g. '{"buffer":{"commit":{"max_wait_ms":5}}}'
 *   --daemon-node-args=A extra node flags for every daemon, e.g. --daemon-node-args=--max-semi-space-size=4
 *   --publish            copy suite.md and suite.svg to docs/bench/
 *   --max-secs S         watchdog: stop everything and fail after this long (1500; quick 600)
 *   --kafka X            use a running Kafka instead of starting one: HOST:PORT, or the --dir
 *                        of scripts/kafka/start.sh (then Kafka log bytes can be measured)
 *   --keep               keep the temp dir (daemon buffers and logs, Kafka data)
 *   --baseline REF       also run embedded-disk on the daemon of git revision REF (exported and
 *                        built in the temp dir with this checkout's node_modules), right after this
 *                        checkout's embedded-disk: two versions side by side in one run
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { loadavg } from 'node:os';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify, parseArgs } from 'node:util';
import { Aedes } from 'aedes';
import Database from 'better-sqlite3';
import { CompressionTypes } from 'kafkajs';
import { decodeBatch } from '../../src/forward/format.js';
import { findMosquitto, RECOMMENDED as MOSQUITTO_RECOMMENDED, startMosquitto } from '../../test/support/mosquitto.js';
import { BenchDaemon } from './daemon.js';
import {
  aborting,
  fix,
  int,
  killChildren,
  log,
  openKafka,
  optionReader,
  printHelp,
  ROOT,
  runFrame,
  runMain,
  runMeta,
  sleep,
  sleepUntil,
  splitDevices,
  startBrokerProcess,
  startLoad,
  summariseLoad,
  track,
  warmKafka,
  type KafkaHandle,
  type LoadSummary,
} from './harness.js';
import { Histogram, percentile } from './histogram.js';
import { consumeRecords, kafkaClient, newBenchTopic } from './kafka-count.js';
import type { LoadSpec } from './load.js';
import { CpuProbe, RssSampler, snapshot, type ProcSnapshot } from './procstat.js';
import { formatSummary, summarise, type ProfileSummary } from './profile-summary.js';
import { reading } from './reading.js';
import { best, P99_LIMIT_MS, stopReason } from './step-rules.js';
import { lineChart, type Series } from './svg-chart.js';

const run = promisify(execFile);
const ALL = [
  'aedes',
  'kafka',
  'sqlite',
  'naive',
  'embedded-disk',
  'embedded-memory',
  'client-disk',
  'client-memory',
  'client-disk-mosquitto',
  'client-memory-mosquitto',
  'embedded-disk-1core',
  'kafka-bytes',
  'backlog',
] as const;
type Name = (typeof ALL)[number];
const MB = 1e6;

// ---------------------------------------------------------------- options

interface Options {
  quick: boolean;
  scenarios: Name[];
  steps: Array<number | null>;
  stepMs: number;
  warmupMs: number;
  devices: number;
  window: number;
  procs: number;
  bytesRate: number;
  kafkaRecords: number;
  backlog: number;
  profile: boolean;
  routeSteps: unknown[] | null;
  daemonConfig: Record<string, unknown> | null;
  daemonNodeArgs: string[];
  publish: boolean;
  maxSecs: number;
  kafka: string | null;
  keep: boolean;
  baseline: string | null;
}

function parseSteps(raw: string | null): unknown[] | null {
  if (raw === null) return null;
  const v: unknown = JSON.parse(raw);
  if (!Array.isArray(v)) throw new Error('--route-steps must be a JSON array of transform steps');
  return v as unknown[];
}

function parseObject(raw: string | null, flag: string): Record<string, unknown> | null {
  if (raw === null) return null;
  const v: unknown = JSON.parse(raw);
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${flag} must be a JSON object`);
  return v as Record<string, unknown>;
}

/** `over` merged into `base`: objects key by key, anything else replaced. */
function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    const isObj = (x: unknown): x is Record<string, unknown> =>
      x !== null && typeof x === 'object' && !Array.isArray(x);
    out[k] = isObj(b) && isObj(v) ? deepMerge(b, v) : v;
  }
  return out;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean' },
      scenarios: { type: 'string' },
      steps: { type: 'string' },
      'step-secs': { type: 'string' },
      warmup: { type: 'string' },
      devices: { type: 'string' },
      window: { type: 'string' },
      procs: { type: 'string' },
      'bytes-rate': { type: 'string' },
      'kafka-records': { type: 'string' },
      backlog: { type: 'string' },
      profile: { type: 'boolean' },
      memprobe: { type: 'boolean' },
      'route-steps': { type: 'string' },
      'daemon-config': { type: 'string' },
      'daemon-node-args': { type: 'string' },
      publish: { type: 'boolean' },
      'max-secs': { type: 'string' },
      kafka: { type: 'string' },
      keep: { type: 'boolean' },
      baseline: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: false,
  });
  if (values.help === true) printHelp('scripts/bench/suite.ts');
  const { num, flag, str } = optionReader(values);
  const quick = flag('quick');
  const list = (str('scenarios') ?? ALL.join(','))
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const s of list)
    if (!(ALL as readonly string[]).includes(s)) throw new Error(`unknown scenario ${s}; known: ${ALL.join(', ')}`);
  const steps = (str('steps') ?? (quick ? '5000,10000,40000' : '2500,5000,10000,20000,40000,60000,80000,max'))
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => {
      if (s === 'max') return null;
      const n = Number(s);
      if (!Number.isInteger(n) || n < 1 || n > 10_000_000) throw new Error(`--steps: ${s} is neither a rate nor max`);
      return n;
    });
  return {
    quick,
    scenarios: ALL.filter((s) => list.includes(s)),
    steps,
    stepMs: num('step-secs', quick ? 3 : 5, 1, 600) * 1000,
    warmupMs: num('warmup', quick ? 1 : 2, 0, 600) * 1000,
    devices: Math.round(num('devices', 8, 1, 10_000)),
    window: Math.round(num('window', 100, 1, 30_000)),
    procs: Math.round(num('procs', 2, 1, 64)),
    bytesRate: Math.round(num('bytes-rate', 2000, 1, 1_000_000)),
    kafkaRecords: Math.round(num('kafka-records', quick ? 200_000 : 1_000_000, 1000, 100_000_000)),
    backlog: Math.round(num('backlog', quick ? 100_000 : 1_000_000, 1000, 100_000_000)),
    profile: flag('profile'),
    routeSteps: parseSteps(str('route-steps')),
    daemonConfig: parseObject(str('daemon-config'), '--daemon-config'),
    daemonNodeArgs: [
      ...(str('daemon-node-args') ?? '').split(/\s+/).filter((a) => a !== ''),
      ...(flag('memprobe') ? ['--import', pathToFileURL(join(ROOT, 'dist/scripts/bench/memprobe.js')).href] : []),
    ],
    publish: flag('publish'),
    maxSecs: num('max-secs', quick ? 600 : 1500, 10, 86_400),
    kafka: str('kafka'),
    keep: flag('keep'),
    baseline: str('baseline'),
  };
}

/**
 * The daemon of git revision `ref`, built in `dir` for a side-by-side
 * scenario: its tree exported with git archive, this checkout's node_modules
 * linked in (the revision must build with them), compiled with tsc.
 */
function buildBaseline(ref: string, dir: string): { root: string; label: string } {
  const rev = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', `${ref}^{commit}`], { encoding: 'utf8' }).trim();
  mkdirSync(dir, { recursive: true });
  execFileSync('bash', ['-c', 'git -C "$1" archive "$2" | tar -x -C "$3"', 'archive', ROOT, rev, dir], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(dir, 'tsconfig.json')], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  return { root: dir, label: rev };
}

// ---------------------------------------------------------------- results

interface Latency {
  p50: number | null;
  p99: number | null;
  samples: number;
}

interface Step {
  /** offered events/s; null: no rate limit */
  readonly offered: number | null;
  readonly windowMs: number;
  /** PUBACKs per second in the window (client mode, naive: from the upstream broker) */
  readonly ackedPerSec: number;
  /** events per second into Kafka in the window (by append time); null for the aedes limit */
  kafkaPerSec: number | null;
  /** min(PUBACKs/s, into Kafka/s) */
  sustainedPerSec: number;
  readonly puback: Latency;
  toKafka: Latency | null;
  readonly cpuSecs: number | null;
  cpuSecsPer100k: number | null;
  readonly diskBytes: number | null;
  diskBytesPerEvent: number | null;
  readonly peakRssBytes: number | null;
  readonly loadgenCpuSecs: number;
  /** CPU seconds of processes this benchmark did not start, in the window (noise) */
  readonly otherCpuSecs: number;
  /** edgehaul: the longest group commit (SQLite write and its fsync) in the window, ms: the disk's share of the PUBACK tail */
  readonly commitMaxMs: number | null;
  readonly hostBusy: number;
  stop: string | null;
  readonly errors: string[];
  /** epoch ms of the measured window */
  readonly from: number;
  readonly to: number;
}

interface KafkaBytes {
  readonly events: number;
  readonly records: number;
  /** key + value + headers per event, as the consumer sees them (uncompressed) */
  readonly recordBytesPerEvent: number | null;
  /** the topic's log segment bytes per event (batch framing included; compressed when compressed); null without the Kafka dir */
  readonly logBytesPerEvent: number | null;
}

interface StepScenario {
  readonly name: string;
  readonly kind: 'limit' | 'baseline' | 'edgehaul';
  readonly what: string;
  readonly steps: Step[];
  readonly sustainedPerSec: number | null;
  /** the step the sustained figure comes from */
  readonly top: Step | null;
  readonly at10k: Step | null;
  /** RSS of the idle daemon once V8's memory reducer has run (IDLE_SETTLE_MS after start) */
  readonly idleRssBytes: number | null;
  /** RSS 2 s after start, before that */
  readonly startupRssBytes?: number | null;
  readonly peakRssBytes: number | null;
  readonly kafkaBytes: KafkaBytes | null;
  readonly notes: string[];
  readonly problems: Array<Record<string, unknown>>;
  readonly profile: ProfileSummary | null;
  /** --memprobe: the daemon's process.memoryUsage() sample with the highest RSS */
  readonly memoryAtPeak?: Record<string, number> | null;
}

interface Limits {
  aedesQos0?: { brokerPerSec: number; cpuSecs: number; secs: number } | { error: string };
  kafka?:
    | {
        tool: string;
        records: number;
        secs: number;
        recordsPerSec: number;
        mbPerSec: number;
        logBytesPerRecord: number | null;
      }
    | { error: string };
  sqlite?:
    | Array<{ synchronous: 'FULL' | 'NORMAL'; perCommit: number; eventsPerSec: number; commitsPerSec: number }>
    | { error: string };
}

/** `edgehaul-decoded`: edgehaul with a `decode: json` step on the route (format 3 then stores the map keys once per record) */
type BytesSystem = 'edgehaul' | 'edgehaul-decoded' | 'naive';
interface BytesCase {
  readonly system: BytesSystem;
  readonly compression: 'none' | 'gzip';
  readonly bytes: KafkaBytes | null;
  readonly error?: string;
}

interface BacklogResult {
  readonly backlog: number;
  readonly deltaBacklogBytes: number | null;
  readonly freshWithBacklogBytes: number | null;
  readonly liveOnlyNoBacklogBytes: number | null;
  readonly drainPerSec: number | null;
  readonly deltaDrainBytes: number | null;
  readonly file: string;
}

// ---------------------------------------------------------------- helpers

function deviceNames(opts: Options): string[] {
  return Array.from({ length: opts.devices }, (_, i) => `dev-${i}`);
}

function loadSpecs(opts: Options, port: number, offered: number | null, durationMs: number): LoadSpec[] {
  const names = deviceNames(opts);
  return splitDevices(names, opts.procs).map((devices) => ({
    host: '127.0.0.1',
    port,
    devices,
    window: opts.window,
    qos: 1,
    warmupMs: opts.warmupMs,
    durationMs,
    drainMs: 10_000,
    client: 'raw',
    ...(offered !== null ? { rate: (offered * devices.length) / names.length } : {}),
  }));
}

/** Sum of the topic's log segment sizes, or null when the broker's data dir is not ours to read. */
function topicLogBytes(kafkaDir: string | null, topic: string): number | null {
  if (kafkaDir === null) return null;
  const data = join(kafkaDir, 'data');
  if (!existsSync(data)) return null;
  let n = 0;
  for (const d of readdirSync(data).filter((x) => x.startsWith(`${topic}-`))) {
    for (const f of readdirSync(join(data, d)).filter((x) => x.endsWith('.log'))) n += statSync(join(data, d, f)).size;
  }
  return n;
}

async function topicRecords(kafka: KafkaHandle, topic: string): Promise<number> {
  const admin = kafkaClient(kafka.brokers).admin();
  await admin.connect();
  try {
    return (await admin.fetchTopicOffsets(topic)).reduce((n, p) => n + Number(p.high), 0);
  } finally {
    await admin.disconnect();
  }
}

const latencyOf = (h: Histogram): Latency => {
  const d = h.toJSON();
  return { p50: percentile(d, 0.5), p99: percentile(d, 0.99), samples: d.count };
};

/** Median RSS of a pid over `ms`, sampled every 100 ms. */
/**
 * When the idle RSS is read, ms after the daemon started: V8's memory reducer
 * collects start-up garbage about 8 s after allocation calms down (an idle
 * daemon measured 92 MB at 2-8 s and 79 MB from 12 s on); a gateway spends its
 * idle hours in the second state.
 */
const IDLE_SETTLE_MS = 12_000;

async function rssOver(pid: number, ms: number): Promise<number | null> {
  const v: number[] = [];
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const s = snapshot(pid);
    if (s !== null) v.push(s.rssBytes);
    await sleep(100);
  }
  v.sort((a, b) => a - b);
  return v.length > 0 ? v[Math.floor(v.length / 2)]! : null;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>(
      (_, rej) => (timer = setTimeout(() => rej(new Error(`${what}: no result within ${ms / 1000} s`)), ms)),
    ),
  ]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------- stepping

/** What a stepped scenario measures between steps. */
interface Subject {
  /** the MQTT port the load goes to */
  readonly port: number;
  /** the process measured as the daemon (this process for the aedes limit) */
  readonly pid: number;
  readonly roles: Record<string, readonly number[]>;
  /** events into Kafka (or counted by the broker) so far: read at the window's edges */
  forwarded(): Promise<number>;
  /** after a step: wait (bounded) until the pipeline caught up */
  settle(acked: number): Promise<void>;
  /** true when this scenario's PUBACKs come from the system under test (not an upstream broker) */
  readonly ownPuback: boolean;
  /** edgehaul: the longest group commit (write and fsync) its stats lines report between these times, ms */
  commitMaxMs?(from: number, to: number): number | null;
}

async function stepped(
  opts: Options,
  name: string,
  subject: Subject,
  rss: RssSampler,
  steps: ReadonlyArray<number | null>,
  tag: string,
  rules = true,
): Promise<Step[]> {
  const out: Step[] = [];
  for (const offered of steps) {
    const load = await startLoad(loadSpecs(opts, subject.port, offered, opts.stepMs), tag);
    await sleepUntil(load.measureFrom);
    const s0: ProcSnapshot | null = snapshot(subject.pid);
    const f0 = await subject.forwarded();
    const probe = new CpuProbe({ ...subject.roles, loadgen: load.pids });
    const rss0 = rss.peak(subject.pid);
    await sleepUntil(load.measureTo);
    const s1 = snapshot(subject.pid);
    const f1 = await subject.forwarded();
    const cpu = probe.end();
    const results = await withTimeout(load.done, 60_000, `${name} load generators`);
    const l: LoadSummary = summariseLoad(results, opts.stepMs);
    const secs = opts.stepMs / 1000;
    const kafkaPerSec = (f1 - f0) / secs;
    const sustained = Math.min(l.ackedPerSec, kafkaPerSec);
    const cpuSecs = s0 !== null && s1 !== null ? s1.cpuSecs - s0.cpuSecs : null;
    const diskBytes = s0 !== null && s1 !== null ? s1.writeBytes - s0.writeBytes : null;
    const events = sustained * secs;
    const step: Step = {
      offered,
      windowMs: opts.stepMs,
      ackedPerSec: l.ackedPerSec,
      kafkaPerSec,
      sustainedPerSec: sustained,
      puback: { p50: l.latencyMs.p50, p99: l.latencyMs.p99, samples: l.latencyMs.samples },
      toKafka: null,
      cpuSecs,
      cpuSecsPer100k: cpuSecs !== null && events > 0 ? (cpuSecs * 1e5) / events : null,
      diskBytes,
      diskBytesPerEvent: diskBytes !== null && events > 0 ? diskBytes / events : null,
      peakRssBytes: Math.max(rss0, rss.peak(subject.pid)) || null,
      loadgenCpuSecs: cpu.loadgen ?? 0,
      otherCpuSecs: cpu.other,
      commitMaxMs: subject.commitMaxMs?.(load.measureFrom, load.measureTo) ?? null,
      hostBusy: cpu.hostBusy,
      stop: null,
      errors: l.errors.slice(0, 5),
      from: load.measureFrom,
      to: load.measureTo,
    };
    out.push(step);
    log(
      `  ${name} @ ${offered === null ? 'max' : int(offered)}/s: ${int(l.ackedPerSec)} PUBACK/s, ${int(kafkaPerSec)} forwarded/s, PUBACK p50/p99 ${fix(l.latencyMs.p50, 2)}/${fix(l.latencyMs.p99, 2)} ms, CPU ${fix(cpuSecs, 1)} s, other CPU ${fix(cpu.other, 1)} s`,
    );
    await subject.settle(l.acked);
    // the goals are stated at 10,000 events/s: that step always runs
    if (!rules || out.length - 1 < steps.indexOf(10_000)) continue;
    step.stop = stopReason(step, out.at(-2), subject.ownPuback);
    if (step.stop !== null) {
      log(`  ${name}: stop (${step.stop})`);
      break;
    }
  }
  return out;
}

/**
 * Reads the topic back: per step, publish-to-Kafka latency (append time -
 * the reading's ts) of readings published in its window, and events into
 * Kafka by append time; and the bytes per event.
 */
async function readBack(
  kafka: KafkaHandle,
  kafkaDir: string | null,
  topic: string,
  format: 'batch' | 'json',
  steps: Step[],
): Promise<KafkaBytes> {
  const hists = steps.map(() => new Histogram());
  const inWindow = steps.map(() => 0);
  let events = 0;
  let records = 0;
  let recordBytes = 0;
  const see = (payload: Uint8Array, appendAt: number, value?: unknown): void => {
    events++;
    for (let i = 0; i < steps.length; i++) {
      const s = steps[i]!;
      if (appendAt >= s.from && appendAt < s.to) inWindow[i]!++;
    }
    // a route with transform steps: decodeBatch gave the value; otherwise the payload is the JSON reading
    let ts: unknown;
    if (value !== undefined)
      ts = value !== null && typeof value === 'object' ? (value as { ts?: unknown }).ts : undefined;
    else {
      try {
        ts = (
          JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8')) as {
            ts?: unknown;
          }
        ).ts;
      } catch {
        return;
      }
    }
    if (typeof ts !== 'number') return;
    for (let i = 0; i < steps.length; i++) {
      const s = steps[i]!;
      if (ts >= s.from && ts < s.to) hists[i]!.record(Math.max(0, appendAt - ts));
    }
  };
  const { complete } = await consumeRecords(kafkaClient(kafka.brokers), topic, 90_000, (r) => {
    records++;
    recordBytes += (r.key?.length ?? 0) + (r.value?.length ?? 0) + r.headerBytes;
    if (r.value === null) return;
    if (format === 'json') see(r.value, r.appendAt);
    else {
      try {
        for (const e of decodeBatch(r.value).events) see(e.payload, r.appendAt, e.value);
      } catch {
        // not a batch: counted in records only
      }
    }
  });
  if (!complete) log(`  read-back of ${topic} did not reach the end within 90 s`);
  steps.forEach((s, i) => {
    s.toKafka = latencyOf(hists[i]!);
    // the consumer's count by append time replaces the live estimate
    s.kafkaPerSec = inWindow[i]! / (s.windowMs / 1000);
    if (s.ackedPerSec > 0) {
      s.sustainedPerSec = Math.min(s.ackedPerSec, s.kafkaPerSec);
      const ev = s.sustainedPerSec * (s.windowMs / 1000);
      s.cpuSecsPer100k = s.cpuSecs !== null && ev > 0 ? (s.cpuSecs * 1e5) / ev : null;
      s.diskBytesPerEvent = s.diskBytes !== null && ev > 0 ? s.diskBytes / ev : null;
    }
  });
  const logBytes = topicLogBytes(kafkaDir, topic);
  return {
    events,
    records,
    recordBytesPerEvent: events > 0 ? recordBytes / events : null,
    logBytesPerEvent: logBytes !== null && events > 0 ? logBytes / events : null,
  };
}

// ---------------------------------------------------------------- scenarios: limits

async function aedesLimit(opts: Options, kafka: KafkaHandle, tag: string, limits: Limits): Promise<StepScenario> {
  const broker = await Aedes.createBroker({ maxClientsIdLength: 256 });
  let published = 0;
  broker.on('publish', (_packet, client) => {
    if (client !== null) published++;
  });
  const server = createServer(broker.handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  const rss = new RssSampler([process.pid]).start();
  try {
    const subject: Subject = {
      port,
      pid: process.pid,
      roles: kafka.pid !== null ? { kafka: [kafka.pid] } : {},
      forwarded: async () => published,
      settle: async () => undefined,
      ownPuback: true,
    };
    const steps = await stepped(opts, 'aedes QoS 1', subject, rss, opts.steps, tag);
    for (const s of steps) s.toKafka = null;
    // QoS 0 at full speed, counted in the broker
    try {
      const names = deviceNames(opts);
      const specs: LoadSpec[] = splitDevices(names, opts.procs).map((devices) => ({
        host: '127.0.0.1',
        port,
        devices,
        window: opts.window,
        qos: 0,
        warmupMs: 1000,
        durationMs: opts.stepMs,
        drainMs: 5000,
        client: 'raw',
      }));
      const load = await startLoad(specs, tag);
      await sleepUntil(load.measureFrom);
      const n0 = published;
      const c0 = process.cpuUsage();
      const t0 = Date.now();
      await sleepUntil(load.measureTo);
      const n1 = published;
      const c1 = process.cpuUsage(c0);
      const secs = (Date.now() - t0) / 1000;
      await withTimeout(load.done, 60_000, 'aedes QoS 0 load generators');
      limits.aedesQos0 = { brokerPerSec: (n1 - n0) / secs, cpuSecs: (c1.user + c1.system) / 1e6, secs };
      log(`  aedes QoS 0: ${int(limits.aedesQos0.brokerPerSec)} publishes/s counted in the broker`);
    } catch (err) {
      limits.aedesQos0 = { error: (err as Error).message };
      await killChildren();
    }
    const top = best(steps, true);
    return {
      name: 'aedes in-process (limit)',
      kind: 'limit',
      what: 'aedes alone in the benchmark process, QoS 1, no pipeline, counted in the broker',
      steps,
      sustainedPerSec: top?.sustainedPerSec ?? null,
      top,
      at10k: steps.find((s) => s.offered === 10_000) ?? null,
      idleRssBytes: null,
      peakRssBytes: rss.peak(process.pid) || null,
      kafkaBytes: null,
      notes: ["RSS is the benchmark process's own (broker + orchestration)"],
      problems: [],
      profile: null,
    };
  } finally {
    rss.stop();
    await new Promise<void>((r) => server.close(() => r()));
    await new Promise<void>((r) => broker.close(() => r()));
  }
}

function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function kafkaLimit(
  opts: Options,
  kafka: KafkaHandle,
  kafkaDir: string | null,
  tmpRoot: string,
): Promise<NonNullable<Limits['kafka']>> {
  const topic = await newBenchTopic(kafka.brokers, 'kafkalimit');
  const n = opts.kafkaRecords;
  const names = deviceNames(opts);
  const lines: string[] = [];
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const d = names[i % names.length]!;
    const v = reading(d, Math.floor(i / names.length));
    bytes += d.length + Buffer.byteLength(v);
    lines.push(`${d}\t${v}`);
  }
  let tool: string;
  let secs: number;
  if (hasCommand('kcat')) {
    const file = join(tmpRoot, 'kafka-limit.txt');
    writeFileSync(file, `${lines.join('\n')}\n`);
    tool = 'kcat (librdkafka, linger.ms=5, acks=all)';
    const t0 = Date.now();
    await run(
      'kcat',
      [
        '-P',
        '-b',
        kafka.brokers.join(','),
        '-t',
        topic,
        '-K',
        '\t',
        '-z',
        'none',
        '-X',
        'acks=all',
        '-X',
        'linger.ms=5',
        '-X',
        'batch.num.messages=10000',
        '-X',
        'queue.buffering.max.messages=2000000',
        '-l',
        file,
      ],
      { timeout: 180_000, maxBuffer: 16 * 1024 * 1024 },
    );
    secs = (Date.now() - t0) / 1000;
  } else {
    tool = 'kafkajs producer (kcat not installed: apt-get install -y kcat), batches of 5,000, 4 in flight, acks=all';
    const producer = kafkaClient(kafka.brokers).producer();
    await producer.connect();
    try {
      const t0 = Date.now();
      const chunks: Array<Array<{ key: string; value: string }>> = [];
      for (let i = 0; i < n; i += 5000)
        chunks.push(
          lines
            .slice(i, i + 5000)
            .map((l) => ({ key: l.slice(0, l.indexOf('\t')), value: l.slice(l.indexOf('\t') + 1) })),
        );
      let next = 0;
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          while (next < chunks.length) {
            const c = chunks[next++]!;
            await producer.send({ topic, acks: -1, compression: CompressionTypes.None, messages: c });
          }
        }),
      );
      secs = (Date.now() - t0) / 1000;
    } finally {
      await producer.disconnect().catch(() => undefined);
    }
  }
  const got = await topicRecords(kafka, topic);
  if (got < n) throw new Error(`${tool}: ${got} of ${n} records in the topic`);
  const logBytes = topicLogBytes(kafkaDir, topic);
  return {
    tool,
    records: n,
    secs,
    recordsPerSec: n / secs,
    mbPerSec: bytes / secs / MB,
    logBytesPerRecord: logBytes !== null ? logBytes / n : null,
  };
}

function sqliteLimit(opts: Options, tmpRoot: string): NonNullable<Limits['sqlite']> {
  const out: Exclude<Limits['sqlite'], { error: string } | undefined> = [];
  const payloads = Array.from({ length: 4096 }, (_, i) => Buffer.from(reading(`dev-${i % opts.devices}`, i)));
  for (const synchronous of ['FULL', 'NORMAL'] as const) {
    for (const perCommit of [1, 64]) {
      const file = join(tmpRoot, `sqlite-${synchronous}-${perCommit}.db`);
      const db = new Database(file);
      try {
        db.pragma('journal_mode = WAL');
        db.pragma(`synchronous = ${synchronous}`);
        db.exec(
          'CREATE TABLE events (id INTEGER PRIMARY KEY, topic TEXT NOT NULL, key TEXT NOT NULL, payload BLOB NOT NULL)',
        );
        const insert = db.prepare('INSERT INTO events (topic, key, payload) VALUES (?, ?, ?)');
        let i = 0;
        const commit = db.transaction((k: number) => {
          for (let j = 0; j < k; j++, i++)
            insert.run('devices/dev/telemetry', `dev-${i % opts.devices}`, payloads[i % payloads.length]!);
        });
        const ms = opts.quick ? 1000 : 2000;
        const t0 = performance.now();
        let commits = 0;
        while (performance.now() - t0 < ms) {
          commit(perCommit);
          commits++;
        }
        const secs = (performance.now() - t0) / 1000;
        out.push({ synchronous, perCommit, eventsPerSec: (commits * perCommit) / secs, commitsPerSec: commits / secs });
        log(
          `  sqlite ${synchronous}, ${perCommit}/commit: ${int((commits * perCommit) / secs)} events/s (${int(commits / secs)} commits/s)`,
        );
      } finally {
        db.close();
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------- scenarios: pipelines

interface PipelineSpec {
  readonly system: 'edgehaul' | 'naive';
  readonly mode: 'embedded' | 'client';
  readonly durability: 'disk' | 'memory';
  readonly compression: 'none' | 'gzip';
  readonly pinned: boolean;
  /** the route's transform steps for this scenario (default: --route-steps) */
  readonly steps?: unknown[];
  /** the checkout whose daemon runs (default: this one; --baseline: another revision) */
  readonly root?: string;
  /** client mode: the broker edgehaul subscribes to (default: a separate aedes process) */
  readonly upstream?: 'aedes' | 'mosquitto';
}

/**
 * Client mode's in-flight window (ingest.client.max_in_flight), the same as
 * the Mosquitto's max_inflight_messages that README recommends.
 */
const CLIENT_MAX_IN_FLIGHT = Number(MOSQUITTO_RECOMMENDED.max_inflight_messages);

/** Debian's mosquitto, installed as the bench installs what it needs. */
function ensureMosquitto(): void {
  if (findMosquitto() !== null) return;
  log('installing mosquitto (apt-get install mosquitto)');
  execFileSync('apt-get', ['install', '-y', '-qq', 'mosquitto'], { stdio: 'inherit' });
  if (findMosquitto() === null) throw new Error('mosquitto is not installed and apt-get could not install it');
}

const WHAT: Record<string, string> = {
  naive: 'mqtt.js subscriber + kafkajs producer.send per message (JSON), behind a separate aedes process; no buffer',
  'embedded-disk': 'edgehaul, embedded broker, durability disk (PUBACK after the group commit)',
  'embedded-memory': 'edgehaul, embedded broker, durability memory',
  'client-disk': 'edgehaul as a client of a separate aedes process, durability disk (PUBACK from that broker)',
  'client-memory': 'edgehaul as a client of a separate aedes process, durability memory',
  'client-disk-mosquitto':
    'edgehaul as a client of Mosquitto configured as README recommends, durability disk (PUBACK from Mosquitto)',
  'client-memory-mosquitto': 'edgehaul as a client of Mosquitto configured as README recommends, durability memory',
  'embedded-disk-1core':
    'embedded-disk with the daemon pinned to one core (taskset -c 0), a stand-in for a Pi-class core',
};

async function pipeline(
  opts: Options,
  kafka: KafkaHandle,
  kafkaDir: string | null,
  tmpRoot: string,
  name: string,
  spec: PipelineSpec,
  steps: ReadonlyArray<number | null>,
  rules: boolean,
  profileDir: string,
): Promise<StepScenario> {
  const dir = join(tmpRoot, `${name}-${Date.now().toString(36)}`);
  mkdirSync(dir, { recursive: true });
  const topic = await newBenchTopic(kafka.brokers, name);
  const notes: string[] = [];
  let upstream: { port: number; pid: number; stop: () => Promise<void> } | null = null;
  let daemon: BenchDaemon | null = null;
  let bridge: ReturnType<typeof spawn> | null = null;
  let profile: ProfileSummary | null = null;
  const profileFile = join(profileDir, `${name}.cpuprofile`);
  try {
    if (spec.upstream === 'mosquitto') {
      ensureMosquitto();
      upstream = await startMosquitto(join(dir, 'mosquitto'), MOSQUITTO_RECOMMENDED);
    } else if (spec.mode === 'client' || spec.system === 'naive') {
      upstream = await startBrokerProcess(tmpRoot);
    }
    let port: number;
    let pid: number;
    if (spec.system === 'edgehaul') {
      const ingest =
        spec.mode === 'embedded'
          ? { mode: 'embedded', embedded: { host: '127.0.0.1', port: 0, auth: { allow_anonymous: true } } }
          : {
              mode: 'client',
              client: {
                url: `mqtt://127.0.0.1:${upstream!.port}`,
                client_id: 'edgehaul-bench',
                qos: 1,
                reconnect_ms: 500,
                max_in_flight: CLIENT_MAX_IN_FLIGHT,
              },
            };
      const base = {
        gateway: { id: 'gw-bench' },
        ingest,
        buffer: { path: 'buffer.db' },
        kafka: { brokers: kafka.brokers, compression: spec.compression, retry: { initial_ms: 100, max_ms: 1000 } },
        routes: [
          {
            name: 'telemetry',
            match: 'devices/+device/#',
            topic,
            key: '{device}',
            durability: spec.durability,
            ...((spec.steps ?? opts.routeSteps) !== null ? { steps: spec.steps ?? opts.routeSteps } : {}),
          },
        ],
        log: { level: 'info', stats_interval_secs: 0.5 },
        shutdown: { timeout_secs: 20 },
        http: { host: '127.0.0.1', port: 0 },
      };
      const config = opts.daemonConfig !== null ? deepMerge(base, opts.daemonConfig) : base;
      const nodeArgs = [
        ...opts.daemonNodeArgs,
        ...(opts.profile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${name}.cpuprofile`] : []),
      ];
      const wrap = spec.pinned ? ['taskset', '-c', '0'] : [];
      if (spec.pinned && !hasCommand('taskset')) throw new Error('taskset not found (util-linux)');
      daemon = new BenchDaemon(spec.root ?? ROOT, dir, config, nodeArgs, wrap);
      const address = await daemon.start();
      if (spec.mode === 'client') {
        const d = daemon;
        const t = Date.now() + 15_000;
        while (!d.lines.some((l) => l.msg === 'subscribed')) {
          if (Date.now() > t || !d.running) throw new Error(`daemon did not subscribe:\n${d.describe()}`);
          await sleep(25);
        }
      }
      port = spec.mode === 'embedded' ? Number(new URL(address).port) : upstream!.port;
      pid = daemon.pid;
    } else {
      const child = track(
        spawn(
          process.execPath,
          [
            join(ROOT, 'dist/scripts/bench/baselines/naive-bridge.js'),
            `mqtt://127.0.0.1:${upstream!.port}`,
            kafka.brokers.join(','),
            topic,
            spec.compression,
            tmpRoot,
          ],
          { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KAFKAJS_NO_PARTITIONER_WARNING: '1' } },
        ),
      );
      bridge = child;
      let out = '';
      let err = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
      child.stderr.setEncoding('utf8').on('data', (c: string) => (err = (err + c).slice(-4000)));
      const t = Date.now() + 30_000;
      while (!out.includes('BRIDGE_READY')) {
        if (Date.now() > t || child.exitCode !== null) throw new Error(`naive bridge did not start: ${err}`);
        await sleep(25);
      }
      port = upstream!.port;
      pid = child.pid!;
      notes.push('PUBACKs come from the upstream aedes process, before Kafka has the message');
    }
    if (spec.mode === 'client' && spec.system === 'edgehaul') {
      notes.push(
        `PUBACKs come from the upstream ${spec.upstream === 'mosquitto' ? 'Mosquitto' : 'aedes process'}; ingest.client.max_in_flight ${CLIENT_MAX_IN_FLIGHT}`,
      );
    }
    if (spec.pinned) notes.push('daemon pinned to CPU 0; load generators and Kafka unpinned');

    // idle: once V8's memory reducer has collected what start-up left behind (it runs about 8 s
    // after allocation calms down); the figure 2 s after start is kept as startupRssBytes
    const startedAt = Date.now();
    await sleep(2000);
    const startupRss = await rssOver(pid, 1000);
    await sleep(Math.max(0, startedAt + IDLE_SETTLE_MS - Date.now()));
    const idleRss = await rssOver(pid, 1000);
    const rss = new RssSampler([pid], 100).start();
    const counter = (k: string): number => Number(daemon?.lastStats()?.stats?.[k] ?? 0);
    const subject: Subject = {
      port,
      pid,
      roles: {
        daemon: [pid],
        ...(kafka.pid !== null ? { kafka: [kafka.pid] } : {}),
        ...(upstream !== null ? { upstream: [upstream.pid] } : {}),
      },
      forwarded: async () => (daemon !== null ? counter('sent_events_total') : topicRecords(kafka, topic)),
      commitMaxMs: (from, to) => {
        // a stats line covers the interval before it (log.stats_interval_secs: 0.5)
        const m = (daemon?.stats ?? [])
          .filter((l) => l.at > from && l.at <= to + 500 && typeof l.commitMaxMs === 'number')
          .map((l) => l.commitMaxMs!);
        return m.length > 0 ? Math.max(...m) : null;
      },
      settle: async (acked) => {
        const deadline = Date.now() + (opts.quick ? 8000 : 15_000);
        if (daemon !== null) {
          const d = daemon;
          // everything acknowledged (embedded) or taken in (client) is in Kafka
          while (Date.now() < deadline && d.running) {
            const s = d.lastStats()?.stats;
            const sent = Number(s?.sent_events_total ?? 0);
            const committed = Number(s?.committed_events_total ?? 0);
            if (sent >= committed && (spec.mode === 'client' || sent >= acked)) {
              if (spec.mode === 'embedded') break;
              const before = sent;
              await sleep(600);
              if (Number(d.lastStats()?.stats?.sent_events_total ?? 0) === before) break;
              continue;
            }
            await sleep(100);
          }
        } else {
          let last = -1;
          while (Date.now() < deadline) {
            const n = await topicRecords(kafka, topic);
            if (n === last) break;
            last = n;
            await sleep(500);
          }
        }
      },
      ownPuback: spec.system === 'edgehaul' && spec.mode === 'embedded',
    };
    let steps2: Step[];
    try {
      steps2 = await stepped(opts, name, subject, rss, steps, tmpRoot, rules);
    } finally {
      rss.stop();
    }
    const peakRss = rss.peak(pid) || null;
    const problems = daemon?.problems().slice(0, 10) ?? [];
    const memSamples = (daemon?.stderr.join('') ?? '')
      .split('\n')
      .filter((l) => l.startsWith('memprobe '))
      .map((l) => JSON.parse(l.slice(9)) as Record<string, number>);
    const memoryAtPeak = memSamples.reduce<Record<string, number> | null>(
      (m, x) => (m === null || x.rss! > m.rss! ? x : m),
      null,
    );
    if (daemon !== null) {
      const exit = await daemon.stop('SIGTERM', 30_000);
      if (exit.code !== 0) notes.push(`daemon exit ${exit.code ?? exit.signal}${exit.killed ? ' (killed)' : ''}`);
    } else if (bridge !== null && bridge.exitCode === null) {
      const exited = new Promise((r) => bridge!.once('exit', r));
      bridge.kill('SIGTERM');
      await withTimeout(exited, 10_000, 'naive bridge exit').catch(() => bridge!.kill('SIGKILL'));
    }
    await upstream?.stop();
    upstream = null;
    const kafkaBytes = await readBack(kafka, kafkaDir, topic, spec.system === 'edgehaul' ? 'batch' : 'json', steps2);
    const late = steps2.filter((t) => (t.toKafka?.p50 ?? 0) > 2000);
    if (late.length > 0)
      notes.push(
        `events reached Kafka late at ${late.map((t) => (t.offered === null ? 'max' : int(t.offered))).join(', ')}/s (publish-to-Kafka p50 up to ${fix(Math.max(...late.map((t) => t.toKafka!.p50!)) / 1000, 1)} s): forwarding fell behind ingest`,
      );
    if (opts.profile && existsSync(profileFile))
      profile = { ...summarise(profileFile, 20), file: relative(ROOT, profileFile) };
    const own = subject.ownPuback;
    const top = best(steps2, own);
    return {
      name,
      kind: spec.system === 'naive' ? 'baseline' : 'edgehaul',
      what: WHAT[name] ?? name,
      steps: steps2,
      sustainedPerSec: top?.sustainedPerSec ?? null,
      top,
      at10k: steps2.find((s) => s.offered === 10_000) ?? null,
      idleRssBytes: idleRss,
      startupRssBytes: startupRss,
      peakRssBytes: peakRss,
      kafkaBytes,
      notes,
      problems,
      profile,
      memoryAtPeak,
    };
  } finally {
    if (daemon?.running === true) await daemon.stop('SIGKILL', 5000).catch(() => undefined);
    if (bridge !== null && bridge.exitCode === null) bridge.kill('SIGKILL');
    await upstream?.stop();
  }
}

async function backlogCheck(
  opts: Options,
  kafka: KafkaHandle,
  kafkaDir: string | null,
  tmpRoot: string,
): Promise<BacklogResult> {
  const file = join(tmpRoot, 'backlog.json');
  const args = [
    join(ROOT, 'dist/scripts/bench/durability.js'),
    '--parts',
    'drain',
    '--backlog',
    String(opts.backlog),
    '--no-verify',
    '--kafka',
    kafkaDir ?? kafka.brokers.join(','),
    '--out',
    file,
    '--max-secs',
    String(opts.quick ? 240 : 420),
  ];
  if (opts.daemonNodeArgs.length > 0) args.push(`--daemon-node-args=${opts.daemonNodeArgs.join(' ')}`);
  const child = track(spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] }));
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (c: string) => {
    err = (err + c).slice(-8000);
    for (const line of c.split('\n'))
      if (/drain: |acked in|FAILED/.test(line)) log(`  backlog | ${line.replace(/^\[bench[^\]]*\] */, '').trim()}`);
  });
  const code = await withTimeout(
    new Promise<number | null>((r) => child.once('exit', (c) => r(c))),
    (opts.quick ? 260 : 450) * 1000,
    'durability.ts --parts drain',
  );
  if (!existsSync(file)) throw new Error(`durability.ts exited ${code} without results: ${err.slice(-2000)}`);
  const j = JSON.parse(readFileSync(file, 'utf8')) as {
    drain: {
      error?: string;
      rss?: {
        deltaBacklogBytes: number | null;
        freshWithBacklog: { median: number | null };
        liveOnlyNoBacklog: { median: number | null };
        deltaDrainBytes: number | null;
      };
      drainPerSec?: number | null;
    } | null;
  };
  const d = j.drain;
  if (d === null || d.error !== undefined || d.rss === undefined)
    throw new Error(`durability.ts drain failed: ${d?.error?.split('\n')[0] ?? 'no result'}`);
  const kept = join(ROOT, 'scripts/bench/results', 'suite-backlog.json');
  copyFileSync(file, kept);
  return {
    backlog: opts.backlog,
    deltaBacklogBytes: d.rss.deltaBacklogBytes,
    freshWithBacklogBytes: d.rss.freshWithBacklog.median,
    liveOnlyNoBacklogBytes: d.rss.liveOnlyNoBacklog.median,
    drainPerSec: d.drainPerSec ?? null,
    deltaDrainBytes: d.rss.deltaDrainBytes,
    file: relative(ROOT, kept),
  };
}

// ---------------------------------------------------------------- goals and report

interface Goal {
  readonly goal: string;
  readonly value: string;
  readonly verdict: 'PASS' | 'MISS' | 'n/a';
}

function goals(sc: StepScenario[], bytes: BytesCase[], backlog: BacklogResult | { error: string } | null): Goal[] {
  const by = (n: string): StepScenario | undefined => sc.find((s) => s.name === n);
  const aedes = by('aedes in-process (limit)');
  const disk = by('embedded-disk');
  const naive = by('naive');
  const v = (ok: boolean | null): Goal['verdict'] => (ok === null ? 'n/a' : ok ? 'PASS' : 'MISS');
  const out: Goal[] = [];
  const ratio = (a: number | null | undefined, b: number | null | undefined): number | null =>
    a != null && b != null && b > 0 ? a / b : null;
  const r1 = ratio(disk?.sustainedPerSec, aedes?.sustainedPerSec);
  out.push({
    goal: 'embedded-disk >= 60% of in-process aedes QoS 1',
    value:
      r1 === null
        ? '-'
        : `${fix(100 * r1, 0)}% (${int(disk?.sustainedPerSec)} vs ${int(aedes?.sustainedPerSec)} events/s)`,
    verdict: v(r1 === null ? null : r1 >= 0.6),
  });
  const r2 = ratio(disk?.sustainedPerSec, naive?.sustainedPerSec);
  out.push({
    goal: 'embedded-disk >= 3x the naive bridge',
    value:
      r2 === null ? '-' : `${fix(r2, 1)}x (${int(disk?.sustainedPerSec)} vs ${int(naive?.sustainedPerSec)} events/s)`,
    verdict: v(r2 === null ? null : r2 >= 3),
  });
  for (const name of ['client-disk-mosquitto', 'client-disk']) {
    const client = by(name);
    if (client === undefined) continue;
    const r = ratio(client.sustainedPerSec, disk?.sustainedPerSec);
    out.push({
      goal: `${name} >= 50% of embedded-disk (one connection)`,
      value:
        r === null
          ? '-'
          : `${fix(100 * r, 0)}% (${int(client.sustainedPerSec)} vs ${int(disk?.sustainedPerSec)} events/s)`,
      verdict: v(r === null ? null : r >= 0.5),
    });
    const f = ratio(client.at10k?.diskBytesPerEvent, disk?.at10k?.diskBytesPerEvent);
    out.push({
      goal: `${name} flash bytes/event <= 1.5x embedded-disk's at 10,000 events/s`,
      value:
        f === null
          ? '-'
          : `${fix(f, 2)}x (${fix(client.at10k?.diskBytesPerEvent, 0)} vs ${fix(disk?.at10k?.diskBytesPerEvent, 0)} B)`,
      verdict: v(f === null ? null : f <= 1.5),
    });
  }
  const p = disk?.at10k?.puback.p99 ?? null;
  const c = disk?.at10k?.commitMaxMs ?? null;
  out.push({
    goal: 'PUBACK p99 <= 10 ms at 10,000 events/s (disk)',
    value:
      p === null
        ? '-'
        : `${fix(p, 1)} ms${c === null ? '' : ` (longest commit, write and fsync, in the step: ${fix(c, 1)} ms)`}`,
    verdict: v(p === null ? null : p <= 10),
  });
  const k = disk?.at10k?.toKafka?.p99 ?? null;
  out.push({
    goal: 'publish-to-Kafka p99 <= 250 ms at 10,000 events/s',
    value: k === null ? '-' : `${fix(k, 0)} ms`,
    verdict: v(k === null ? null : k <= 250),
  });
  const idle = disk?.idleRssBytes ?? null;
  const startup = disk?.startupRssBytes ?? null;
  out.push({
    goal: 'daemon RSS idle <= 90 MB',
    value:
      idle === null
        ? '-'
        : `${fix(idle / MB, 0)} MB (${startup === null ? '' : `${fix(startup / MB, 0)} MB `}2 s after start)`,
    verdict: v(idle === null ? null : idle <= 90 * MB),
  });
  const peak = disk?.peakRssBytes ?? null;
  out.push({
    goal: 'daemon RSS at full load <= 150 MB',
    value: peak === null ? '-' : `${fix(peak / MB, 0)} MB`,
    verdict: v(peak === null ? null : peak <= 150 * MB),
  });
  const bd = backlog !== null && !('error' in backlog) ? backlog.deltaBacklogBytes : null;
  out.push({
    goal: `backlog of ${backlog !== null && !('error' in backlog) ? int(backlog.backlog) : '1,000,000'} events changes RSS by <= 20 MB`,
    value: bd === null ? '-' : `${bd >= 0 ? '+' : ''}${fix(bd / MB, 1)} MB`,
    verdict: v(bd === null ? null : Math.abs(bd) <= 20 * MB),
  });
  const perEvent = (system: BytesSystem): number | null => {
    const b = bytes.find((c) => c.system === system && c.compression === 'none')?.bytes;
    return b?.logBytesPerEvent ?? b?.recordBytesPerEvent ?? null;
  };
  const n = perEvent('naive');
  const e = perEvent('edgehaul');
  const d = perEvent('edgehaul-decoded');
  const r3 = ratio(d, n);
  const r4 = ratio(e, n);
  out.push({
    goal: "Kafka bytes/event <= half the naive bridge's (no compression; route with `decode: json`)",
    value:
      r3 === null
        ? '-'
        : `${fix(d, 1)} vs ${fix(n, 1)} B = ${fix(r3, 2)}x${r4 === null ? '' : ` (raw payloads: ${fix(e, 1)} B = ${fix(r4, 2)}x)`}`,
    verdict: v(r3 === null ? null : r3 <= 0.5),
  });
  return out;
}

function mdTable(head: string[], rows: string[][]): string {
  return [
    `| ${head.join(' | ')} |`,
    `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

const ms = (l: Latency | null | undefined, d = 1): string =>
  l == null || l.p50 === null ? '-' : `${fix(l.p50, d)} / ${fix(l.p99, d)}`;
const mbs = (b: number | null | undefined): string => (b == null ? '-' : fix(b / MB, 0));

function markdown(
  meta: Record<string, unknown>,
  opts: Options,
  sc: StepScenario[],
  limits: Limits,
  bytes: BytesCase[],
  backlog: BacklogResult | { error: string } | null,
  gs: Goal[],
  failed: Array<{ name: string; error: string }>,
): string {
  const out: string[] = [];
  out.push('# edgehaul benchmark suite', '');
  out.push(
    `${String(meta.startedAt)} · Node ${String(meta.node)} · ${String(meta.cpus)} × ${String(meta.cpuModel)} · Kafka ${typeof meta.kafkaVersion === 'string' ? meta.kafkaVersion : '?'} · git ${String((meta.git as { head: string | null }).head ?? '?')} · fsync probe ${int(meta.fsyncPerSec as number)}/s · ${opts.quick ? '**--quick** run' : 'full run'} (${fix(Number(meta.totalSecs), 0)} s)`,
    '',
  );
  out.push(
    `${opts.devices} devices, ${opts.procs} load processes (raw MQTT), QoS 1, ~120-byte JSON readings; steps of ${opts.warmupMs / 1000} + ${opts.stepMs / 1000} s, offered ${opts.steps.map((s) => (s === null ? 'max' : int(s))).join(', ')} events/s until PUBACK p99 > ${P99_LIMIT_MS} ms, the offered rate is missed, or throughput stops rising.`,
    '',
  );
  const other = sc.flatMap((s) => s.steps).reduce((n, s) => n + s.otherCpuSecs, 0);
  const win = sc.flatMap((s) => s.steps).reduce((n, s) => n + s.windowMs / 1000, 0);
  if (win > 0 && other / win > 0.1)
    out.push(
      `> **Noisy machine:** processes this benchmark did not start used ${fix(other / win, 2)} CPU cores on average during the measured windows; treat the figures as rough.`,
      '',
    );
  out.push(
    '## Goals',
    '',
    mdTable(
      ['goal', 'measured', 'verdict'],
      gs.map((g) => [g.goal, g.value, `**${g.verdict}**`]),
    ),
    '',
  );
  out.push('## Scenarios', '');
  out.push(
    `Sustained = min(PUBACKs/s, events/s into Kafka) of the best step within the PUBACK p99 limit. CPU, disk and latency at that step; "@10k" = the 10,000 events/s step. RSS idle: ${IDLE_SETTLE_MS / 1000} s after start, once V8's memory reducer has collected start-up garbage.`,
    '',
  );
  out.push(
    mdTable(
      [
        'scenario',
        'sustained events/s',
        'at offered',
        'PUBACK p50 / p99 ms',
        'PUBACK p99 @10k ms',
        'to Kafka p50 / p99 ms @10k',
        'CPU s / 100k events',
        'RSS idle / peak MB',
        'disk B/event',
        'Kafka B/event (log / record)',
      ],
      sc.map((s) => [
        s.name,
        int(s.sustainedPerSec),
        s.top === null ? '-' : s.top.offered === null ? 'max' : int(s.top.offered),
        ms(s.top?.puback, 2),
        fix(s.at10k?.puback.p99 ?? null, 1),
        ms(s.at10k?.toKafka, 0),
        fix(s.top?.cpuSecsPer100k ?? null, 2),
        `${mbs(s.idleRssBytes)} / ${mbs(s.peakRssBytes)}`,
        fix(s.top?.diskBytesPerEvent ?? null, 0),
        s.kafkaBytes === null
          ? '-'
          : `${fix(s.kafkaBytes.logBytesPerEvent, 0)} / ${fix(s.kafkaBytes.recordBytesPerEvent, 0)}`,
      ]),
    ),
    '',
  );
  for (const s of sc) if (s.notes.length > 0) out.push(`- ${s.name}: ${s.notes.join('; ')}`);
  for (const f of failed) out.push(`- **${f.name} failed**: ${f.error.split('\n')[0]}`);
  out.push('', '![throughput and PUBACK p99 against offered load](suite.svg)', '');
  out.push('## Limits of the parts', '');
  const lim: string[][] = [];
  const aedes = sc.find((s) => s.kind === 'limit');
  if (aedes !== undefined) lim.push(['aedes in-process QoS 1', `${int(aedes.sustainedPerSec)} publishes/s (PUBACKed)`]);
  if (limits.aedesQos0 !== undefined)
    lim.push([
      'aedes in-process QoS 0',
      'error' in limits.aedesQos0
        ? `error: ${limits.aedesQos0.error}`
        : `${int(limits.aedesQos0.brokerPerSec)} publishes/s counted in the broker`,
    ]);
  if (limits.kafka !== undefined)
    lim.push([
      'Kafka produce, one record per reading',
      'error' in limits.kafka
        ? `error: ${limits.kafka.error}`
        : `${int(limits.kafka.recordsPerSec)} records/s (${fix(limits.kafka.mbPerSec, 1)} MB/s of key + value; ${int(limits.kafka.records)} records; log ${fix(limits.kafka.logBytesPerRecord, 0)} B/record) with ${limits.kafka.tool}`,
    ]);
  if (limits.sqlite !== undefined) {
    if ('error' in limits.sqlite) lim.push(['better-sqlite3', `error: ${limits.sqlite.error}`]);
    else
      for (const q of limits.sqlite)
        lim.push([
          `better-sqlite3 WAL, synchronous ${q.synchronous}, ${q.perCommit}/commit`,
          `${int(q.eventsPerSec)} events/s (${int(q.commitsPerSec)} commits/s)`,
        ]);
  }
  out.push(mdTable(['part', 'limit'], lim), '');
  if (bytes.length > 0) {
    out.push(`## Bytes sent to Kafka per event (at ${int(opts.bytesRate)} events/s offered)`, '');
    out.push(
      "Log = the topic's log segment bytes / events (what the broker received, record batch framing included); record = key + value + headers / events as a consumer sees them (uncompressed).",
      '',
    );
    out.push(
      mdTable(
        ['system', 'compression', 'log B/event', 'record B/event', 'events / records'],
        bytes.map((b) => [
          b.system,
          b.compression,
          b.bytes === null ? (b.error ?? '-') : fix(b.bytes.logBytesPerEvent, 1),
          fix(b.bytes?.recordBytesPerEvent ?? null, 1),
          b.bytes === null ? '-' : `${int(b.bytes.events)} / ${int(b.bytes.records)}`,
        ]),
      ),
      '',
    );
  }
  if (backlog !== null) {
    out.push('## Backlog', '');
    if ('error' in backlog) out.push(`error: ${backlog.error.split('\n')[0]}`, '');
    else
      out.push(
        `durability.ts --parts drain with a ${int(backlog.backlog)}-event backlog: a fresh daemon holding it ${mbs(backlog.freshWithBacklogBytes)} MB RSS vs ${mbs(backlog.liveOnlyNoBacklogBytes)} MB holding none (${backlog.deltaBacklogBytes === null ? '-' : fix(backlog.deltaBacklogBytes / MB, 1)} MB); drained at ${int(backlog.drainPerSec)} events/s (RSS while draining ${backlog.deltaDrainBytes === null ? '-' : `+${fix(backlog.deltaDrainBytes / MB, 0)}`} MB). Details: ${backlog.file}.`,
        '',
      );
  }
  out.push('## Curves', '');
  for (const s of sc) {
    out.push(`### ${s.name}`, '', s.what, '');
    out.push(
      mdTable(
        [
          'offered/s',
          'PUBACK/s',
          'into Kafka/s',
          'PUBACK p50 / p99 ms',
          'longest commit ms',
          'to Kafka p50 / p99 ms',
          'CPU s/100k',
          'disk B/event',
          'peak RSS MB',
          'other CPU s',
          'stop',
        ],
        s.steps.map((t) => [
          t.offered === null ? 'max' : int(t.offered),
          int(t.ackedPerSec),
          s.kind === 'limit' ? '-' : int(t.kafkaPerSec),
          ms(t.puback, 2),
          fix(t.commitMaxMs, 1),
          ms(t.toKafka, 0),
          fix(t.cpuSecsPer100k, 2),
          fix(t.diskBytesPerEvent, 0),
          mbs(t.peakRssBytes),
          fix(t.otherCpuSecs, 1),
          t.stop ?? '',
        ]),
      ),
      '',
    );
  }
  return `${out.join('\n')}\n`;
}

function chart(sc: StepScenario[], caption: string): string {
  const x = (t: Step): number => t.offered ?? t.ackedPerSec;
  const thr: Series[] = sc.map((s) => ({
    name: s.name,
    points: s.steps.map((t) => [x(t), t.sustainedPerSec] as const),
  }));
  const p99: Series[] = sc.map((s) => ({ name: s.name, points: s.steps.map((t) => [x(t), t.puback.p99] as const) }));
  return lineChart(
    [
      { title: 'Sustained events/s', yLabel: 'events/s (min of PUBACKs, into Kafka)', series: thr },
      {
        title: 'PUBACK p99',
        yLabel: 'ms',
        series: p99,
        mark: { y: P99_LIMIT_MS, label: `${P99_LIMIT_MS} ms step limit` },
      },
    ],
    caption,
  );
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const opts = parseOptions();
  for (const f of [
    'dist/src/cli/main.js',
    'dist/scripts/bench/load.js',
    'dist/scripts/bench/durability.js',
    'dist/test/support/broker-process.js',
    'dist/scripts/bench/baselines/naive-bridge.js',
  ]) {
    if (!existsSync(join(ROOT, f))) throw new Error(`${f} is missing: run npm run build first (npm run bench does)`);
  }
  // the backlog scenario's durability.ts stops its own daemons (5 s grace each) before it exits
  return runFrame(
    { prefix: 'edgehaul-suite-', kafka: opts.kafka, keep: opts.keep, maxSecs: opts.maxSecs, childGraceMs: 15_000 },
    ({ tmpRoot, ownKafkaDir }) => suite(opts, tmpRoot, ownKafkaDir),
  );
}

async function suite(opts: Options, tmpRoot: string, ownKafkaDir: string | null): Promise<number> {
  const started = Date.now();
  const resultsDir = join(ROOT, 'scripts/bench/results');
  const profileDir = join(resultsDir, 'profiles');
  mkdirSync(resultsDir, { recursive: true });
  if (opts.profile) mkdirSync(profileDir, { recursive: true });
  const meta: Record<string, unknown> = runMeta(opts, tmpRoot);
  const kafka = await openKafka(opts.kafka, ownKafkaDir ?? join(tmpRoot, 'kafka'));
  const kafkaDir =
    ownKafkaDir ?? (opts.kafka !== null && existsSync(join(opts.kafka, 'broker.env')) ? opts.kafka : null);
  meta.kafkaVersion = kafka.version;
  await warmKafka(kafka.brokers);

  const scenarios: StepScenario[] = [];
  const limits: Limits = {};
  const bytes: BytesCase[] = [];
  const failed: Array<{ name: string; error: string }> = [];
  let backlog: BacklogResult | { error: string } | null = null;
  const secs: Record<string, number> = {};
  for (const name of opts.scenarios) {
    if (aborting()) break;
    const t0 = Date.now();
    log(`${name}`);
    try {
      switch (name) {
        case 'aedes':
          scenarios.push(await aedesLimit(opts, kafka, tmpRoot, limits));
          break;
        case 'kafka':
          try {
            const k = await kafkaLimit(opts, kafka, kafkaDir, tmpRoot);
            limits.kafka = k;
            if (!('error' in k)) log(`  kafka: ${int(k.recordsPerSec)} records/s with ${k.tool}`);
          } catch (err) {
            limits.kafka = { error: (err as Error).message };
            throw err;
          }
          break;
        case 'sqlite':
          try {
            limits.sqlite = sqliteLimit(opts, tmpRoot);
          } catch (err) {
            limits.sqlite = { error: (err as Error).message };
            throw err;
          }
          break;
        case 'naive':
          scenarios.push(
            await pipeline(
              opts,
              kafka,
              kafkaDir,
              tmpRoot,
              name,
              { system: 'naive', mode: 'client', durability: 'memory', compression: 'none', pinned: false },
              opts.steps,
              true,
              profileDir,
            ),
          );
          break;
        case 'embedded-disk':
        case 'embedded-memory':
        case 'client-disk':
        case 'client-memory':
        case 'client-disk-mosquitto':
        case 'client-memory-mosquitto':
        case 'embedded-disk-1core': {
          const [mode, durability] = name.split('-') as ['embedded' | 'client', 'disk' | 'memory'];
          const upstream = name.endsWith('-mosquitto') ? ('mosquitto' as const) : ('aedes' as const);
          scenarios.push(
            await pipeline(
              opts,
              kafka,
              kafkaDir,
              tmpRoot,
              name,
              { system: 'edgehaul', mode, durability, compression: 'none', pinned: name.endsWith('1core'), upstream },
              opts.steps,
              true,
              profileDir,
            ),
          );
          if (name === 'embedded-disk' && opts.baseline !== null) {
            const base = buildBaseline(opts.baseline, join(tmpRoot, 'baseline'));
            const label = `embedded-disk@${base.label}`;
            log(label);
            WHAT[label] = `embedded-disk on the daemon of revision ${base.label} (--baseline)`;
            scenarios.push(
              await pipeline(
                opts,
                kafka,
                kafkaDir,
                tmpRoot,
                label,
                { system: 'edgehaul', mode, durability, compression: 'none', pinned: false, root: base.root },
                opts.steps,
                true,
                profileDir,
              ),
            );
          }
          break;
        }
        case 'kafka-bytes':
          for (const system of ['edgehaul', 'edgehaul-decoded', 'naive'] as const) {
            for (const compression of ['none', 'gzip'] as const) {
              const label = `bytes-${system}-${compression}`;
              try {
                const spec: PipelineSpec =
                  system === 'naive'
                    ? { system, mode: 'client', durability: 'disk', compression, pinned: false }
                    : {
                        system: 'edgehaul',
                        mode: 'embedded',
                        durability: 'disk',
                        compression,
                        pinned: false,
                        ...(system === 'edgehaul-decoded' ? { steps: [{ decode: 'json' }] } : {}),
                      };
                const r = await pipeline(
                  opts,
                  kafka,
                  kafkaDir,
                  tmpRoot,
                  label,
                  spec,
                  [opts.bytesRate],
                  false,
                  profileDir,
                );
                bytes.push({ system, compression, bytes: r.kafkaBytes });
                log(
                  `  ${label}: log ${fix(r.kafkaBytes?.logBytesPerEvent ?? null, 1)} B/event, record ${fix(r.kafkaBytes?.recordBytesPerEvent ?? null, 1)} B/event`,
                );
              } catch (err) {
                bytes.push({ system, compression, bytes: null, error: (err as Error).message.split('\n')[0] });
                await killChildren();
              }
            }
          }
          break;
        case 'backlog':
          try {
            backlog = await backlogCheck(opts, kafka, kafkaDir, tmpRoot);
            log(
              `  backlog: RSS ${backlog.deltaBacklogBytes === null ? '-' : fix(backlog.deltaBacklogBytes / MB, 1)} MB with ${int(backlog.backlog)} events held`,
            );
          } catch (err) {
            backlog = { error: (err as Error).message };
            throw err;
          }
          break;
      }
    } catch (err) {
      const error = (err as Error).stack ?? String(err);
      log(`${name} FAILED: ${error}`);
      failed.push({ name, error });
      await killChildren();
    }
    secs[name] = (Date.now() - t0) / 1000;
  }
  if (aborting()) return 130;
  meta.scenarioSecs = secs;
  meta.totalSecs = (Date.now() - started) / 1000;
  meta.loadavgAfter = loadavg();

  const gs = goals(scenarios, bytes, backlog);
  writeFileSync(
    join(resultsDir, 'suite.json'),
    `${JSON.stringify({ meta, goals: gs, scenarios, limits, kafkaBytes: bytes, backlog, failed }, null, 2)}\n`,
  );
  const md = markdown(meta, opts, scenarios, limits, bytes, backlog, gs, failed);
  writeFileSync(join(resultsDir, 'suite.md'), md);
  writeFileSync(
    join(resultsDir, 'suite.svg'),
    chart(
      scenarios,
      `${String(meta.startedAt).slice(0, 16)} · ${String(meta.cpus)} cores · ${opts.quick ? 'quick run' : 'full run'} · git ${String((meta.git as { head: string | null }).head ?? '?')}`,
    ),
  );
  if (opts.publish) {
    const docs = join(ROOT, 'docs/bench');
    mkdirSync(docs, { recursive: true });
    copyFileSync(join(resultsDir, 'suite.md'), join(docs, 'suite.md'));
    copyFileSync(join(resultsDir, 'suite.svg'), join(docs, 'suite.svg'));
  }

  process.stdout.write(`\n${gs.map((g) => `${g.verdict.padEnd(4)}  ${g.goal}: ${g.value}`).join('\n')}\n`);
  for (const s of scenarios) {
    if (s.problems.length > 0)
      process.stdout.write(
        `\n${s.name}: ${s.problems.length} daemon warn/error lines, first: ${JSON.stringify(s.problems[0]).slice(0, 300)}\n`,
      );
    if (s.profile !== null) process.stdout.write(`\n${s.name}: ${formatSummary(s.profile)}\n`);
    const m = s.memoryAtPeak;
    if (m != null)
      process.stdout.write(
        `${s.name}: memory at the RSS peak (MB): rss ${fix(m.rss! / MB, 0)}, V8 heap ${fix(m.heapUsed! / MB, 0)} used / ${fix(m.heapTotal! / MB, 0)} total, external ${fix(m.external! / MB, 0)} (array buffers ${fix(m.arrayBuffers! / MB, 0)}), rest ${fix((m.rss! - m.heapTotal! - m.external!) / MB, 0)}\n`,
      );
  }
  for (const f of failed) process.stdout.write(`\nFAILED ${f.name}: ${f.error.split('\n')[0]}\n`);
  process.stdout.write(
    `\ntotal ${fix(meta.totalSecs as number, 0)} s (${Object.entries(secs)
      .map(([k, v]) => `${k} ${fix(v, 0)}`)
      .join(
        ', ',
      )}); results: ${relative(process.cwd(), join(resultsDir, 'suite.md'))}, suite.json, suite.svg${opts.publish ? '; copied to docs/bench/' : ''}\n`,
  );
  return failed.length > 0 ? 1 : 0;
}

runMain(main);
