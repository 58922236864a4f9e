/**
 * Flash write budget benchmark: `npm run bench:flash` (builds, then runs this).
 *
 * Starts the project's own Kafka (scripts/kafka/start.sh, in a temp dir) and,
 * per point, a fresh real daemon (embedded broker, durability disk,
 * synchronous full, the default commit settings) loaded by load.ts processes
 * (raw MQTT, QoS 1, ~120-byte JSON readings, --devices devices with at most
 * --window publishes in flight each) at each --rates figure, without and with
 * buffer.flash_budget_bytes_per_day = --budget (max wait --max-wait-ms). Per
 * point: the daemon's /proc/<pid>/io write_bytes over the measured window,
 * as bytes per event and bytes per day at that rate; the buffer's block
 * device's sectors written over the same window (everything on the device:
 * on a shared machine that includes the others' work); PUBACK latency
 * p50/p99 from the load generators; events acknowledged per second. Every
 * acknowledged reading must reach Kafka (the run fails otherwise).
 *
 * Prints a table; the figures go to scripts/bench/results/flash-<timestamp>.json.
 * Everything binds 127.0.0.1 on ephemeral ports; every process it starts is
 * stopped at the end, also on errors, Ctrl-C and the --max-secs watchdog.
 *
 * Options (flag, or environment variable EDGEHAUL_BENCH_<NAME> with - as _):
 *   --rates LIST        offered events/s, comma-separated (100,1000,10000)
 *   --budget N          buffer.flash_budget_bytes_per_day of the budget runs (2500000000: the 32 GB card suggestion)
 *   --max-wait-ms N     buffer.flash_budget_max_wait_ms of the budget runs (1000)
 *   --devices N         simulated devices (10)
 *   --procs N           load generator processes (2)
 *   --window N          publishes in flight per device at most (100)
 *   --duration S        measured seconds per point (6)
 *   --warmup S          warm-up seconds before each measured window (2)
 *   --max-secs S        watchdog (600)
 *   --kafka X           use a running Kafka: HOST:PORT, or the --dir of scripts/kafka/start.sh
 *   --keep              keep the temp dir
 *   --out FILE          JSON results (default scripts/bench/results/flash-<timestamp>.json)
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { blockDeviceOfPath, deviceWrittenBytes } from '../../src/core/blockdev.js';
import { BenchDaemon, type StatsLine } from './daemon.js';
import {
  fix,
  int,
  log,
  openKafka,
  optionReader,
  printHelp,
  ROOT,
  runFrame,
  runMain,
  runMeta,
  sleepUntil,
  splitDevices,
  startLoad,
  summariseLoad,
  warmKafka,
  type KafkaHandle,
  type LoadSummary,
} from './harness.js';
import { consumeAll, kafkaClient, newBenchTopic } from './kafka-count.js';
import type { LoadSpec } from './load.js';
import { hostBusy, hostCpu, snapshot } from './procstat.js';

interface Options {
  rates: number[];
  budget: number;
  maxWaitMs: number;
  devices: number;
  procs: number;
  window: number;
  durationMs: number;
  warmupMs: number;
  maxSecs: number;
  kafka: string | null;
  keep: boolean;
  out: string | null;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      rates: { type: 'string' },
      budget: { type: 'string' },
      'max-wait-ms': { type: 'string' },
      devices: { type: 'string' },
      procs: { type: 'string' },
      window: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      'max-secs': { type: 'string' },
      kafka: { type: 'string' },
      keep: { type: 'boolean' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: false,
  });
  if (values.help === true) printHelp('scripts/bench/flash.ts');
  const { get, num, flag, str } = optionReader(values);
  const rates = String(get('rates') ?? '100,1000,10000')
    .split(',')
    .map((s) => Number(s.trim()));
  for (const r of rates) if (!Number.isInteger(r) || r < 1 || r > 1_000_000) throw new Error(`bad rate ${r}`);
  return {
    rates,
    budget: Math.round(num('budget', 2_500_000_000, 1, 1e15)),
    maxWaitMs: Math.round(num('max-wait-ms', 1000, 1, 60_000)),
    devices: Math.round(num('devices', 10, 1, 10_000)),
    procs: Math.round(num('procs', 2, 1, 64)),
    window: Math.round(num('window', 100, 1, 30_000)),
    durationMs: num('duration', 6, 1, 600) * 1000,
    warmupMs: num('warmup', 2, 0, 600) * 1000,
    maxSecs: num('max-secs', 600, 10, 86_400),
    kafka: str('kafka'),
    keep: flag('keep'),
    out: str('out'),
  };
}

interface Point {
  readonly rate: number;
  readonly budget: number | null;
  readonly ackedPerSec: number;
  readonly payloadBytes: number | null;
  readonly writeBytes: number;
  readonly bytesPerEvent: number | null;
  readonly bytesPerDay: number;
  readonly deviceBytesPerDay: number | null;
  readonly commits: number;
  readonly pacedCommits: number;
  readonly pubackMs: LoadSummary['latencyMs'];
  readonly hostBusy: number;
  readonly loadAvg: number;
  readonly acked: number;
  readonly inKafka: number;
}

const counter = (s: StatsLine | null | undefined, k: string): number => Number(s?.stats?.[k] ?? 0);

async function point(
  opts: Options,
  kafka: KafkaHandle,
  tmpRoot: string,
  rate: number,
  budget: number | null,
): Promise<Point> {
  const name = `r${rate}-${budget === null ? 'nobudget' : 'budget'}`;
  const dir = join(tmpRoot, name);
  mkdirSync(dir, { recursive: true });
  const topic = await newBenchTopic(kafka.brokers, name);
  const daemon = new BenchDaemon(ROOT, dir, {
    gateway: { id: 'gw-bench' },
    ingest: { mode: 'embedded', embedded: { host: '127.0.0.1', port: 0, auth: { allow_anonymous: true } } },
    buffer: {
      path: 'buffer.db',
      synchronous: 'full',
      ...(budget !== null ? { flash_budget_bytes_per_day: budget, flash_budget_max_wait_ms: opts.maxWaitMs } : {}),
    },
    kafka: { brokers: kafka.brokers },
    routes: [{ name: 'telemetry', match: 'devices/+device/#', topic, key: '{device}' }],
    log: { level: 'info', stats_interval_secs: 0.5 },
    shutdown: { timeout_secs: 20 },
    http: { host: '127.0.0.1', port: 0 },
  });
  const device = (await blockDeviceOfPath(dir)).device;
  try {
    const port = Number(new URL(await daemon.start()).port);
    const pid = daemon.pid;
    const names = Array.from({ length: opts.devices }, (_, i) => `dev-${i}`);
    const groups = splitDevices(names, opts.procs);
    const specs: LoadSpec[] = groups.map((devices) => ({
      host: '127.0.0.1',
      port,
      devices,
      window: opts.window,
      qos: 1,
      warmupMs: opts.warmupMs,
      durationMs: opts.durationMs,
      drainMs: 30_000,
      client: 'raw',
      tally: true,
      rate: (rate * devices.length) / names.length,
    }));
    const load = await startLoad(specs, tmpRoot);
    await sleepUntil(load.measureFrom);
    const s0 = snapshot(pid);
    const d0 = device === null ? null : await deviceWrittenBytes(device);
    const st0 = daemon.lastStats();
    const h0 = hostCpu();
    await sleepUntil(load.measureTo);
    const s1 = snapshot(pid);
    const d1 = device === null ? null : await deviceWrittenBytes(device);
    const st1 = daemon.lastStats();
    const busy = hostBusy(h0, hostCpu());
    const results = await load.done;
    const summary = summariseLoad(results, opts.durationMs);
    const committed = (): number => counter(daemon.lastStats(), 'committed_events_total');
    await daemon.waitStats(
      (s) => counter(s, 'sent_events_total') >= committed() && s.buffer?.events === 0,
      30_000,
      summary.stoppedAt,
    );
    await daemon.stop('SIGTERM', 30_000);
    // every acknowledged reading must be in Kafka: pacing must not lose anything
    const inKafka = (await consumeAll(kafkaClient(kafka.brokers), topic, 60_000)).distinctSeqs;
    const secs = opts.durationMs / 1000;
    const writeBytes = s0 !== null && s1 !== null ? s1.writeBytes - s0.writeBytes : 0;
    const events = summary.ackedInWindow;
    return {
      rate,
      budget,
      ackedPerSec: summary.ackedPerSec,
      payloadBytes: summary.payloadBytesPerEvent,
      writeBytes,
      bytesPerEvent: events > 0 ? writeBytes / events : null,
      bytesPerDay: (writeBytes / secs) * 86_400,
      deviceBytesPerDay: d0 !== null && d1 !== null ? ((d1 - d0) / secs) * 86_400 : null,
      commits: counter(st1, 'commits_total') - counter(st0, 'commits_total'),
      pacedCommits: counter(st1, 'flash_paced_commits_total') - counter(st0, 'flash_paced_commits_total'),
      pubackMs: summary.latencyMs,
      hostBusy: busy,
      loadAvg: loadavg()[0] ?? 0,
      acked: summary.acked,
      inKafka,
    };
  } finally {
    if (daemon.running) await daemon.stop('SIGKILL', 5000).catch(() => undefined);
  }
}

const gb = (n: number | null): string => (n === null ? '-' : (n / 1e9).toFixed(2));

async function main(): Promise<number> {
  const opts = parseOptions();
  for (const f of ['dist/src/cli/main.js', 'dist/scripts/bench/load.js'])
    if (!existsSync(join(ROOT, f))) throw new Error(`${f} is missing: run npm run build first`);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').replace(/Z$/, '');
  return runFrame(
    { prefix: 'edgehaul-flash-', kafka: opts.kafka, keep: opts.keep, maxSecs: opts.maxSecs },
    async ({ tmpRoot, ownKafkaDir }) => {
      const kafka = await openKafka(opts.kafka, ownKafkaDir ?? join(tmpRoot, 'kafka'));
      await warmKafka(kafka.brokers);
      const points: Point[] = [];
      for (const rate of opts.rates)
        for (const budget of [null, opts.budget]) {
          log(`rate ${rate} events/s, ${budget === null ? 'no budget' : `budget ${gb(budget)} GB/day`}`);
          const p = await point(opts, kafka, tmpRoot, rate, budget);
          points.push(p);
          log(
            `  acked ${int(p.ackedPerSec)} ev/s, ${int(p.bytesPerEvent)} B/event, ${gb(p.bytesPerDay)} GB/day (device ${gb(p.deviceBytesPerDay)}), PUBACK p50 ${fix(p.pubackMs.p50)} p99 ${fix(p.pubackMs.p99)} ms, ${p.commits} commits (${p.pacedCommits} paced)`,
          );
        }
      await kafka.stop();
      const dev = (await blockDeviceOfPath(tmpRoot)).device;
      const head = [
        'offered ev/s',
        'budget GB/day',
        'acked ev/s',
        'B/event',
        'edgehaul GB/day',
        `device ${dev?.disk ?? '?'} GB/day`,
        'commits (paced)',
        'PUBACK p50 ms',
        'p99 ms',
        'host busy',
        'acked = in Kafka',
      ];
      const rows = points.map((p) => [
        int(p.rate),
        p.budget === null ? 'none' : gb(p.budget),
        int(p.ackedPerSec),
        int(p.bytesPerEvent),
        gb(p.bytesPerDay),
        gb(p.deviceBytesPerDay),
        `${p.commits} (${p.pacedCommits})`,
        fix(p.pubackMs.p50, 1),
        fix(p.pubackMs.p99, 1),
        `${Math.round(p.hostBusy * 100)}%`,
        p.inKafka >= p.acked ? `yes (${p.acked})` : `NO: ${p.acked} acked, ${p.inKafka} in Kafka`,
      ]);
      const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
      const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
      process.stdout.write(
        `\n${[line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n')}\n`,
      );
      const out = opts.out ?? join(ROOT, `scripts/bench/results/flash-${stamp}.json`);
      mkdirSync(join(out, '..'), { recursive: true });
      writeFileSync(out, `${JSON.stringify({ meta: runMeta(opts, tmpRoot), cpuinfo: cpuModel(), points }, null, 2)}\n`);
      log(`results in ${out}`);
      return points.every((p) => p.inKafka >= p.acked) ? 0 : 1;
    },
  );
}

function cpuModel(): string | null {
  try {
    return /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? null;
  } catch {
    return null;
  }
}

runMain(main);
