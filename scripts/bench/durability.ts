/**
 * Durability benchmark ("nothing acknowledged is ever lost", and at what
 * cost): `npm run bench:durability` (builds, then runs this).
 *
 * Starts the project's own Kafka (scripts/kafka/start.sh, in a temp dir) and
 * the real daemon (embedded broker, one route devices/+device/# keyed by
 * device), loaded by load.ts processes (raw MQTT, QoS 1, ~120-byte JSON
 * readings, each numbered per device so that every acknowledged reading can
 * be looked for afterwards). Three parts:
 *
 *   disk     flash bytes per event: the daemon's /proc/<pid>/io write_bytes
 *            over the measured window / events acknowledged in it, at a steady
 *            offered load (--rate), in four cases: durability disk or memory,
 *            Kafka healthy or down (the daemon pointed at 127.0.0.1:1).
 *            Goals: disk <= 2x the payload, memory with Kafka healthy <= 0.2x.
 *   drain    a backlog of --backlog events built with Kafka down (at the load
 *            generators' full speed, under a live load of --live-rate that
 *            runs throughout and reconnects across restarts), then the daemon
 *            restarted (SIGTERM, same state dir, same port) with Kafka still
 *            down (RSS of a fresh process holding the backlog), then with the
 *            real Kafka: seconds until the backlog is gone, drain events/s and
 *            its ratio to the live rate (goal >= 5x); then once more (a fresh
 *            process, Kafka healthy, no backlog: the reference RSS for the
 *            drain). Daemon RSS with and without the backlog (goal: within
 *            ~20 MB), and the SQLite file size against buffer.bytes.
 *   latency  PUBACK latency at --latency-rate events/s, durability disk
 *            (synchronous full), Kafka healthy; and publish-to-Kafka latency
 *            (Kafka LogAppendTime of the record - the reading's own timestamp).
 *
 * After every case the acknowledged readings are looked for: in Kafka, plus
 * what the buffer still holds after the clean shutdown (read from the SQLite
 * file). Prints a table; all figures go to
 * scripts/bench/results/durability-<timestamp>.json. Everything binds
 * 127.0.0.1 on ephemeral ports; every process it starts is stopped at the end
 * (checked with pgrep), also on errors, Ctrl-C and the --max-secs watchdog.
 *
 * Options (flag, or environment variable EDGEHAUL_BENCH_<NAME> with - as _):
 *   --parts LIST          comma-separated subset of disk,drain,latency (all)
 *   --rate N              disk part: offered events/s (5000)
 *   --duration S          disk part: measured seconds per case (10)
 *   --warmup S            warm-up seconds before a measured window (3)
 *   --devices N           simulated devices of the disk and latency parts (8)
 *   --procs N             load generator processes (2)
 *   --window N            publishes in flight per device at most (100)
 *   --backlog N           drain part: backlog events to build (1000000)
 *   --live-rate N         drain part: live events/s during build-up and drain (2000)
 *   --live-devices N      drain part: devices of the live load (4)
 *   --drain-timeout S     drain part: give up waiting for the backlog to drain (180)
 *   --latency-rate N      latency part: offered events/s (10000)
 *   --latency-duration S  latency part: measured seconds (15)
 *   --commit-wait-ms N    set buffer.commit.max_wait_ms of every daemon (unset: the daemon's default, 0)
 *   --daemon-node-args=A  extra node flags for every daemon, e.g. --daemon-node-args=--max-old-space-size=64
 *   --memprobe            preload scripts/bench/memprobe.ts into the daemons (process.memoryUsage() every second,
 *                         reported per drain phase: V8 heap vs external vs the rest of RSS)
 *   --no-verify           skip reading Kafka back (saves ~20 s with a 1M backlog)
 *   --max-secs S          watchdog: stop everything and fail after this long (900)
 *   --kafka X             use a running Kafka instead of starting one: HOST:PORT, or the --dir
 *                         of scripts/kafka/start.sh
 *   --keep                keep the temp dir (daemon buffers and logs, Kafka data)
 *   --out FILE            write the JSON results there (default scripts/bench/results/durability-<timestamp>.json)
 */
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { openSqliteStore } from '../../src/buffer/store.js';
import { BenchDaemon, type StatsLine } from './daemon.js';
import {
  AckedCheck,
  fix,
  freePort,
  int,
  killChildren,
  log,
  mib,
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
  startLoad,
  summariseLoad,
  warmKafka,
  type KafkaHandle,
  type LoadSummary,
} from './harness.js';
import { Histogram, percentile } from './histogram.js';
import { consumeAll, kafkaClient, newBenchTopic } from './kafka-count.js';
import type { DeviceTally, LoadSpec } from './load.js';
import { foreignCpu, foreignCpuSecs, hostBusy, hostCpu, snapshot, type ProcSnapshot } from './procstat.js';

const ALL_PARTS = ['disk', 'drain', 'latency'] as const;
type Part = (typeof ALL_PARTS)[number];
const DEAD_KAFKA = '127.0.0.1:1';
/** the daemon's default buffer.max_bytes: the configs here do not set it */
const DEFAULT_MAX_BYTES = 268_435_456;
const STATS_INTERVAL_SECS = 0.5;
/** a fresh daemon runs this long under the live load before its RSS is taken (median of the last RSS_WINDOW_MS) */
const RSS_SETTLE_MS = 11_000;
const RSS_WINDOW_MS = 4000;

// ---------------------------------------------------------------- options

interface Options {
  parts: Part[];
  rate: number;
  durationMs: number;
  warmupMs: number;
  devices: number;
  procs: number;
  window: number;
  backlog: number;
  liveRate: number;
  liveDevices: number;
  drainTimeoutMs: number;
  latencyRate: number;
  latencyDurationMs: number;
  verify: boolean;
  daemonNodeArgs: string[];
  commitWaitMs: number | null;
  memprobe: boolean;
  maxSecs: number;
  kafka: string | null;
  keep: boolean;
  out: string | null;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      parts: { type: 'string' },
      rate: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      devices: { type: 'string' },
      procs: { type: 'string' },
      window: { type: 'string' },
      backlog: { type: 'string' },
      'live-rate': { type: 'string' },
      'live-devices': { type: 'string' },
      'drain-timeout': { type: 'string' },
      'latency-rate': { type: 'string' },
      'latency-duration': { type: 'string' },
      'no-verify': { type: 'boolean' },
      'daemon-node-args': { type: 'string' },
      'commit-wait-ms': { type: 'string' },
      memprobe: { type: 'boolean' },
      'max-secs': { type: 'string' },
      kafka: { type: 'string' },
      keep: { type: 'boolean' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: false,
  });
  if (values.help === true) printHelp('scripts/bench/durability.ts');
  const { get, num, flag, str } = optionReader(values);
  const partList = String(get('parts') ?? ALL_PARTS.join(','))
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const p of partList)
    if (!(ALL_PARTS as readonly string[]).includes(p))
      throw new Error(`unknown part ${p}; known: ${ALL_PARTS.join(', ')}`);
  return {
    parts: ALL_PARTS.filter((p) => partList.includes(p)),
    rate: Math.round(num('rate', 5000, 1, 1_000_000)),
    durationMs: num('duration', 10, 1, 3600) * 1000,
    warmupMs: num('warmup', 3, 0, 600) * 1000,
    devices: Math.round(num('devices', 8, 1, 10_000)),
    procs: Math.round(num('procs', 2, 1, 64)),
    window: Math.round(num('window', 100, 1, 30_000)),
    backlog: Math.round(num('backlog', 1_000_000, 1000, 100_000_000)),
    liveRate: Math.round(num('live-rate', 2000, 1, 1_000_000)),
    liveDevices: Math.round(num('live-devices', 4, 1, 10_000)),
    drainTimeoutMs: num('drain-timeout', 180, 1, 3600) * 1000,
    latencyRate: Math.round(num('latency-rate', 10_000, 1, 1_000_000)),
    latencyDurationMs: num('latency-duration', 15, 1, 3600) * 1000,
    verify: !flag('no-verify'),
    daemonNodeArgs: [
      ...String(get('daemon-node-args') ?? '')
        .split(/\s+/)
        .filter((a) => a !== ''),
      ...(flag('memprobe')
        ? ['--expose-gc', '--import', pathToFileURL(join(ROOT, 'dist/scripts/bench/memprobe.js')).href]
        : []),
    ],
    memprobe: flag('memprobe'),
    commitWaitMs:
      get('commit-wait-ms') === undefined || get('commit-wait-ms') === '' ? null : num('commit-wait-ms', 0, 0, 60_000),
    maxSecs: num('max-secs', 900, 10, 86_400),
    kafka: str('kafka'),
    keep: flag('keep'),
    out: str('out'),
  };
}

// ---------------------------------------------------------------- daemon helpers

/** --commit-wait-ms, for every daemon config */
let commitWaitMs: number | null = null;

function daemonConfig(o: {
  port: number;
  brokers: string[];
  topic: string;
  durability: 'disk' | 'memory';
  shutdownSecs: number;
}): Record<string, unknown> {
  return {
    gateway: { id: 'gw-bench' },
    ingest: { mode: 'embedded', embedded: { host: '127.0.0.1', port: o.port, auth: { allow_anonymous: true } } },
    buffer: {
      path: 'buffer.db',
      synchronous: 'full',
      ...(commitWaitMs !== null ? { commit: { max_wait_ms: commitWaitMs } } : {}),
    },
    kafka: { brokers: o.brokers },
    routes: [
      { name: 'telemetry', match: 'devices/+device/#', topic: o.topic, key: '{device}', durability: o.durability },
    ],
    log: { level: 'info', stats_interval_secs: STATS_INTERVAL_SECS },
    shutdown: { timeout_secs: o.shutdownSecs },
    http: { host: '127.0.0.1', port: 0 },
  };
}

/** Samples the daemon process (whichever pid `pid` holds) every 250 ms: RSS, CPU, write_bytes. */
class DaemonSampler {
  readonly samples: Array<ProcSnapshot & { pid: number }> = [];
  pid = 0;
  private timer: NodeJS.Timeout | null = null;

  start(): this {
    const tick = (): void => {
      if (this.pid === 0) return;
      const s = snapshot(this.pid);
      if (s !== null) this.samples.push({ ...s, pid: this.pid });
    };
    tick();
    this.timer = setInterval(tick, 250);
    return this;
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** RSS figures of the samples in [from, to], of one pid. */
  rss(
    pid: number,
    from: number,
    to: number,
  ): { median: number | null; min: number | null; max: number | null; samples: number } {
    const v = this.samples
      .filter((s) => s.pid === pid && s.at >= from && s.at <= to)
      .map((s) => s.rssBytes)
      .sort((a, b) => a - b);
    if (v.length === 0) return { median: null, min: null, max: null, samples: 0 };
    return { median: v[Math.floor(v.length / 2)]!, min: v[0]!, max: v.at(-1)!, samples: v.length };
  }
}

interface MemSample {
  at: number;
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

/** memprobe.ts lines (`tag` memprobe or memprobe-gc) from a daemon's stderr. */
function memSamples(d: BenchDaemon, tag: string): MemSample[] {
  return d.stderr
    .join('')
    .split('\n')
    .filter((l) => l.startsWith(`${tag} `))
    .map((l) => JSON.parse(l.slice(tag.length + 1)) as MemSample);
}

/** Per phase: the last memprobe sample in it, the one with the highest RSS, and the one after a forced full GC. */
function memByPhase(
  daemons: BenchDaemon[],
  phases: ReadonlyArray<{ at: number; phase: string }>,
): Array<{ phase: string; last: MemSample | null; peak: MemSample | null; afterGc: MemSample | null }> {
  const all = daemons.flatMap((d) => memSamples(d, 'memprobe')).sort((x, y) => x.at - y.at);
  const gcs = daemons.flatMap((d) => memSamples(d, 'memprobe-gc')).sort((x, y) => x.at - y.at);
  return phases.map((p, i) => {
    const end = phases[i + 1]?.at ?? Number.POSITIVE_INFINITY;
    const afterGc = gcs.filter((m) => m.at >= p.at && m.at < end).at(-1) ?? null;
    // the samples before the forced GC
    const inPhase = all.filter((m) => m.at >= p.at && m.at < Math.min(end, afterGc?.at ?? end));
    return {
      phase: p.phase,
      last: inPhase.at(-1) ?? null,
      peak: inPhase.reduce<MemSample | null>((m, x) => (m === null || x.rss > m.rss ? x : m), null),
      afterGc,
    };
  });
}

function fileBytes(dir: string): { db: number; wal: number; shm: number } {
  const size = (f: string): number => (existsSync(join(dir, f)) ? statSync(join(dir, f)).size : 0);
  return { db: size('buffer.db'), wal: size('buffer.db-wal'), shm: size('buffer.db-shm') };
}

/** What the buffer file holds after the daemon exited: events, and every payload fed to `see` (read through the store itself). */
function readBuffer(
  dir: string,
  see?: (payload: Uint8Array) => void,
): { rows: number; events: number; bodyBytes: number } {
  const file = join(dir, 'buffer.db');
  if (!existsSync(file)) return { rows: 0, events: 0, bodyBytes: 0 };
  const store = openSqliteStore(file, { synchronous: 'normal' });
  try {
    let rows = 0;
    let events = 0;
    let bodyBytes = 0;
    const seen = new Set<number>();
    for (;;) {
      const commits = store.readNext(100_000, 64 * 1024 * 1024, seen);
      if (commits.length === 0) break;
      for (const c of commits) {
        seen.add(c.id);
        rows++;
        events += c.events.length;
        bodyBytes += c.bytes;
        if (see !== undefined) for (const e of c.events) see(e.payload);
      }
    }
    return { rows, events, bodyBytes };
  } finally {
    store.close();
  }
}

const bufferEvents = (s: StatsLine | null | undefined): number | null =>
  typeof s?.buffer?.events === 'number' ? s.buffer.events : null;
const bufferBytes = (s: StatsLine | null | undefined): number | null =>
  typeof s?.buffer?.bytes === 'number' ? s.buffer.bytes : null;
const counter = (s: StatsLine | null | undefined, k: string): number => Number(s?.stats?.[k] ?? 0);
const lostTotal = (s: StatsLine | null | undefined): number => {
  const l = s?.stats?.lost_events_total as Record<string, Record<string, number>> | undefined;
  return l === undefined
    ? 0
    : Object.values(l).reduce((n, byRoute) => n + Object.values(byRoute).reduce((a, b) => a + b, 0), 0);
};

function loadSpecs(o: {
  port: number;
  names: string[];
  procs: number;
  window: number;
  rate?: number;
  maxMessages?: number;
  warmupMs: number;
  durationMs: number;
  reconnect?: boolean;
  progressMs?: number;
}): LoadSpec[] {
  const groups = splitDevices(o.names, o.procs);
  return groups.map((devices, i) => ({
    host: '127.0.0.1',
    port: o.port,
    devices,
    window: o.window,
    qos: 1,
    warmupMs: o.warmupMs,
    durationMs: o.durationMs,
    drainMs: 30_000,
    client: 'raw',
    tally: true,
    ...(o.rate !== undefined ? { rate: (o.rate * devices.length) / o.names.length } : {}),
    // the remainder goes to the first process
    ...(o.maxMessages !== undefined
      ? { maxMessages: Math.floor(o.maxMessages / groups.length) + (i === 0 ? o.maxMessages % groups.length : 0) }
      : {}),
    ...(o.reconnect === true ? { reconnect: true } : {}),
    ...(o.progressMs !== undefined ? { progressMs: o.progressMs } : {}),
  }));
}

interface Verification {
  readonly source: string;
  readonly acked: number;
  readonly found: number;
  /** acknowledged readings found neither in Kafka nor in the buffer: lost */
  readonly missing: number;
  readonly missingSample: string[];
  readonly duplicateReadings: number;
  readonly kafkaEvents: number | null;
  readonly kafkaDuplicateSeqs: number | null;
  readonly kafkaComplete: boolean | null;
  readonly bufferEventsLeft: number;
  readonly consumeMs: number | null;
}

/**
 * Looks for every acknowledged reading in Kafka (when `topic` is given) and in
 * what the buffer file still holds. `onKafkaEvent` sees each Kafka event too.
 */
async function verify(
  kafka: KafkaHandle | null,
  topic: string | null,
  dir: string,
  tallies: DeviceTally[],
  onKafkaEvent?: (payload: Uint8Array, receivedAt: number, appendAt: number) => void,
): Promise<Verification> {
  const check = new AckedCheck(tallies);
  let k: Awaited<ReturnType<typeof consumeAll>> | null = null;
  if (kafka !== null && topic !== null) {
    k = await consumeAll(kafkaClient(kafka.brokers), topic, 240_000, (e, appendAt) => {
      check.see(e.payload);
      onKafkaEvent?.(e.payload, e.receivedAt, appendAt);
    });
  }
  const left = readBuffer(dir, (p) => check.see(p));
  const r = check.report();
  return {
    source: k !== null ? 'kafka + buffer file' : 'buffer file',
    acked: r.acked,
    found: r.found,
    missing: r.missing,
    missingSample: r.missingSample,
    duplicateReadings: r.duplicateReadings,
    kafkaEvents: k?.events ?? null,
    kafkaDuplicateSeqs: k?.duplicates ?? null,
    kafkaComplete: k?.complete ?? null,
    bufferEventsLeft: left.events,
    consumeMs: k?.consumeMs ?? null,
  };
}

/** Warnings that only say Kafka is unreachable: expected where the daemon points at a dead port on purpose. */
function expectedWhileKafkaDown(l: Record<string, unknown>): boolean {
  if (l.code === 'EH_ERR_UPSTREAM_SEND' || String(l.msg).startsWith('kafkajs')) return true;
  return (
    l.msg === 'health degraded' &&
    Array.isArray(l.reasons) &&
    l.reasons.every((r) => String(r).startsWith('kafka unreachable'))
  );
}

// ---------------------------------------------------------------- part 1: disk bytes per event

interface DiskCase {
  readonly name: string;
  readonly durability: 'disk' | 'memory';
  readonly kafkaUp: boolean;
  readonly offeredPerSec: number;
  readonly ackedPerSec: number;
  readonly payloadBytes: number | null;
  readonly writeBytesWindow: number;
  readonly eventsWindow: number;
  readonly diskBytesPerEvent: number | null;
  readonly ratioToPayload: number | null;
  readonly goalRatio: number | null;
  readonly pass: boolean | null;
  /** mean of the daemon's own backlog.disk_bytes_per_event over the stats lines of the window */
  readonly daemonReportedBytesPerEvent: number | null;
  readonly writeSyscallsPerEvent: number | null;
  readonly daemonCpuPerEventUs: number | null;
  readonly eventsPerCommit: number | null;
  /** write_bytes per group commit in the window (approximate: stats lines bound the commit count) */
  readonly bytesPerCommit: number | null;
  readonly spilledEvents: number;
  /** daemon RSS at the end of the window, and its VmHWM */
  readonly rssBytes: number | null;
  readonly hwmBytes: number | null;
  readonly bufferEventsAtEnd: number | null;
  readonly file: { db: number; wal: number; shm: number };
  readonly load: LoadSummary;
  readonly verification: Verification | null;
  readonly daemonExit: { code: number | null; signal: string | null; killed: boolean };
  readonly problems: Array<Record<string, unknown>>;
}

async function diskCase(
  opts: Options,
  kafka: KafkaHandle,
  tmpRoot: string,
  durability: 'disk' | 'memory',
  kafkaUp: boolean,
): Promise<DiskCase> {
  const name = `${durability}-${kafkaUp ? 'kafka-up' : 'kafka-down'}`;
  const dir = join(tmpRoot, name);
  mkdirSync(dir, { recursive: true });
  const topic = kafkaUp ? await newBenchTopic(kafka.brokers, `d${name}`) : `eh.dead.${Date.now().toString(36)}`;
  const daemon = new BenchDaemon(
    ROOT,
    dir,
    daemonConfig({
      port: 0,
      brokers: kafkaUp ? kafka.brokers : [DEAD_KAFKA],
      topic,
      durability,
      shutdownSecs: kafkaUp ? 20 : 3,
    }),
    opts.daemonNodeArgs,
  );
  try {
    const port = Number(new URL(await daemon.start()).port);
    const pid = daemon.pid;
    const names = Array.from({ length: opts.devices }, (_, i) => `dev-${i}`);
    const load = await startLoad(
      loadSpecs({
        port,
        names,
        procs: opts.procs,
        window: opts.window,
        rate: opts.rate,
        warmupMs: opts.warmupMs,
        durationMs: opts.durationMs,
      }),
      tmpRoot,
    );
    await sleepUntil(load.measureFrom);
    const s0 = snapshot(pid);
    const st0 = daemon.lastStats();
    await sleepUntil(load.measureTo);
    const s1 = snapshot(pid);
    const st1 = daemon.lastStats();
    const summary = summariseLoad(await load.done, opts.durationMs);
    if (kafkaUp) {
      const committed = (): number => counter(daemon.lastStats(), 'committed_events_total');
      await daemon.waitStats(
        (s) => counter(s, 'sent_events_total') >= committed() && bufferEvents(s) === 0,
        30_000,
        summary.stoppedAt,
      );
    }
    const last = daemon.lastStats();
    const exit = await daemon.stop('SIGTERM', 30_000);
    const file = fileBytes(dir);

    const inWindow = daemon.stats.filter((l) => l.at > load.measureFrom && l.at <= load.measureTo);
    const reported = inWindow
      .map((l) => l.backlog?.disk_bytes_per_event)
      .filter((v): v is number => typeof v === 'number');
    const writeBytes = s0 !== null && s1 !== null ? s1.writeBytes - s0.writeBytes : 0;
    const events = summary.ackedInWindow;
    const perEvent = events > 0 ? writeBytes / events : null;
    const ratio =
      perEvent !== null && summary.payloadBytesPerEvent !== null ? perEvent / summary.payloadBytesPerEvent : null;
    const goal = durability === 'disk' ? 2 : kafkaUp ? 0.2 : null;
    const commits = counter(st1, 'commits_total') - counter(st0, 'commits_total');
    const committed = counter(st1, 'committed_events_total') - counter(st0, 'committed_events_total');
    const v = await verify(
      kafkaUp && opts.verify ? kafka : null,
      kafkaUp && opts.verify ? topic : null,
      dir,
      (await load.done).flatMap((r) => r.tally ?? []),
    );
    return {
      name,
      durability,
      kafkaUp,
      offeredPerSec: opts.rate,
      ackedPerSec: summary.ackedPerSec,
      payloadBytes: summary.payloadBytesPerEvent,
      writeBytesWindow: writeBytes,
      eventsWindow: events,
      diskBytesPerEvent: perEvent,
      ratioToPayload: ratio,
      goalRatio: goal,
      pass: goal === null || ratio === null ? null : ratio <= goal,
      daemonReportedBytesPerEvent: reported.length > 0 ? reported.reduce((a, b) => a + b, 0) / reported.length : null,
      writeSyscallsPerEvent: s0 !== null && s1 !== null && events > 0 ? (s1.syscw - s0.syscw) / events : null,
      daemonCpuPerEventUs: s0 !== null && s1 !== null && events > 0 ? ((s1.cpuSecs - s0.cpuSecs) * 1e6) / events : null,
      eventsPerCommit: commits > 0 ? committed / commits : null,
      bytesPerCommit: commits > 0 ? writeBytes / commits : null,
      spilledEvents: counter(last, 'spilled_events_total'),
      rssBytes: s1?.rssBytes ?? null,
      hwmBytes: s1?.hwmBytes ?? null,
      bufferEventsAtEnd: bufferEvents(last),
      file,
      load: summary,
      verification: v,
      daemonExit: exit,
      problems: daemon.problems().slice(0, 10),
    };
  } finally {
    if (daemon.running) await daemon.stop('SIGKILL', 5000).catch(() => undefined);
  }
}

// ---------------------------------------------------------------- part 2: drain of a backlog

interface DrainResult {
  readonly backlogTarget: number;
  readonly buildUp: {
    readonly events: number;
    readonly secs: number;
    readonly perSec: number;
    readonly load: LoadSummary;
  };
  /** buffer.events of the last stats line before the restart, and of the "buffer open" line after it */
  readonly backlogBeforeRestart: number | null;
  readonly backlogAtOpen: number | null;
  readonly bufferBytesBeforeRestart: number | null;
  readonly maxBytes: number;
  readonly blockedMessagesMax: number;
  readonly lostEventsBeforeRestart: number;
  readonly fileBeforeRestart: { db: number; wal: number; shm: number };
  readonly fileAfterShutdown: { db: number; wal: number; shm: number };
  /** SIGTERM of the daemon that built the backlog (Kafka down) until it exited */
  readonly shutdownMs: number;
  readonly shutdownExit: { code: number | null; signal: string | null; killed: boolean };
  /** the restart with Kafka still down: spawn to "edgehaul running" with the backlog in the buffer */
  readonly restartKafkaDownMs: number;
  readonly shutdown2Ms: number;
  readonly shutdown2Exit: { code: number | null; signal: string | null; killed: boolean };
  /** from spawning the new daemon to its "edgehaul running" */
  readonly startupMs: number;
  /** from "edgehaul running" to the first stats line with buffer.events <= threshold */
  readonly drainSecs: number | null;
  readonly drainThreshold: number;
  readonly drainComplete: boolean;
  /** backlog at open / drainSecs */
  readonly drainPerSec: number | null;
  /** events sent to Kafka / drainSecs (backlog + live) */
  readonly sendPerSec: number | null;
  /** events the new daemon committed during the drain / drainSecs */
  readonly liveIngestPerSec: number | null;
  readonly ratioToLive: number | null;
  readonly ratioToLiveOffered: number | null;
  /** from Kafka: the last append time of an event received before the restart, minus "edgehaul running" */
  readonly drainSecsKafka: number | null;
  readonly liveRateOffered: number;
  readonly live: LoadSummary;
  readonly rss: {
    readonly liveOnlyNoBacklog: ReturnType<DaemonSampler['rss']>;
    readonly buildUp: ReturnType<DaemonSampler['rss']>;
    /** the build-up process after it, live load only */
    readonly liveOnlyWithBacklog: ReturnType<DaemonSampler['rss']>;
    /** a fresh process (restarted, Kafka still down) holding the backlog, live load only */
    readonly freshWithBacklog: ReturnType<DaemonSampler['rss']>;
    /** freshWithBacklog - liveOnlyNoBacklog: two fresh processes, same live load, backlog vs none */
    readonly deltaBacklogBytes: number | null;
    /** liveOnlyWithBacklog - liveOnlyNoBacklog: the same process before and after the full-speed build-up */
    readonly deltaSameProcessBytes: number | null;
    readonly drainStartup: ReturnType<DaemonSampler['rss']>;
    readonly drain: ReturnType<DaemonSampler['rss']>;
    /** the drain process after the drain, live load only */
    readonly afterDrain: ReturnType<DaemonSampler['rss']>;
    /** a fresh process, Kafka healthy, no backlog, live load only */
    readonly freshNoBacklogKafkaUp: ReturnType<DaemonSampler['rss']>;
    /** peak during the drain - freshNoBacklogKafkaUp */
    readonly deltaDrainBytes: number | null;
    /** after the drain (same process) - freshNoBacklogKafkaUp: memory kept after the backlog is gone */
    readonly deltaAfterDrainBytes: number | null;
  };
  readonly daemonCpuDrainSecs: number | null;
  readonly verification: Verification | null;
  readonly drainExit: { code: number | null; signal: string | null; killed: boolean };
  readonly finalExit: { code: number | null; signal: string | null; killed: boolean };
  readonly problems: Array<Record<string, unknown>>;
  /** --memprobe: process.memoryUsage() of the daemon at the end of each phase and at its RSS peak */
  readonly memory: ReturnType<typeof memByPhase> | null;
  /** one point per second: t (s from the first daemon start), pid, rss MiB, buffer events, phase */
  readonly timeline: Array<{ t: number; pid: number; rssMiB: number; bufferEvents: number | null; phase: string }>;
}

async function drainRun(opts: Options, kafka: KafkaHandle, tmpRoot: string): Promise<DrainResult> {
  const dir = join(tmpRoot, 'backlog');
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const topic = await newBenchTopic(kafka.brokers, 'backlog');
  const sampler = new DaemonSampler().start();
  const phases: Array<{ at: number; phase: string }> = [];
  const phase = (p: string): void => {
    phases.push({ at: Date.now(), phase: p });
    log(`  drain: ${p}`);
  };
  /** --memprobe: a full GC in the daemon and a memprobe-gc line, after the RSS of a phase was taken */
  const gcProbe = async (d: BenchDaemon): Promise<void> => {
    if (!opts.memprobe || !d.running) return;
    process.kill(d.pid, 'SIGUSR2');
    await sleep(500);
  };
  const a = new BenchDaemon(
    ROOT,
    dir,
    daemonConfig({ port, brokers: [DEAD_KAFKA], topic, durability: 'disk', shutdownSecs: 5 }),
    opts.daemonNodeArgs,
  );
  let a2: BenchDaemon | null = null;
  let b: BenchDaemon | null = null;
  let c: BenchDaemon | null = null;
  const t0 = Date.now();
  try {
    await a.start();
    const aPid = a.pid;
    sampler.pid = aPid;
    phase('live load only, Kafka down');
    const liveNames = Array.from({ length: opts.liveDevices }, (_, i) => `live-${i}`);
    const live = await startLoad(
      loadSpecs({
        port,
        names: liveNames,
        procs: 1,
        window: opts.window,
        rate: opts.liveRate,
        warmupMs: 0,
        durationMs: 3_600_000,
        reconnect: true,
        progressMs: 1000,
      }),
      tmpRoot,
    );
    // long enough for the buffer to hold more than one send's worth (kafka.max_events_per_send), as it will with the backlog
    await sleep(RSS_SETTLE_MS);
    const baseline = sampler.rss(aPid, Date.now() - RSS_WINDOW_MS, Date.now());
    await gcProbe(a);

    phase(`building a backlog of ${opts.backlog.toLocaleString('en-US')} events at full speed`);
    const bulkNames = Array.from({ length: opts.devices }, (_, i) => `bulk-${i}`);
    const bulkAt = Date.now();
    const bulk = await startLoad(
      loadSpecs({
        port,
        names: bulkNames,
        procs: opts.procs,
        window: opts.window,
        maxMessages: opts.backlog,
        warmupMs: 0,
        durationMs: 3_600_000,
        progressMs: 1000,
      }),
      tmpRoot,
    );
    const progress = setInterval(() => {
      const s = a.lastStats();
      const r = sampler.samples.at(-1);
      log(
        `    bulk ${int(bulk.progress().acked)} acked; buffer ${int(bufferEvents(s))} events, ${mib(bufferBytes(s))} MiB; daemon RSS ${mib(r?.rssBytes)} MiB`,
      );
    }, 5000);
    let bulkResults;
    try {
      bulkResults = await Promise.race([
        bulk.done,
        sleep(opts.maxSecs * 1000).then(() => {
          throw new Error('backlog build-up did not finish');
        }),
      ]);
    } finally {
      clearInterval(progress);
    }
    const bulkSummary = summariseLoad(bulkResults, 1);
    const buildSecs = (bulkSummary.lastAckAt - bulkSummary.startedAt) / 1000;
    const buildEnd = Date.now();
    log(`    ${int(bulkSummary.acked)} acked in ${fix(buildSecs, 1)} s (${int(bulkSummary.acked / buildSecs)}/s)`);

    phase('live load only, backlog in the buffer, Kafka down');
    await sleep(6000);
    const withBacklog = sampler.rss(aPid, Date.now() - RSS_WINDOW_MS, Date.now());
    await gcProbe(a);
    const before = a.lastStats();
    const fileBefore = fileBytes(dir);
    const blockedMax = Math.max(0, ...a.stats.map((s) => counter(s, 'blocked_messages')));

    // RSS of a fresh process that holds the backlog, against the fresh process above that held none
    // (the same process after the build-up still carries the heap the full-speed ingest grew)
    phase('SIGTERM; restarting with Kafka still down (a fresh process holding the backlog)');
    const stopAAt = Date.now();
    const shutdownExit = await a.stop('SIGTERM', 30_000);
    const shutdownMs = Date.now() - stopAAt;
    a2 = new BenchDaemon(
      ROOT,
      dir,
      daemonConfig({ port, brokers: [DEAD_KAFKA], topic, durability: 'disk', shutdownSecs: 5 }),
      opts.daemonNodeArgs,
    );
    const a2SpawnAt = Date.now();
    await a2.start(120_000);
    const a2StartupMs = Date.now() - a2SpawnAt;
    const a2Pid = a2.pid;
    sampler.pid = a2Pid;
    await sleep(RSS_SETTLE_MS);
    const freshWithBacklog = sampler.rss(a2Pid, Date.now() - RSS_WINDOW_MS, Date.now());
    await gcProbe(a2);

    phase('SIGTERM; restarting with the real Kafka (same state dir, same port)');
    const restartAt = Date.now();
    const shutdown2Exit = await a2.stop('SIGTERM', 30_000);
    const shutdown2Ms = Date.now() - restartAt;
    const fileAfter = fileBytes(dir);
    b = new BenchDaemon(
      ROOT,
      dir,
      daemonConfig({ port, brokers: kafka.brokers, topic, durability: 'disk', shutdownSecs: 20 }),
      opts.daemonNodeArgs,
    );
    const spawnAt = Date.now();
    await b.start(120_000);
    const runningAt = Date.now();
    sampler.pid = b.pid;
    const bPid = b.pid;
    const opened = b.lines.find((l) => l.msg === 'buffer open');
    const backlogAtOpen = typeof opened?.buffered_events === 'number' ? opened.buffered_events : null;
    phase(`draining ${int(backlogAtOpen)} events`);
    const cpu0 = snapshot(bPid);
    const threshold = Math.max(1000, opts.liveRate);
    const drainProgress = setInterval(() => {
      const s = b!.lastStats();
      const bl = s?.backlog ?? null;
      log(
        `    buffer ${int(bufferEvents(s))} events; sent ${int(counter(s, 'sent_events_total'))}; send_rate ${int(bl?.send_rate as number)}/s; drain_eta ${typeof bl?.drain_eta_secs === 'number' ? bl.drain_eta_secs : '-'} s; RSS ${mib(sampler.samples.at(-1)?.rssBytes)} MiB`,
      );
    }, 5000);
    let drained: StatsLine | null;
    try {
      drained = await b.waitStats(
        (s) => (bufferEvents(s) ?? Number.POSITIVE_INFINITY) <= threshold,
        opts.drainTimeoutMs,
        runningAt,
      );
    } finally {
      clearInterval(drainProgress);
    }
    const drainEnd = drained?.at ?? Date.now();
    const cpu1 = snapshot(bPid);
    const drainSecs = drained !== null ? (drained.at - runningAt) / 1000 : null;

    phase('live load only, backlog drained');
    await sleep(6000);
    const afterDrain = sampler.rss(bPid, Date.now() - RSS_WINDOW_MS, Date.now());
    await gcProbe(b);

    // the same with a fresh process that never held a backlog: what the drain daemon is compared with
    phase('SIGTERM; restarting with Kafka healthy and no backlog (reference RSS)');
    const drainExit = await b.stop('SIGTERM', 30_000);
    c = new BenchDaemon(
      ROOT,
      dir,
      daemonConfig({ port, brokers: kafka.brokers, topic, durability: 'disk', shutdownSecs: 20 }),
      opts.daemonNodeArgs,
    );
    await c.start(120_000);
    const cPid = c.pid;
    sampler.pid = cPid;
    await sleep(RSS_SETTLE_MS);
    const freshNoBacklogUp = sampler.rss(cPid, Date.now() - RSS_WINDOW_MS, Date.now());
    await gcProbe(c);
    live.stop();
    const liveSummary = summariseLoad(await live.done, 1);
    const committedC = (): number => counter(c!.lastStats(), 'committed_events_total');
    await c.waitStats(
      (s) => counter(s, 'sent_events_total') >= committedC() && bufferEvents(s) === 0,
      30_000,
      liveSummary.stoppedAt,
    );
    const finalExit = await c.stop('SIGTERM', 30_000);
    sampler.stop();

    let drainSecsKafka: number | null = null;
    let v: Verification | null = null;
    if (opts.verify) {
      phase('reading Kafka back');
      let lastBacklogAppend = 0;
      v = await verify(
        kafka,
        topic,
        dir,
        [...(await live.done), ...bulkResults].flatMap((r) => r.tally ?? []),
        (_p, receivedAt, appendAt) => {
          if (receivedAt < restartAt && appendAt > lastBacklogAppend) lastBacklogAppend = appendAt;
        },
      );
      if (lastBacklogAppend > 0) drainSecsKafka = (lastBacklogAppend - runningAt) / 1000;
    }

    const drainStats = drained ?? b.lastStats();
    const sent = counter(drainStats, 'sent_events_total');
    const committed = counter(drainStats, 'committed_events_total');
    const drainRss = sampler.rss(bPid, runningAt, drainEnd);
    const timeline: DrainResult['timeline'] = [];
    const allStats = [...a.stats, ...a2.stats, ...b.stats, ...c.stats];
    for (let t = t0; t <= Date.now(); t += 1000) {
      const s = sampler.samples.find((x) => x.at >= t && x.at < t + 1000);
      if (s === undefined) continue;
      const st = [...allStats].reverse().find((x) => x.at <= s.at);
      timeline.push({
        t: Math.round((t - t0) / 1000),
        pid: s.pid,
        rssMiB: Math.round(s.rssBytes / 104857.6) / 10,
        bufferEvents: bufferEvents(st),
        phase: [...phases].reverse().find((p) => p.at <= s.at)?.phase ?? '',
      });
    }
    return {
      backlogTarget: opts.backlog,
      buildUp: { events: bulkSummary.acked, secs: buildSecs, perSec: bulkSummary.acked / buildSecs, load: bulkSummary },
      backlogBeforeRestart: bufferEvents(before),
      backlogAtOpen,
      bufferBytesBeforeRestart: bufferBytes(before),
      maxBytes: DEFAULT_MAX_BYTES,
      blockedMessagesMax: blockedMax,
      lostEventsBeforeRestart: lostTotal(before),
      fileBeforeRestart: fileBefore,
      fileAfterShutdown: fileAfter,
      shutdownMs,
      shutdownExit,
      restartKafkaDownMs: a2StartupMs,
      shutdown2Ms,
      shutdown2Exit,
      startupMs: runningAt - spawnAt,
      drainSecs,
      drainThreshold: threshold,
      drainComplete: drained !== null,
      drainPerSec: drainSecs !== null && backlogAtOpen !== null ? backlogAtOpen / drainSecs : null,
      sendPerSec: drainSecs !== null ? sent / drainSecs : null,
      liveIngestPerSec: drainSecs !== null ? committed / drainSecs : null,
      ratioToLive:
        drainSecs !== null && backlogAtOpen !== null && committed > 0
          ? backlogAtOpen / drainSecs / (committed / drainSecs)
          : null,
      ratioToLiveOffered:
        drainSecs !== null && backlogAtOpen !== null ? backlogAtOpen / drainSecs / opts.liveRate : null,
      drainSecsKafka,
      liveRateOffered: opts.liveRate,
      live: liveSummary,
      rss: {
        liveOnlyNoBacklog: baseline,
        buildUp: sampler.rss(aPid, bulkAt, buildEnd),
        liveOnlyWithBacklog: withBacklog,
        freshWithBacklog,
        deltaBacklogBytes:
          freshWithBacklog.median !== null && baseline.median !== null
            ? freshWithBacklog.median - baseline.median
            : null,
        deltaSameProcessBytes:
          withBacklog.median !== null && baseline.median !== null ? withBacklog.median - baseline.median : null,
        drainStartup: sampler.rss(bPid, runningAt, runningAt + 1500),
        drain: drainRss,
        afterDrain,
        freshNoBacklogKafkaUp: freshNoBacklogUp,
        deltaDrainBytes:
          drainRss.max !== null && freshNoBacklogUp.median !== null ? drainRss.max - freshNoBacklogUp.median : null,
        deltaAfterDrainBytes:
          afterDrain.median !== null && freshNoBacklogUp.median !== null
            ? afterDrain.median - freshNoBacklogUp.median
            : null,
      },
      daemonCpuDrainSecs: cpu0 !== null && cpu1 !== null ? cpu1.cpuSecs - cpu0.cpuSecs : null,
      verification: v,
      drainExit,
      finalExit,
      memory: opts.memprobe ? memByPhase([a, a2, b, c], phases) : null,
      problems: [...a.problems(), ...a2.problems()]
        .filter((l) => !expectedWhileKafkaDown(l))
        .concat(b.problems(), c.problems())
        .slice(0, 10),
      timeline,
    };
  } finally {
    sampler.stop();
    if (a.running) await a.stop('SIGKILL', 5000).catch(() => undefined);
    if (a2?.running === true) await a2.stop('SIGKILL', 5000).catch(() => undefined);
    if (b?.running === true) await b.stop('SIGKILL', 5000).catch(() => undefined);
    if (c?.running === true) await c.stop('SIGKILL', 5000).catch(() => undefined);
  }
}

// ---------------------------------------------------------------- part 3: PUBACK latency

interface LatencyResult {
  readonly offeredPerSec: number;
  readonly ackedPerSec: number;
  readonly load: LoadSummary;
  readonly diskBytesPerEvent: number | null;
  readonly daemonCpuShare: number | null;
  readonly rssBytes: number | null;
  /** Kafka LogAppendTime - the reading's timestamp, for readings published in the measured window */
  readonly toKafkaMs: { p50: number | null; p99: number | null; max: number; samples: number } | null;
  readonly verification: Verification | null;
  readonly daemonExit: { code: number | null; signal: string | null; killed: boolean };
  readonly problems: Array<Record<string, unknown>>;
}

async function latencyRun(opts: Options, kafka: KafkaHandle, tmpRoot: string): Promise<LatencyResult> {
  const dir = join(tmpRoot, 'latency');
  mkdirSync(dir, { recursive: true });
  const topic = await newBenchTopic(kafka.brokers, 'latency');
  const daemon = new BenchDaemon(
    ROOT,
    dir,
    daemonConfig({ port: 0, brokers: kafka.brokers, topic, durability: 'disk', shutdownSecs: 20 }),
    opts.daemonNodeArgs,
  );
  try {
    const port = Number(new URL(await daemon.start()).port);
    const pid = daemon.pid;
    const names = Array.from({ length: opts.devices }, (_, i) => `dev-${i}`);
    const load = await startLoad(
      loadSpecs({
        port,
        names,
        procs: opts.procs,
        window: opts.window,
        rate: opts.latencyRate,
        warmupMs: opts.warmupMs,
        durationMs: opts.latencyDurationMs,
      }),
      tmpRoot,
    );
    await sleepUntil(load.measureFrom);
    const s0 = snapshot(pid);
    await sleepUntil(load.measureTo);
    const s1 = snapshot(pid);
    const results = await load.done;
    const summary = summariseLoad(results, opts.latencyDurationMs);
    const committed = (): number => counter(daemon.lastStats(), 'committed_events_total');
    await daemon.waitStats(
      (s) => counter(s, 'sent_events_total') >= committed() && bufferEvents(s) === 0,
      30_000,
      summary.stoppedAt,
    );
    const exit = await daemon.stop('SIGTERM', 30_000);
    const hist = new Histogram();
    let v: Verification | null = null;
    if (opts.verify) {
      v = await verify(
        kafka,
        topic,
        dir,
        results.flatMap((r) => r.tally ?? []),
        (payload, _receivedAt, appendAt) => {
          // readings carry "ts":<epoch ms> when they were published
          const m = /"ts":(\d+)/.exec(
            Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('latin1'),
          );
          if (m === null) return;
          const ts = Number(m[1]);
          if (ts >= load.measureFrom && ts < load.measureTo) hist.record(Math.max(0, appendAt - ts));
        },
      );
    }
    const h = hist.toJSON();
    const events = summary.ackedInWindow;
    return {
      offeredPerSec: opts.latencyRate,
      ackedPerSec: summary.ackedPerSec,
      load: summary,
      diskBytesPerEvent: s0 !== null && s1 !== null && events > 0 ? (s1.writeBytes - s0.writeBytes) / events : null,
      daemonCpuShare: s0 !== null && s1 !== null ? (s1.cpuSecs - s0.cpuSecs) / (opts.latencyDurationMs / 1000) : null,
      rssBytes: s1?.rssBytes ?? null,
      toKafkaMs:
        h.count > 0 ? { p50: percentile(h, 0.5), p99: percentile(h, 0.99), max: h.maxMs, samples: h.count } : null,
      verification: v,
      daemonExit: exit,
      problems: daemon.problems().slice(0, 10),
    };
  } finally {
    if (daemon.running) await daemon.stop('SIGKILL', 5000).catch(() => undefined);
  }
}

// ---------------------------------------------------------------- report

const signed = (b: number | null): string => (b === null ? '-' : `${b >= 0 ? '+' : ''}${mib(b)}`);
const exitText = (e: { code: number | null; signal: string | null; killed: boolean }): string =>
  `${e.code ?? e.signal}${e.killed ? ' (killed)' : ''}`;
const pass = (ok: boolean | null): string => (ok === null ? '' : ok ? 'PASS' : 'FAIL');
const lostCell = (v: Verification | null): string => (v === null ? '-' : `${int(v.missing)} of ${int(v.acked)}`);

function report(
  opts: Options,
  disk: Array<DiskCase | { name: string; error: string }>,
  drain: DrainResult | { error: string } | null,
  lat: LatencyResult | { error: string } | null,
): string {
  const out: string[] = [];
  if (disk.length > 0) {
    out.push(
      `1. Flash bytes written per event: ${int(opts.rate)} events/s offered, ${opts.devices} devices, QoS 1, ${opts.warmupMs / 1000} s warm-up + ${opts.durationMs / 1000} s measured (daemon /proc/<pid>/io write_bytes)${opts.commitWaitMs !== null ? `, buffer.commit.max_wait_ms ${opts.commitWaitMs}` : ''}`,
    );
    const head = [
      'case',
      'acked/s',
      'payload B',
      'disk B/event',
      'x payload',
      'goal',
      '',
      'daemon-reported B/ev',
      'events/commit',
      'B/commit',
      'PUBACK p50/p99 ms',
      'RSS MiB',
      'spilled',
      'acked lost',
    ];
    const rows = disk.map((c) =>
      'error' in c
        ? [c.name, `error: ${c.error.split('\n')[0]!.slice(0, 60)}`]
        : [
            c.name,
            int(c.ackedPerSec),
            fix(c.payloadBytes, 1),
            fix(c.diskBytesPerEvent, 1),
            fix(c.ratioToPayload, 2),
            c.goalRatio === null ? '-' : `<= ${c.goalRatio}x`,
            pass(c.pass),
            fix(c.daemonReportedBytesPerEvent, 1),
            fix(c.eventsPerCommit, 1),
            int(c.bytesPerCommit),
            `${fix(c.load.latencyMs.p50, 2)} / ${fix(c.load.latencyMs.p99, 2)}`,
            mib(c.rssBytes, 0),
            int(c.spilledEvents),
            lostCell(c.verification),
          ],
    );
    out.push(grid(head, rows));
  }
  if (drain !== null) {
    out.push('');
    if ('error' in drain) out.push(`2. Backlog drain: error: ${drain.error.split('\n')[0]}`);
    else {
      const d = drain;
      out.push(
        `2. Drain of a ${int(d.backlogTarget)}-event backlog under a live load of ${int(d.liveRateOffered)} events/s`,
      );
      const kv: Array<[string, string]> = [
        [
          'build-up (Kafka down, full speed)',
          `${int(d.buildUp.events)} events acked in ${fix(d.buildUp.secs, 1)} s = ${int(d.buildUp.perSec)}/s`,
        ],
        [
          'buffer before restart',
          `${int(d.backlogBeforeRestart)} events, buffer.bytes ${mib(d.bufferBytesBeforeRestart)} MiB = ${fix(d.bufferBytesBeforeRestart !== null ? (100 * d.bufferBytesBeforeRestart) / d.maxBytes : null, 1)}% of max_bytes ${mib(d.maxBytes, 0)} MiB; ${fix(d.bufferBytesBeforeRestart !== null && d.backlogBeforeRestart ? d.bufferBytesBeforeRestart / d.backlogBeforeRestart : null, 1)} B/event`,
        ],
        [
          'SQLite file with the backlog',
          `db ${mib(d.fileBeforeRestart.db)} MiB + wal ${mib(d.fileBeforeRestart.wal)} MiB = ${fix(d.bufferBytesBeforeRestart ? (d.fileBeforeRestart.db + d.fileBeforeRestart.wal) / d.bufferBytesBeforeRestart : null, 2)}x buffer.bytes (after shutdown: db ${mib(d.fileAfterShutdown.db)} MiB, wal ${mib(d.fileAfterShutdown.wal)} MiB)`,
        ],
        ['blocked / lost before restart', `${int(d.blockedMessagesMax)} / ${int(d.lostEventsBeforeRestart)}`],
        [
          'shutdown (Kafka down), 2x',
          `${int(d.shutdownMs)} ms exit ${exitText(d.shutdownExit)}; ${int(d.shutdown2Ms)} ms exit ${exitText(d.shutdown2Exit)}`,
        ],
        [
          'restart to "running" with the backlog',
          `Kafka down ${int(d.restartKafkaDownMs)} ms; Kafka up ${int(d.startupMs)} ms (buffer open with ${int(d.backlogAtOpen)} events)`,
        ],
        [
          'drain time',
          d.drainSecs === null
            ? `not drained within ${opts.drainTimeoutMs / 1000} s`
            : `${fix(d.drainSecs, 1)} s (stats: buffer.events <= ${int(d.drainThreshold)}); Kafka: last pre-restart event appended ${fix(d.drainSecsKafka, 1)} s after "running"`,
        ],
        [
          'drain rate (backlog / time)',
          `${int(d.drainPerSec)} events/s; sent to Kafka ${int(d.sendPerSec)}/s incl. live`,
        ],
        [
          'live ingest during drain',
          `${int(d.liveIngestPerSec)} events/s committed (offered ${int(d.liveRateOffered)}/s)`,
        ],
        [
          'drain / live ratio (goal >= 5x)',
          `${fix(d.ratioToLive, 1)}x (vs offered: ${fix(d.ratioToLiveOffered, 1)}x) ${pass(d.ratioToLive !== null ? d.ratioToLive >= 5 : null)}`,
        ],
        ['RSS live only, ~no backlog (Kafka down)', `${mib(d.rss.liveOnlyNoBacklog.median)} MiB`],
        ['RSS during build-up (peak)', `${mib(d.rss.buildUp.max)} MiB (median ${mib(d.rss.buildUp.median)})`],
        [
          'RSS live only, after the build-up',
          `${mib(d.rss.liveOnlyWithBacklog.median)} MiB (same process: ${signed(d.rss.deltaSameProcessBytes)} MiB)`,
        ],
        [
          'RSS fresh process holding the backlog',
          `${mib(d.rss.freshWithBacklog.median)} MiB: ${signed(d.rss.deltaBacklogBytes)} MiB vs the fresh process without (goal within ~20 MB) ${pass(d.rss.deltaBacklogBytes !== null ? Math.abs(d.rss.deltaBacklogBytes) <= 20e6 : null)}`,
        ],
        [
          'RSS drain daemon: start / peak / after',
          `${mib(d.rss.drainStartup.median)} / ${mib(d.rss.drain.max)} (median ${mib(d.rss.drain.median)}) / ${mib(d.rss.afterDrain.median)} MiB`,
        ],
        [
          'RSS fresh, Kafka up, no backlog',
          `${mib(d.rss.freshNoBacklogKafkaUp.median)} MiB: drain peak ${signed(d.rss.deltaDrainBytes)} MiB, after drain ${signed(d.rss.deltaAfterDrainBytes)} MiB (goal within ~20 MB) ${pass(d.rss.deltaDrainBytes !== null ? d.rss.deltaDrainBytes <= 20e6 : null)}`,
        ],
        [
          'daemon CPU during drain',
          `${fix(d.daemonCpuDrainSecs, 1)} s (${fix(d.daemonCpuDrainSecs !== null && d.drainSecs ? (100 * d.daemonCpuDrainSecs) / d.drainSecs : null, 0)}% of one core)`,
        ],
        [
          'live load',
          `${int(d.live.acked)} acked, ${int(d.live.disconnects)} disconnects, ${int(d.live.resent)} resent, max ${int(d.live.maxOwed)} readings behind`,
        ],
        [
          'acked readings not found (lost)',
          d.verification === null
            ? 'not checked'
            : `${int(d.verification.missing)} of ${int(d.verification.acked)} (${d.verification.source}; ${int(d.verification.duplicateReadings)} duplicates)`,
        ],
      ];
      const w = Math.max(...kv.map(([k]) => k.length));
      for (const [k, v] of kv) out.push(`  ${k.padEnd(w)}  ${v}`);
      if (d.memory !== null) {
        out.push('  daemon process.memoryUsage() (memprobe), MiB, end of phase [at the RSS peak]:');
        const m = (x: MemSample | null): string =>
          x === null
            ? '-'
            : `rss ${mib(x.rss, 0)} heapUsed ${mib(x.heapUsed, 0)}/${mib(x.heapTotal, 0)} external ${mib(x.external, 0)} (arrayBuffers ${mib(x.arrayBuffers, 0)}) other ${mib(x.rss - x.heapTotal - x.external, 0)}`;
        for (const p of d.memory) {
          out.push(
            `    ${p.phase.slice(0, 58).padEnd(58)} ${m(p.last)}${p.peak !== null && p.peak !== p.last ? ` [${m(p.peak)}]` : ''}`,
          );
          if (p.afterGc !== null) out.push(`    ${'  after a forced full GC'.padEnd(58)} ${m(p.afterGc)}`);
        }
      }
    }
  }
  if (lat !== null) {
    out.push('');
    if ('error' in lat) out.push(`3. Latency: error: ${lat.error.split('\n')[0]}`);
    else {
      const l = lat;
      out.push(
        `3. Latency at ${int(l.offeredPerSec)} events/s offered, durability disk (synchronous full), Kafka healthy, ${opts.latencyDurationMs / 1000} s measured`,
      );
      const kv: Array<[string, string]> = [
        ['acked events/s', `${int(l.ackedPerSec)} (max ${int(l.load.maxOwed)} readings behind the offered rate)`],
        [
          'PUBACK p50 / p90 / p99 / p99.9 / max',
          `${fix(l.load.latencyMs.p50, 2)} / ${fix(l.load.latencyMs.p90, 2)} / ${fix(l.load.latencyMs.p99, 2)} / ${fix(l.load.latencyMs.p999, 2)} / ${fix(l.load.latencyMs.max, 2)} ms (${int(l.load.latencyMs.samples)} samples)`,
        ],
        [
          'publish to Kafka p50 / p99 / max',
          l.toKafkaMs === null
            ? '-'
            : `${fix(l.toKafkaMs.p50, 0)} / ${fix(l.toKafkaMs.p99, 0)} / ${fix(l.toKafkaMs.max, 0)} ms (LogAppendTime - reading ts, ms resolution)`,
        ],
        [
          'disk B/event at this rate',
          `${fix(l.diskBytesPerEvent, 1)} (payload ${fix(l.load.payloadBytesPerEvent, 1)} B)`,
        ],
        [
          'daemon CPU, RSS',
          `${fix(l.daemonCpuShare !== null ? 100 * l.daemonCpuShare : null, 0)}% of one core, ${mib(l.rssBytes, 0)} MiB`,
        ],
        ['acked readings not found (lost)', lostCell(l.verification)],
      ];
      const w = Math.max(...kv.map(([k]) => k.length));
      for (const [k, v] of kv) out.push(`  ${k.padEnd(w)}  ${v}`);
    }
  }
  return out.join('\n');
}

function grid(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => (r.length === 2 && i > 0 ? 0 : (r[i] ?? '').length))),
  );
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[0]!) : c.padStart(widths[i]!))).join(' | ');
  return [
    line(head),
    widths.map((w) => '-'.repeat(w)).join('-+-'),
    ...rows.map((r) => (r.length === 2 ? `${r[0]!.padEnd(widths[0]!)} | ${r[1]}` : line(r))),
  ]
    .map((l) => `  ${l}`)
    .join('\n');
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const opts = parseOptions();
  commitWaitMs = opts.commitWaitMs;
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').replace(/Z$/, '');
  const resultsDir = join(ROOT, 'scripts/bench/results');
  for (const f of ['dist/src/cli/main.js', 'dist/scripts/bench/load.js']) {
    if (!existsSync(join(ROOT, f)))
      throw new Error(`${f} is missing: run npm run build first (npm run bench:durability does)`);
  }
  return runFrame(
    { prefix: 'edgehaul-durability-', kafka: opts.kafka, keep: opts.keep, maxSecs: opts.maxSecs },
    ({ tmpRoot, ownKafkaDir }) => durabilityRun(opts, stamp, resultsDir, tmpRoot, ownKafkaDir),
  );
}

async function durabilityRun(
  opts: Options,
  stamp: string,
  resultsDir: string,
  tmpRoot: string,
  ownKafkaDir: string | null,
): Promise<number> {
  const meta = {
    ...runMeta(opts, tmpRoot),
    partSecs: {} as Record<string, number>,
    /** per part: share of all cores busy, and CPU seconds of processes this benchmark did not start (noise) */
    partCpu: {} as Record<string, { hostBusy: number; foreignCpuSecs: number; foreignCpuShare: number }>,
  };
  const disk: Array<DiskCase | { name: string; error: string }> = [];
  let drain: DrainResult | { error: string } | null = null;
  let lat: LatencyResult | { error: string } | null = null;
  let kafka: KafkaHandle | null = null;
  let exitCode = 0;
  try {
    kafka = await openKafka(opts.kafka, ownKafkaDir ?? join(tmpRoot, 'kafka'));
    meta.kafkaVersion = kafka.version;
    await warmKafka(kafka.brokers);

    const ourRoots = (): number[] => [
      process.pid,
      ...(kafka?.pid !== null && kafka?.pid !== undefined ? [kafka.pid] : []),
    ];
    const probe = (): { t: number; host: ReturnType<typeof hostCpu>; foreign: Map<number, number> } => ({
      t: Date.now(),
      host: hostCpu(),
      foreign: foreignCpu(ourRoots()),
    });
    const noted = (part: string, p0: ReturnType<typeof probe>): void => {
      const p1 = probe();
      const secs = (p1.t - p0.t) / 1000;
      const f = foreignCpuSecs(p0.foreign, p1.foreign);
      meta.partSecs[part] = secs;
      meta.partCpu[part] = {
        hostBusy: hostBusy(p0.host, p1.host),
        foreignCpuSecs: f,
        foreignCpuShare: f / secs / cpus().length,
      };
    };
    if (opts.parts.includes('disk')) {
      const t = probe();
      for (const [durability, up] of [
        ['disk', true],
        ['disk', false],
        ['memory', true],
        ['memory', false],
      ] as const) {
        const name = `${durability}-${up ? 'kafka-up' : 'kafka-down'}`;
        log(`disk bytes: ${name} (${opts.warmupMs / 1000} + ${opts.durationMs / 1000} s at ${opts.rate}/s)`);
        try {
          const c = await diskCase(opts, kafka, tmpRoot, durability, up);
          disk.push(c);
          log(
            `  ${name}: ${fix(c.diskBytesPerEvent, 1)} B/event = ${fix(c.ratioToPayload, 2)}x payload; ${int(c.ackedPerSec)} acked/s; lost ${lostCell(c.verification)}`,
          );
        } catch (err) {
          exitCode = 1;
          log(`  ${name} FAILED: ${(err as Error).stack ?? String(err)}`);
          disk.push({ name, error: (err as Error).stack ?? String(err) });
          await killChildren();
        }
      }
      noted('disk', t);
    }
    if (opts.parts.includes('drain')) {
      const t = probe();
      log(`drain: backlog of ${opts.backlog} events, live load ${opts.liveRate}/s`);
      try {
        drain = await drainRun(opts, kafka, tmpRoot);
      } catch (err) {
        exitCode = 1;
        log(`  drain FAILED: ${(err as Error).stack ?? String(err)}`);
        drain = { error: (err as Error).stack ?? String(err) };
        await killChildren();
      }
      noted('drain', t);
    }
    if (opts.parts.includes('latency')) {
      const t = probe();
      log(`latency: ${opts.latencyRate}/s (${opts.warmupMs / 1000} + ${opts.latencyDurationMs / 1000} s)`);
      try {
        lat = await latencyRun(opts, kafka, tmpRoot);
      } catch (err) {
        exitCode = 1;
        log(`  latency FAILED: ${(err as Error).stack ?? String(err)}`);
        lat = { error: (err as Error).stack ?? String(err) };
        await killChildren();
      }
      noted('latency', t);
    }
  } finally {
    await killChildren();
  }
  const lost = [
    ...disk.map((c) => ('verification' in c ? (c.verification?.missing ?? 0) : 0)),
    drain !== null && 'verification' in drain ? (drain.verification?.missing ?? 0) : 0,
    lat !== null && 'verification' in lat ? (lat.verification?.missing ?? 0) : 0,
  ].reduce((a, b) => a + b, 0);
  if (lost > 0) exitCode = 1;

  mkdirSync(resultsDir, { recursive: true });
  const file = opts.out ?? join(resultsDir, `durability-${stamp}.json`);
  writeFileSync(
    file,
    `${JSON.stringify({ meta: { ...meta, finishedAt: new Date().toISOString(), totalSecs: (Date.now() - Date.parse(meta.startedAt)) / 1000, leftoverProcesses: null }, disk, drain, latency: lat }, null, 2)}\n`,
  );

  process.stdout.write(`\n${report(opts, disk, drain, lat)}\n`);
  const problems = [
    ...disk.flatMap((c) =>
      'problems' in c
        ? c.problems.filter((p) => c.kafkaUp || !expectedWhileKafkaDown(p)).map((p) => [c.name, p] as const)
        : [],
    ),
    ...(drain !== null && 'problems' in drain ? drain.problems.map((p) => ['drain', p] as const) : []),
    ...(lat !== null && 'problems' in lat ? lat.problems.map((p) => ['latency', p] as const) : []),
  ];
  if (problems.length > 0) {
    process.stdout.write('\ndaemon warn/error lines (other than "Kafka unreachable" where it is down on purpose):\n');
    for (const [where, p] of problems.slice(0, 12))
      process.stdout.write(`  ${where}: ${JSON.stringify(p).slice(0, 300)}\n`);
  }
  if (lost > 0)
    process.stdout.write(`\nLOST: ${lost} acknowledged readings were found neither in Kafka nor in the buffer\n`);
  const noisy = Object.entries(meta.partCpu).filter(([, c]) => c.foreignCpuShare > 0.05);
  if (noisy.length > 0) {
    process.stdout.write(
      `\nwarning: processes this benchmark did not start used CPU meanwhile (${noisy.map(([p, c]) => `${p}: ${fix(c.foreignCpuSecs, 1)} s = ${fix(100 * c.foreignCpuShare, 0)}% of ${cpus().length} cores`).join(', ')}); that skews the figures\n`,
    );
  }
  process.stdout.write(
    `\ntotal ${fix((Date.now() - Date.parse(meta.startedAt)) / 1000, 0)} s (${Object.entries(meta.partSecs)
      .map(([k, v]) => `${k} ${fix(v, 0)} s`)
      .join(', ')}); results: ${relative(process.cwd(), file) || file}\n`,
  );
  return exitCode;
}

runMain(main);
