/**
 * End-to-end throughput benchmark: `npm run bench` (builds, then runs this).
 *
 * Starts the project's own Kafka (scripts/kafka/start.sh, in a temp dir), then
 * runs each scenario with the same load generator processes (load.ts:
 * devices x window QoS 1 publishes in flight, warm-up, measured window):
 *
 *   aedes-inprocess           aedes alone in this process, no pipeline: the ingest ceiling (QoS 1, and QoS 0)
 *   edgehaul-embedded-disk    the daemon, embedded broker, buffer synchronous=full
 *   edgehaul-embedded-normal  the same with synchronous=normal
 *   edgehaul-client           the daemon as client (one connection, the default) of a separate aedes process
 *   edgehaul-client-perdevice the same with one connection per device (ingest.client.connections)
 *
 * and prints a table; all figures go to scripts/bench/results/e2e-<timestamp>.json.
 * Everything binds 127.0.0.1 on ephemeral ports; every process it starts is
 * stopped at the end (checked with pgrep), also on errors and Ctrl-C.
 *
 * Options (flag, or environment variable EDGEHAUL_BENCH_<NAME> with - as _):
 *   --duration S         measured seconds per scenario (10)
 *   --warmup S           warm-up seconds before the measured window (2)
 *   --devices N          simulated devices (8)
 *   --window N           QoS 1 publishes in flight per device (100)
 *   --procs N            load generator processes (2)
 *   --client raw|mqttjs  load generator MQTT client (raw: minimal, low CPU; mqttjs: mqtt.js)
 *   --scenarios LIST     comma-separated subset of the names above (all)
 *   --qos0 S             seconds of the aedes QoS 0 run, 0 to skip (5)
 *   --drain-timeout S    embedded: wait at most this long after the load for the backlog to reach Kafka (60)
 *   --client-drain S     client mode: the same, usually cut short since the upstream broker holds a backlog (10)
 *   --profile            run the daemon with --cpu-prof and summarise the profiles
 *   --daemon-node-args=A extra node flags for the daemon, e.g. --daemon-node-args=--max-semi-space-size=32
 *   --kafka X            use a running Kafka instead of starting one: HOST:PORT, or the --dir
 *                        of scripts/kafka/start.sh (then its CPU is measured too)
 *   --keep               keep the temp dir (daemon buffers, Kafka data, logs)
 */
import { execFile, execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, fsyncSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { promisify, parseArgs } from 'node:util';
import { Aedes } from 'aedes';
import { BenchDaemon, type StatsLine } from './daemon.js';
import { mergeHistograms, percentile, type HistogramData } from './histogram.js';
import { consumeAll, createBenchTopic, eventsBetween, kafkaClient, type KafkaTally } from './kafka-count.js';
import type { FromLoad, LoadResult, LoadSpec, ToLoad } from './load.js';
import { CpuProbe, RssSampler, snapshot } from './procstat.js';
import { formatSummary, summarise, type ProfileSummary } from './profile-summary.js';
import { fsyncProbe, gitInfo, killChildren, log, pgrep, resetLogClock, stopKafka, track, warmKafka } from './harness.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../../..');
const ALL_SCENARIOS = ['aedes-inprocess', 'edgehaul-embedded-disk', 'edgehaul-embedded-normal', 'edgehaul-client', 'edgehaul-client-perdevice'] as const;
type ScenarioName = (typeof ALL_SCENARIOS)[number];

// ---------------------------------------------------------------- options

interface Options {
  durationMs: number;
  warmupMs: number;
  devices: number;
  window: number;
  procs: number;
  client: 'raw' | 'mqttjs';
  scenarios: ScenarioName[];
  qos0Ms: number;
  drainTimeoutMs: number;
  clientDrainMs: number;
  profile: boolean;
  daemonNodeArgs: string[];
  kafka: string | null;
  keep: boolean;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string' },
      warmup: { type: 'string' },
      devices: { type: 'string' },
      window: { type: 'string' },
      procs: { type: 'string' },
      client: { type: 'string' },
      scenarios: { type: 'string' },
      qos0: { type: 'string' },
      'drain-timeout': { type: 'string' },
      'client-drain': { type: 'string' },
      profile: { type: 'boolean' },
      'daemon-node-args': { type: 'string' },
      kafka: { type: 'string' },
      keep: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: false,
  });
  if (values.help === true) {
    const text = readFileSync(join(ROOT, 'scripts/bench/e2e.ts'), 'utf8');
    process.stdout.write(`${/\/\*\*([\s\S]*?)\*\//.exec(text)?.[1]?.replace(/^ \* ?/gm, '') ?? ''}\n`);
    process.exit(0);
  }
  const get = (name: keyof typeof values): string | boolean | undefined => {
    const v = values[name];
    if (v !== undefined) return v;
    return process.env[`EDGEHAUL_BENCH_${name.toUpperCase().replace(/-/g, '_')}`];
  };
  const num = (name: keyof typeof values, dflt: number, min: number, max: number): number => {
    const raw = get(name);
    if (raw === undefined || raw === '') return dflt;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${name} must be a number in [${min}, ${max}], got ${String(raw)}`);
    return n;
  };
  const flag = (name: keyof typeof values): boolean => {
    const v = get(name);
    return v === true || v === '1' || v === 'true';
  };
  const client = String(get('client') ?? 'raw');
  if (client !== 'raw' && client !== 'mqttjs') throw new Error('--client must be raw or mqttjs');
  const scenarioList = String(get('scenarios') ?? ALL_SCENARIOS.join(',')).split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const s of scenarioList) if (!(ALL_SCENARIOS as readonly string[]).includes(s)) throw new Error(`unknown scenario ${s}; known: ${ALL_SCENARIOS.join(', ')}`);
  const window = num('window', 100, 1, 30_000);
  return {
    durationMs: num('duration', 10, 1, 3600) * 1000,
    warmupMs: num('warmup', 2, 0, 600) * 1000,
    devices: Math.round(num('devices', 8, 1, 10_000)),
    window: Math.round(window),
    procs: Math.round(num('procs', 2, 1, 64)),
    client,
    scenarios: ALL_SCENARIOS.filter((s) => scenarioList.includes(s)),
    qos0Ms: num('qos0', 5, 0, 3600) * 1000,
    drainTimeoutMs: num('drain-timeout', 60, 1, 3600) * 1000,
    clientDrainMs: num('client-drain', 10, 0, 3600) * 1000,
    profile: flag('profile'),
    daemonNodeArgs: String(get('daemon-node-args') ?? '').split(/\s+/).filter((a) => a !== ''),
    kafka: (get('kafka') as string | undefined) ?? null,
    keep: flag('keep'),
  };
}

// ---------------------------------------------------------------- child processes

const children = new Set<ChildProcess>();

/** Kills whatever still has our temp dir in its command line (nothing should); returns what survived. */
async function reapLeftovers(tmpRoot: string): Promise<Array<{ pid: number; cmd: string }>> {
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
    await new Promise((r) => setTimeout(r, 500));
    left = pgrep(tmpRoot);
  }
  log(`pgrep -f ${tmpRoot}: ${left.length === 0 ? 'no processes left' : `${left.length} still running`}`);
  return left;
}

// ---------------------------------------------------------------- kafka

interface KafkaHandle {
  readonly brokers: string[];
  readonly pid: number | null;
  readonly version: string | null;
  stop(): Promise<void>;
}

async function startKafka(dir: string): Promise<KafkaHandle> {
  mkdirSync(dir, { recursive: true });
  const t0 = Date.now();
  const stop = (): Promise<void> => stopKafka(dir);
  let stdout: string;
  try {
    ({ stdout } = await run('bash', [join(ROOT, 'scripts/kafka/start.sh'), '--dir', dir], { timeout: 240_000 }));
  } catch (err) {
    await stop(); // start.sh cleans up after itself; this is belt and braces
    throw err;
  }
  const m = /KAFKA_BROKERS=(\S+)/.exec(stdout);
  if (m === null) {
    await stop();
    throw new Error(`start.sh printed no KAFKA_BROKERS: ${stdout}`);
  }
  const env = readFileSync(join(dir, 'broker.env'), 'utf8');
  const pid = Number(/KAFKA_PID=(\d+)/.exec(env)?.[1] ?? NaN);
  log(`Kafka ${/KAFKA_VERSION=(\S+)/.exec(env)?.[1] ?? '?'} on ${m[1]} (pid ${pid}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return { brokers: [m[1]!], pid: Number.isFinite(pid) ? pid : null, version: /KAFKA_VERSION=(\S+)/.exec(env)?.[1] ?? null, stop };
}

// ---------------------------------------------------------------- load generators

interface LoadRun {
  /** epoch ms the publishers start */
  readonly at: number;
  readonly measureFrom: number;
  readonly measureTo: number;
  readonly pids: number[];
  readonly done: Promise<LoadResult[]>;
}

async function startLoad(opts: Options, host: string, port: number, qos: 0 | 1, warmupMs: number, durationMs: number, tag: string, drainMs = 30_000): Promise<LoadRun> {
  const names = deviceNames(opts);
  const groups: string[][] = Array.from({ length: Math.min(opts.procs, names.length) }, () => []);
  names.forEach((d, i) => groups[i % groups.length]!.push(d));
  const procs = groups.map((devices) => {
    const spec: LoadSpec = { host, port, devices, window: opts.window, qos, warmupMs, durationMs, drainMs, client: opts.client };
    const child = track(fork(join(ROOT, 'dist/scripts/bench/load.js'), [JSON.stringify(spec), tag], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    let onReady: () => void = () => undefined;
    let onFail: (err: Error) => void = () => undefined;
    const ready = new Promise<void>((res, rej) => {
      onReady = res;
      onFail = rej;
    });
    const result = new Promise<LoadResult>((res, rej) => {
      child.on('message', (m: FromLoad) => {
        if (m.type === 'ready') onReady();
        else if (m.type === 'result') res(m.result);
        else if (m.type === 'error') {
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
      new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error('load generators not ready within 30 s')), 30_000))),
    ]);
  } catch (err) {
    for (const p of procs) p.child.kill('SIGKILL');
    throw err;
  } finally {
    clearTimeout(timer);
  }
  const at = Date.now() + 150;
  for (const p of procs) p.child.send({ type: 'start', at } satisfies ToLoad);
  const measureFrom = at + warmupMs;
  return { at, measureFrom, measureTo: measureFrom + durationMs, pids: procs.map((p) => p.child.pid!), done: Promise.all(procs.map((p) => p.result)) };
}

function deviceNames(opts: Options): string[] {
  return Array.from({ length: opts.devices }, (_, i) => `dev-${i}`);
}

function sleepUntil(epochMs: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.max(0, epochMs - Date.now())));
}

// ---------------------------------------------------------------- results

interface LoadSummary {
  readonly publishers: number;
  readonly sent: number;
  readonly acked: number;
  readonly ackedInWindow: number;
  readonly ackedPerSec: number;
  readonly unacked: number;
  readonly latencyMs: { p50: number | null; p90: number | null; p99: number | null; max: number; mean: number | null; samples: number };
  readonly loadStoppedAt: number;
  readonly lastAckAt: number;
  readonly loadgenCpuSecs: number;
  readonly errors: string[];
}

function summariseLoad(results: LoadResult[], durationMs: number): LoadSummary {
  const hist: HistogramData = mergeHistograms(results.map((r) => r.latency));
  const ackedInWindow = results.reduce((n, r) => n + r.ackedInWindow, 0);
  return {
    publishers: results.reduce((n, r) => n + r.devices, 0),
    sent: results.reduce((n, r) => n + r.sent, 0),
    acked: results.reduce((n, r) => n + r.acked, 0),
    ackedInWindow,
    ackedPerSec: ackedInWindow / (durationMs / 1000),
    unacked: results.reduce((n, r) => n + r.unacked, 0),
    latencyMs: {
      p50: percentile(hist, 0.5),
      p90: percentile(hist, 0.9),
      p99: percentile(hist, 0.99),
      max: hist.maxMs,
      mean: hist.count > 0 ? hist.sumMs / hist.count : null,
      samples: hist.count,
    },
    loadStoppedAt: Math.max(...results.map((r) => r.stoppedAt)),
    lastAckAt: Math.max(...results.map((r) => r.lastAckAt)),
    loadgenCpuSecs: results.reduce((n, r) => n + (r.cpuUserMs + r.cpuSystemMs) / 1000, 0),
    errors: results.flatMap((r) => r.errors),
  };
}

interface AedesResult {
  readonly scenario: 'aedes-inprocess';
  readonly qos: 0 | 1;
  readonly durationMs: number;
  readonly load: LoadSummary;
  /** publishes the broker counted in the window, per second (its own clock) */
  readonly brokerPerSec: number;
  readonly brokerCpuSecs: number;
  readonly brokerPeakRssBytes: number;
  /** CPU seconds in the measured window per role (bench = this process = the broker), host = all, other = not ours */
  readonly cpuWindow: Record<string, number>;
  readonly hostBusy: number;
}

interface EdgehaulResult {
  readonly scenario: ScenarioName;
  readonly config: { mode: 'embedded' | 'client'; synchronous: 'full' | 'normal'; connections: number };
  readonly durationMs: number;
  readonly load: LoadSummary;
  readonly expectedEvents: number;
  readonly kafka: Omit<KafkaTally, 'arrivals'> & {
    readonly topic: string;
    readonly timestampType: string;
    readonly inWindowPerSec: number;
    readonly missing: number;
    readonly valueBytesPerEvent: number | null;
    readonly keyHeaderBytesPerEvent: number | null;
    /** events per second by append time, from the load start */
    readonly timeline: number[];
  };
  /** from when the publishers stopped to the broker append time of the last record */
  readonly drainMs: number | null;
  /** events per second into Kafka from the load stop to the last record */
  readonly drainPerSec: number | null;
  readonly drainComplete: boolean;
  /** events in the daemon's buffer: the most seen in a stats line (every 0.5 s) during the load, and the first after it stopped */
  readonly peakBacklog: number | null;
  readonly backlogAtStop: number | null;
  readonly daemon: {
    readonly peakRssBytes: number;
    readonly hwmBytes: number;
    readonly cpuSecsWindow: number;
    readonly cpuSecsTotal: number;
    readonly cpuUsPerEvent: number | null;
    readonly diskWriteBytes: number;
    readonly diskBytesPerEvent: number | null;
    readonly cancelledWriteBytes: number;
    readonly eventsPerCommit: number | null;
    readonly finalStats: Record<string, unknown> | null;
    readonly exit: { code: number | null; signal: string | null; killed: boolean };
    readonly problems: Array<Record<string, unknown>>;
    readonly stderr: string;
  };
  readonly upstreamBroker: { cpuSecsWindow: number; peakRssBytes: number } | null;
  /** CPU seconds in the measured window per role, host = all, other = processes we did not start */
  readonly cpuWindow: Record<string, number>;
  readonly hostBusy: number;
  readonly profile: ProfileSummary | null;
}

interface FailedScenario {
  readonly scenario: ScenarioName;
  readonly error: string;
}

type ScenarioResult = AedesResult | EdgehaulResult | FailedScenario;

// ---------------------------------------------------------------- scenarios

async function aedesInprocess(opts: Options, qos: 0 | 1, durationMs: number, warmupMs: number, kafka: KafkaHandle, tag: string): Promise<AedesResult> {
  const broker = await Aedes.createBroker({ maxClientsIdLength: 256 });
  let published = 0;
  broker.on('publish', (_packet, client) => {
    if (client !== null) published++;
  });
  const server = createServer(broker.handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  try {
    const rss = new RssSampler([process.pid]).start();
    const load = await startLoad(opts, '127.0.0.1', port, qos, warmupMs, durationMs, tag);
    await sleepUntil(load.measureFrom);
    const c0 = { n: published, t: Date.now(), probe: new CpuProbe({ ...(kafka.pid !== null ? { kafka: [kafka.pid] } : {}), loadgen: load.pids }) };
    await sleepUntil(load.measureTo);
    const c1 = { n: published, t: Date.now(), cpu: c0.probe.end() };
    const results = await load.done;
    rss.stop();
    return {
      scenario: 'aedes-inprocess',
      qos,
      durationMs,
      load: summariseLoad(results, durationMs),
      brokerPerSec: (c1.n - c0.n) / ((c1.t - c0.t) / 1000),
      brokerCpuSecs: c1.cpu.bench,
      brokerPeakRssBytes: rss.peak(process.pid),
      cpuWindow: c1.cpu,
      hostBusy: c1.cpu.hostBusy,
    };
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
    await new Promise<void>((r) => broker.close(() => r()));
  }
}

async function startUpstreamBroker(tag: string): Promise<{ port: number; pid: number; stop: () => Promise<void> }> {
  const child = track(spawn(process.execPath, [join(ROOT, 'dist/test/helpers/broker-process.js'), tag], { stdio: ['ignore', 'pipe', 'inherit'] }));
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  const deadline = Date.now() + 15_000;
  for (;;) {
    const m = /BROKER_PORT=(\d+)/.exec(out);
    if (m !== null) {
      return {
        port: Number(m[1]),
        pid: child.pid!,
        stop: async () => {
          if (child.exitCode !== null || child.signalCode !== null) return;
          const exited = new Promise((r) => child.once('exit', r));
          child.kill('SIGTERM');
          const t = setTimeout(() => child.kill('SIGKILL'), 5000);
          await exited;
          clearTimeout(t);
        },
      };
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error('upstream broker did not start');
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

function firstStatsAfter(stats: readonly StatsLine[], at: number): StatsLine | null {
  return stats.find((s) => s.at >= at) ?? null;
}

async function edgehaulScenario(
  name: ScenarioName,
  kind: { mode: 'embedded'; synchronous: 'full' | 'normal' } | { mode: 'client'; perDevice: boolean },
  opts: Options,
  kafka: KafkaHandle,
  tmpRoot: string,
  stamp: string,
  profileDir: string,
): Promise<EdgehaulResult> {
  const dir = join(tmpRoot, name);
  mkdirSync(dir, { recursive: true });
  // about as long as a production topic name ("edgehaul.events"): it is stored with every buffered event
  const topic = `eh.${name.replace(/^edgehaul-/, '').replace(/[^a-z]/g, '').slice(0, 8)}.${Date.now().toString(36)}`;
  const kc = kafkaClient(kafka.brokers);
  const admin = kc.admin();
  await admin.connect();
  let timestampType: string;
  try {
    timestampType = await createBenchTopic(admin, topic, 3);
  } finally {
    await admin.disconnect();
  }

  const devices = deviceNames(opts);
  const synchronous = kind.mode === 'embedded' ? kind.synchronous : 'full';
  let upstream: Awaited<ReturnType<typeof startUpstreamBroker>> | null = null;
  let connections = 1;
  let ingest: Record<string, unknown>;
  if (kind.mode === 'embedded') {
    ingest = { mode: 'embedded', embedded: { host: '127.0.0.1', port: 0, auth: { allow_anonymous: true } } };
  } else {
    upstream = await startUpstreamBroker(tmpRoot);
    const client: Record<string, unknown> = { url: `mqtt://127.0.0.1:${upstream.port}`, client_id: 'edgehaul-bench', qos: 1, reconnect_ms: 500 };
    if (kind.perDevice) {
      client.connections = devices.map((d) => [`devices/${d}/#`]);
      connections = devices.length;
    }
    ingest = { mode: 'client', client };
  }
  const config = {
    gateway: { id: 'gw-bench' },
    ingest,
    buffer: { path: 'buffer.db', synchronous },
    kafka: { brokers: kafka.brokers, retry: { initial_ms: 100, max_ms: 1000 }, connection_timeout_ms: 3000, request_timeout_ms: 30_000 },
    routes: [{ name: 'telemetry', match: 'devices/+device/#', topic, key: '{device}' }],
    log: { level: 'info', stats_interval_secs: 0.5 },
    shutdown: { timeout_secs: 20 },
    http: { host: '127.0.0.1', port: 0 },
  };
  const nodeArgs = [...opts.daemonNodeArgs, ...(opts.profile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${name}-${stamp}.cpuprofile`] : [])];
  const daemon = new BenchDaemon(ROOT, dir, config, nodeArgs);
  let daemonExit: { code: number | null; signal: NodeJS.Signals | null; killed: boolean } = { code: null, signal: null, killed: false };
  try {
    const address = await daemon.start();
    if (kind.mode === 'client') {
      const t = Date.now() + 15_000;
      while (daemon.lines.filter((l) => l.msg === 'subscribed').length < connections) {
        if (Date.now() > t || !daemon.running) throw new Error(`daemon did not subscribe:\n${daemon.describe()}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    }
    const target = kind.mode === 'embedded' ? Number(new URL(address).port) : upstream!.port;
    const pid = daemon.pid;
    const rssPids = upstream !== null ? [pid, upstream.pid] : [pid];
    const rss = new RssSampler(rssPids).start();

    const s0 = snapshot(pid);
    // client mode: the upstream broker's PUBACKs do not wait for edgehaul; do not wait long for them either
    const load = await startLoad(opts, '127.0.0.1', target, 1, opts.warmupMs, opts.durationMs, tmpRoot, kind.mode === 'embedded' ? 30_000 : 5000);
    await sleepUntil(load.measureFrom);
    const sFrom = { d: snapshot(pid), probe: new CpuProbe({ daemon: [pid], ...(kafka.pid !== null ? { kafka: [kafka.pid] } : {}), loadgen: load.pids, ...(upstream !== null ? { upstream: [upstream.pid] } : {}) }) };
    await sleepUntil(load.measureTo);
    const sTo = { d: snapshot(pid), cpu: sFrom.probe.end() };
    const results = await load.done;
    const loadSummary = summariseLoad(results, opts.durationMs);
    const expected = loadSummary.acked;
    log(`  ${name}: load done, ${loadSummary.acked} acked (${Math.round(loadSummary.ackedPerSec)}/s in window); waiting for the backlog to reach Kafka`);

    const drainTimeout = kind.mode === 'embedded' ? opts.drainTimeoutMs : opts.clientDrainMs;
    const drained = await daemon.waitStats((s) => Number(s.stats.sent_events_total) >= expected, drainTimeout, loadSummary.loadStoppedAt);
    const sEnd = snapshot(pid);
    rss.stop();
    const backlogLine = firstStatsAfter(daemon.stats, loadSummary.loadStoppedAt);
    daemonExit = await daemon.stop('SIGTERM', 40_000);
    await upstream?.stop();
    upstream = null;
    const finalStats = daemon.lastStats()?.stats ?? null;

    const tally = await consumeAll(kc, topic, 60_000);
    const windowEvents = eventsBetween(tally, load.measureFrom, load.measureTo);
    const timeline: number[] = [];
    for (const [at, n] of tally.arrivals) {
      const sec = Math.floor((at - load.at) / 1000);
      if (sec < 0) continue;
      while (timeline.length <= sec) timeline.push(0);
      timeline[sec]! += n;
    }
    const { arrivals: _arrivals, ...tallyRest } = tally;
    void _arrivals;

    let profile: ProfileSummary | null = null;
    if (opts.profile) {
      const file = join(profileDir, `${name}-${stamp}.cpuprofile`);
      if (existsSync(file)) profile = { ...summarise(file, 25), file: relative(ROOT, file) };
      else log(`  ${name}: no profile written (${file})`);
    }

    const committed = finalStats !== null ? Number(finalStats.committed_events_total) : 0;
    const commits = finalStats !== null ? Number(finalStats.commits_total) : 0;
    const cpuTotal = sEnd !== null && s0 !== null ? sEnd.cpuSecs - s0.cpuSecs : 0;
    const diskBytes = sEnd !== null && s0 !== null ? sEnd.writeBytes - s0.writeBytes : 0;
    const eventsForRatios = committed > 0 ? committed : tally.distinctSeqs;
    return {
      scenario: name,
      config: { mode: kind.mode, synchronous, connections },
      durationMs: opts.durationMs,
      load: loadSummary,
      expectedEvents: expected,
      kafka: {
        ...tallyRest,
        topic,
        timestampType,
        inWindowPerSec: windowEvents / (opts.durationMs / 1000),
        missing: Math.max(0, expected - tally.distinctSeqs),
        valueBytesPerEvent: tally.events > 0 ? tally.valueBytes / tally.events : null,
        keyHeaderBytesPerEvent: tally.events > 0 ? tally.keyHeaderBytes / tally.events : null,
        timeline,
      },
      drainMs: tally.lastAppendAt !== null ? tally.lastAppendAt - loadSummary.loadStoppedAt : null,
      drainPerSec: tally.lastAppendAt !== null && tally.lastAppendAt - loadSummary.loadStoppedAt >= 500
        ? eventsBetween(tally, loadSummary.loadStoppedAt, tally.lastAppendAt + 1) / ((tally.lastAppendAt + 1 - loadSummary.loadStoppedAt) / 1000)
        : null,
      drainComplete: drained !== null,
      peakBacklog: daemon.stats.filter((l) => l.at >= load.at && l.at <= loadSummary.loadStoppedAt && typeof l.buffer?.events === 'number')
        .reduce<number | null>((m, l) => Math.max(m ?? 0, l.buffer!.events as number), null),
      backlogAtStop: typeof backlogLine?.buffer?.events === 'number' ? backlogLine.buffer.events : null,
      daemon: {
        peakRssBytes: rss.peak(pid),
        hwmBytes: sEnd?.hwmBytes ?? 0,
        cpuSecsWindow: sTo.d !== null && sFrom.d !== null ? sTo.d.cpuSecs - sFrom.d.cpuSecs : 0,
        cpuSecsTotal: cpuTotal,
        cpuUsPerEvent: eventsForRatios > 0 ? (cpuTotal * 1e6) / eventsForRatios : null,
        diskWriteBytes: diskBytes,
        diskBytesPerEvent: eventsForRatios > 0 ? diskBytes / eventsForRatios : null,
        cancelledWriteBytes: sEnd !== null && s0 !== null ? sEnd.cancelledWriteBytes - s0.cancelledWriteBytes : 0,
        eventsPerCommit: commits > 0 ? committed / commits : null,
        finalStats,
        exit: { code: daemonExit.code, signal: daemonExit.signal, killed: daemonExit.killed },
        problems: daemon.problems().slice(0, 20),
        stderr: daemon.stderr.join('').slice(-2000),
      },
      upstreamBroker: rssPids[1] !== undefined ? { cpuSecsWindow: sTo.cpu.upstream ?? 0, peakRssBytes: rss.peak(rssPids[1]) } : null,
      cpuWindow: sTo.cpu,
      hostBusy: sTo.cpu.hostBusy,
      profile,
    };
  } finally {
    if (daemon.running) await daemon.stop('SIGKILL', 5000).catch(() => undefined);
    await upstream?.stop();
  }
}

// ---------------------------------------------------------------- report

const int = (n: number | null | undefined): string => (n === null || n === undefined || !Number.isFinite(n) ? '-' : Math.round(n).toLocaleString('en-US'));
const fix = (n: number | null | undefined, d = 1): string => (n === null || n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(d));
const mb = (b: number | null | undefined): string => (b === null || b === undefined || b === 0 ? '-' : (b / 1048576).toFixed(0));

const ROW_ORDER = [
  'error',
  'acked msgs/s (publishers)',
  'msgs/s counted by broker',
  'Kafka events/s (window)',
  'Kafka events/s (drain)',
  'PUBACK p50 / p99 ms',
  'broker CPU s (window)',
  'daemon CPU s (window)',
  'daemon CPU us/event',
  'broker peak RSS MB',
  'daemon peak RSS MB',
  'disk write B/event',
  'events/commit',
  'events in Kafka / acked',
  'peak buffer backlog (events)',
  'drain to Kafka s',
  'Kafka value B/event',
  'Kafka CPU s (window)',
  'upstream broker CPU s (window)',
  'load gen CPU s (window)',
  'host CPU busy (window)',
  'others\' CPU s (window)',
];

function table(results: ScenarioResult[], opts: Options): string {
  const cols: Array<{ head: string; cells: Map<string, string> }> = [];
  for (const r of results) {
    const c = new Map<string, string>();
    if ('error' in r) {
      c.set('error', r.error.split('\n')[0]!.slice(0, 40));
      cols.push({ head: r.scenario, cells: c });
      continue;
    }
    if (r.scenario === 'aedes-inprocess' && 'brokerPerSec' in r) {
      c.set('acked msgs/s (publishers)', r.qos === 1 ? int(r.load.ackedPerSec) : '- (QoS 0)');
      c.set('msgs/s counted by broker', int(r.brokerPerSec));
      c.set('PUBACK p50 / p99 ms', r.qos === 1 ? `${fix(r.load.latencyMs.p50, 2)} / ${fix(r.load.latencyMs.p99, 2)}` : '-');
      c.set('broker CPU s (window)', `${fix(r.brokerCpuSecs, 1)} (${fix((100 * r.brokerCpuSecs) / (r.durationMs / 1000), 0)}%)`);
      c.set('broker peak RSS MB', mb(r.brokerPeakRssBytes));
      c.set('load gen CPU s (window)', fix(r.cpuWindow.loadgen, 1));
      c.set('Kafka CPU s (window)', fix(r.cpuWindow.kafka, 1));
      c.set('host CPU busy (window)', `${fix(100 * r.hostBusy, 0)}%`);
      c.set('others\' CPU s (window)', fix(r.cpuWindow.other, 1));
      cols.push({ head: `aedes-inprocess QoS ${r.qos}`, cells: c });
      continue;
    }
    const e = r as EdgehaulResult;
    const client = e.config.mode === 'client';
    c.set('acked msgs/s (publishers)', client ? `${int(e.load.ackedPerSec)} (upstream)` : int(e.load.ackedPerSec));
    c.set('Kafka events/s (window)', int(e.kafka.inWindowPerSec));
    c.set('PUBACK p50 / p99 ms', `${fix(e.load.latencyMs.p50, 2)} / ${fix(e.load.latencyMs.p99, 2)}${client ? ' (up)' : ''}`);
    c.set('daemon CPU s (window)', `${fix(e.daemon.cpuSecsWindow, 1)} (${fix((100 * e.daemon.cpuSecsWindow) / (e.durationMs / 1000), 0)}%)`);
    c.set('daemon CPU us/event', fix(e.daemon.cpuUsPerEvent, 1));
    c.set('daemon peak RSS MB', mb(e.daemon.peakRssBytes));
    c.set('disk write B/event', fix(e.daemon.diskBytesPerEvent, 0));
    c.set('events/commit', fix(e.daemon.eventsPerCommit, 1));
    c.set('events in Kafka / acked', `${int(e.kafka.distinctSeqs)} / ${int(e.expectedEvents)}`);
    c.set('peak buffer backlog (events)', int(e.peakBacklog));
    c.set('drain to Kafka s', e.drainMs !== null ? `${fix(e.drainMs / 1000, 2)}${e.drainComplete ? '' : ' (cut)'}` : '-');
    if (client) c.set('Kafka events/s (drain)', int(e.drainPerSec));
    c.set('Kafka value B/event', fix(e.kafka.valueBytesPerEvent, 1));
    c.set('Kafka CPU s (window)', fix(e.cpuWindow.kafka, 1));
    c.set('load gen CPU s (window)', fix(e.cpuWindow.loadgen, 1));
    if (client) c.set('upstream broker CPU s (window)', fix(e.cpuWindow.upstream, 1));
    c.set('host CPU busy (window)', `${fix(100 * e.hostBusy, 0)}%`);
    c.set('others\' CPU s (window)', fix(e.cpuWindow.other, 1));
    cols.push({ head: r.scenario, cells: c });
  }
  const rows: string[] = [];
  for (const col of cols) for (const k of col.cells.keys()) if (!rows.includes(k)) rows.push(k);
  const rank = (k: string): number => (ROW_ORDER.indexOf(k) === -1 ? ROW_ORDER.length : ROW_ORDER.indexOf(k));
  rows.sort((a, b) => rank(a) - rank(b));
  const w0 = Math.max(...rows.map((r) => r.length), 6);
  const widths = cols.map((c) => Math.max(c.head.length, ...[...c.cells.values()].map((v) => v.length)));
  const line = (first: string, cells: string[]): string => `${first.padEnd(w0)} | ${cells.map((v, i) => v.padStart(widths[i]!)).join(' | ')}`;
  const out = [
    `${opts.devices} devices x ${opts.window} in flight, ${opts.procs} load processes (${opts.client}), ${opts.warmupMs / 1000} s warm-up + ${opts.durationMs / 1000} s measured`,
    line('', cols.map((c) => c.head)),
    `${'-'.repeat(w0)}-+-${widths.map((w) => '-'.repeat(w)).join('-+-')}`,
    ...rows.map((r) => line(r, cols.map((c) => c.cells.get(r) ?? ''))),
  ];
  return out.join('\n');
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const opts = parseOptions();
  resetLogClock();
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').replace(/Z$/, '');
  const tmpRoot = mkdtempSync(join(tmpdir(), 'edgehaul-bench-'));
  const resultsDir = join(ROOT, 'scripts/bench/results');
  const profileDir = join(resultsDir, `profiles-${stamp}`);
  if (opts.profile) mkdirSync(profileDir, { recursive: true });
  for (const f of ['dist/src/cli/main.js', 'dist/scripts/bench/load.js', 'dist/test/helpers/broker-process.js']) {
    if (!existsSync(join(ROOT, f))) throw new Error(`${f} is missing: run npm run build first (npm run bench does)`);
  }

  let kafka: KafkaHandle | null = null;
  const ownKafkaDir = opts.kafka === null ? join(tmpRoot, 'kafka') : null;
  let cleaned: Promise<Array<{ pid: number; cmd: string }>> | null = null;
  /** Stops everything we started (also a Kafka whose start.sh is still running); returns what survived. */
  const cleanup = (): Promise<Array<{ pid: number; cmd: string }>> => {
    cleaned ??= (async () => {
      await killChildren();
      if (ownKafkaDir !== null && existsSync(ownKafkaDir)) {
        log('stopping Kafka');
        await stopKafka(ownKafkaDir);
      }
      return reapLeftovers(tmpRoot);
    })();
    return cleaned;
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    log(`${signal}: cleaning up`);
    void cleanup().finally(() => {
      if (!opts.keep) rmSync(tmpRoot, { recursive: true, force: true });
      process.exit(130);
    });
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const results: ScenarioResult[] = [];
  const meta = {
    startedAt: new Date().toISOString(),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? null,
    memTotalBytes: totalmem(),
    loadavgBefore: loadavg(),
    git: gitInfo(),
    options: opts,
    kafkaVersion: null as string | null,
    fsyncPerSec: 0,
  };
  let exitCode = 0;
  let leftovers: Array<{ pid: number; cmd: string }> = [];
  try {
    meta.fsyncPerSec = Math.round(fsyncProbe(tmpRoot));
    log(`temp dir ${tmpRoot}; fsync probe ${meta.fsyncPerSec}/s; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    if (opts.kafka !== null && existsSync(join(opts.kafka, 'broker.env'))) {
      const env = readFileSync(join(opts.kafka, 'broker.env'), 'utf8');
      const pid = Number(/KAFKA_PID=(\d+)/.exec(env)?.[1] ?? NaN);
      kafka = { brokers: [/KAFKA_BROKERS=(\S+)/.exec(env)?.[1] ?? ''], pid: Number.isFinite(pid) ? pid : null, version: /KAFKA_VERSION=(\S+)/.exec(env)?.[1] ?? null, stop: async () => undefined };
      log(`using the Kafka started in ${opts.kafka}: ${kafka.brokers[0]}`);
    } else if (opts.kafka !== null) {
      kafka = { brokers: opts.kafka.split(','), pid: null, version: null, stop: async () => undefined };
    } else {
      log('starting Kafka (scripts/kafka/start.sh)');
      kafka = await startKafka(ownKafkaDir!);
    }
    meta.kafkaVersion = kafka.version;
    await warmKafka(kafka.brokers);

    for (const scenario of opts.scenarios) {
      try {
        if (scenario === 'aedes-inprocess') {
          log(`aedes-inprocess QoS 1 (${opts.warmupMs / 1000} + ${opts.durationMs / 1000} s)`);
          results.push(await aedesInprocess(opts, 1, opts.durationMs, opts.warmupMs, kafka, tmpRoot));
          if (opts.qos0Ms > 0) {
            log(`aedes-inprocess QoS 0 (1 + ${opts.qos0Ms / 1000} s)`);
            results.push(await aedesInprocess(opts, 0, opts.qos0Ms, 1000, kafka, tmpRoot));
          }
          continue;
        }
        log(`${scenario} (${opts.warmupMs / 1000} + ${opts.durationMs / 1000} s)`);
        const kind = scenario === 'edgehaul-embedded-disk' ? { mode: 'embedded' as const, synchronous: 'full' as const }
          : scenario === 'edgehaul-embedded-normal' ? { mode: 'embedded' as const, synchronous: 'normal' as const }
            : { mode: 'client' as const, perDevice: scenario === 'edgehaul-client-perdevice' };
        const r = await edgehaulScenario(scenario, kind, opts, kafka, tmpRoot, stamp, profileDir);
        results.push(r);
        log(`  ${scenario}: ${Math.round(r.load.ackedPerSec)} acked/s, ${Math.round(r.kafka.inWindowPerSec)} events/s into Kafka, ${r.kafka.distinctSeqs}/${r.expectedEvents} events in Kafka`);
      } catch (err) {
        exitCode = 1;
        const message = (err as Error).stack ?? String(err);
        log(`${scenario} FAILED: ${message}`);
        results.push({ scenario, error: message });
        await killChildren();
      }
    }
  } finally {
    leftovers = await cleanup();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
  if (leftovers.length > 0) exitCode = 1;

  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `e2e-${stamp}.json`);
  writeFileSync(file, `${JSON.stringify({ meta: { ...meta, finishedAt: new Date().toISOString(), leftoverProcesses: leftovers.length }, results }, null, 2)}\n`);

  process.stdout.write(`\n${table(results, opts)}\n`);
  for (const r of results) {
    if ('error' in r) continue;
    if ('daemon' in r) {
      const p = r.daemon.problems;
      if (p.length > 0 || r.daemon.exit.code !== 0 || r.daemon.stderr !== '') {
        process.stdout.write(`\n${r.scenario}: daemon exit ${r.daemon.exit.code ?? r.daemon.exit.signal}${r.daemon.exit.killed ? ' (killed)' : ''}, ${p.length} warn/error lines\n`);
        for (const l of p.slice(0, 5)) process.stdout.write(`  ${JSON.stringify(l).slice(0, 300)}\n`);
        if (r.daemon.stderr !== '') process.stdout.write(`  stderr: ${r.daemon.stderr.slice(-500)}\n`);
      }
      if (r.load.errors.length > 0) process.stdout.write(`${r.scenario}: load generator errors: ${r.load.errors.slice(0, 3).join('; ')}\n`);
      if (r.profile !== null) process.stdout.write(`\n${r.scenario}: ${formatSummary(r.profile)}\n`);
    }
  }
  const noisy = results.filter((r): r is AedesResult | EdgehaulResult => 'cpuWindow' in r && (r.cpuWindow.other ?? 0) > 0.1 * (r.durationMs / 1000));
  if (noisy.length > 0) {
    process.stdout.write(`\nwarning: processes this benchmark did not start used CPU during the measured window (${noisy.map((r) => `${r.scenario}: ${fix(r.cpuWindow.other, 1)} s`).join(', ')}); on ${cpus().length} cores that skews the figures\n`);
  }
  const aedes = results.find((r): r is AedesResult => 'brokerPerSec' in r && r.qos === 1);
  if (aedes !== undefined) {
    for (const r of results) {
      if (!('daemon' in r) || r.config.mode !== 'embedded') continue;
      process.stdout.write(`${r.scenario}: ${fix((100 * r.load.ackedPerSec) / aedes.load.ackedPerSec, 0)}% of aedes-inprocess QoS 1\n`);
    }
  }
  process.stdout.write(`\nresults: ${relative(process.cwd(), file) || file}\n`);
  if (opts.profile) process.stdout.write(`profiles: ${relative(process.cwd(), profileDir)}\n`);

  if (opts.keep) log(`kept ${tmpRoot}`);
  else rmSync(tmpRoot, { recursive: true, force: true });
  return exitCode;
}

main().then(
  (code) => process.exit(code),
  async (err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    await killChildren();
    process.exit(1);
  },
);
