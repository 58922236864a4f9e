/**
 * Unbatch benchmark: `npm run bench:unbatch` (builds, then runs this).
 *
 * One run, two measurements on the same machine and Kafka:
 *   daemon   the real daemon (embedded broker, one route devices/+device/#
 *            keyed by device, durability disk) at full load: load.ts processes
 *            (raw MQTT, QoS 1, --window in flight per device) for --duration
 *            seconds after a warm-up; its acknowledged events/s, and its RSS.
 *            Then SIGTERM (it flushes), leaving all of it in the topic.
 *   unbatch  one edgehaul-unbatch instance (the launcher's defaults:
 *            -Xmx256m, serial GC) started on that topic: events/s written
 *            (its /metrics counters, sampled every 250 ms) between 10% and
 *            90% of the events (past its JIT warm-up and the tail of the
 *            last partitions), also from its first output to the last; its
 *            peak RSS.
 * Goal: unbatch >= 2x the daemon's rate (one instance keeps up with two
 * gateways at full load). The machine is shared: the load average is printed
 * with the figures. Results also go to scripts/bench/results/unbatch-<time>.json.
 *
 * Options: --duration S (20), --warmup S (3), --devices N (8), --procs N (2),
 * --window N (100), --partitions N (4), --kafka HOST:PORT|DIR (default: a broker of its own),
 * --max-secs S (600).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BenchDaemon } from './daemon.js';
import {
  fix,
  freePort,
  int,
  killChildren,
  log,
  mib,
  openKafka,
  ROOT,
  runFrame,
  runMain,
  sleep,
  splitDevices,
  startLoad,
  summariseLoad,
  track,
  warmKafka,
} from './harness.js';
import { createBenchTopic, kafkaClient } from './kafka-count.js';
import type { LoadSpec } from './load.js';
import { RssSampler } from './procstat.js';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '3' },
    devices: { type: 'string', default: '8' },
    procs: { type: 'string', default: '2' },
    window: { type: 'string', default: '100' },
    partitions: { type: 'string', default: '4' },
    kafka: { type: 'string' },
    'max-secs': { type: 'string', default: '600' },
    keep: { type: 'boolean', default: false },
  },
});
const durationMs = Number(values.duration) * 1000;
const warmupMs = Number(values.warmup) * 1000;
const JAR = join(ROOT, 'clients/jvm/unbatch/target/edgehaul-unbatch-0.1.0.jar');

async function counters(url: string): Promise<{ events: number; duplicates: number; records: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const sum = (name: string): number =>
    text
      .split('\n')
      .filter((l) => l.startsWith(`${name}{`))
      .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  return {
    events: sum('edgehaul_unbatch_events_total'),
    duplicates: sum('edgehaul_unbatch_duplicates_total'),
    records: sum('edgehaul_unbatch_records_total'),
  };
}

runMain(() =>
  runFrame(
    {
      prefix: 'edgehaul-bench-unbatch-',
      kafka: values.kafka ?? null,
      keep: values.keep,
      maxSecs: Number(values['max-secs']),
    },
    async (f) => {
      const kafka = await openKafka(values.kafka ?? null, join(f.tmpRoot, 'kafka'));
      await warmKafka(kafka.brokers);
      const topic = `eh.unbatch.${Date.now().toString(36)}`;
      const admin = kafkaClient(kafka.brokers).admin();
      await admin.connect();
      await createBenchTopic(admin, topic, Number(values.partitions));
      const load0 = loadavg();

      // --- the daemon at full load
      const port = await freePort();
      const dir = join(f.tmpRoot, 'daemon');
      mkdirSync(dir, { recursive: true });
      const daemon = new BenchDaemon(ROOT, dir, {
        gateway: { id: 'gw-bench' },
        ingest: { mode: 'embedded', embedded: { host: '127.0.0.1', port, auth: { allow_anonymous: true } } },
        buffer: { path: 'buffer.db', synchronous: 'full' },
        kafka: { brokers: kafka.brokers },
        routes: [{ name: 'telemetry', match: 'devices/+device/#', topic, key: '{device}' }],
        log: { level: 'info', stats_interval_secs: 1 },
        shutdown: { timeout_secs: 60 },
        http: { host: '127.0.0.1', port: 0 },
      });
      await daemon.start();
      const names = Array.from({ length: Number(values.devices) }, (_, i) => `dev-${i}`);
      const specs: LoadSpec[] = splitDevices(names, Number(values.procs)).map((devices) => ({
        host: '127.0.0.1',
        port,
        devices,
        window: Number(values.window),
        qos: 1,
        warmupMs,
        durationMs,
        drainMs: 30_000,
        client: 'raw',
      }));
      log(
        `daemon: full load, ${names.length} devices x ${values.window} in flight, ${values.duration} s after ${values.warmup} s warm-up`,
      );
      const daemonRss = new RssSampler([daemon.pid]).start();
      const load = await startLoad(specs, 'edgehaul-bench-unbatch');
      await sleep(load.measureTo - Date.now());
      load.stop();
      const summary = summariseLoad(await load.done, durationMs);
      daemonRss.stop();
      const daemonPeak = daemonRss.peak(daemon.pid);
      const stopped = await daemon.stop('SIGTERM', 90_000);
      log(
        `daemon: ${int(summary.ackedPerSec)} events/s acknowledged (QoS 1, durable); peak RSS ${mib(daemonPeak)} MiB; ${int(summary.acked)} events in all; stop ${stopped.code}`,
      );
      const load1 = loadavg();

      // --- one unbatch instance on the backlog the daemon left
      const state = mkdtempSync(join(tmpdir(), 'edgehaul-bench-unbatch-state-'));
      const child = track(
        spawn('bash', [join(ROOT, 'clients/jvm/unbatch/bin/edgehaul-unbatch')], {
          stdio: ['ignore', 'pipe', 'inherit'],
          env: {
            ...process.env,
            EDGEHAUL_UNBATCH_JAR: JAR,
            EDGEHAUL_UNBATCH_BROKERS: kafka.brokers.join(','),
            EDGEHAUL_UNBATCH_TOPICS: topic,
            EDGEHAUL_UNBATCH_APPLICATION_ID: `bench-${topic}`,
            EDGEHAUL_UNBATCH_STATE_DIR: state,
            EDGEHAUL_UNBATCH_METRICS_PORT: '0',
            EDGEHAUL_UNBATCH_DEAD_LETTERS_TOPIC: `${topic}.dl.events`,
            EDGEHAUL_UNBATCH_HEALTH_TOPIC: `${topic}.health.events`,
          },
        }),
      );
      let url: string | null = null;
      let outText = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => {
        outText += c;
        const m = /"msg":"http listening","http":"([^"]+)"/.exec(outText);
        if (m !== null) url = `http://${m[1]!}`;
      });
      const rss = new RssSampler([child.pid!]).start();
      const t0 = Date.now();
      while (url === null) {
        if (Date.now() - t0 > 90_000) throw new Error(`unbatch did not start:\n${outText.slice(-2000)}`);
        await sleep(100);
      }
      const samples: Array<{ at: number; events: number; duplicates: number }> = [];
      let last = 0;
      let firstAt: number | null = null;
      for (;;) {
        const c = await counters(url);
        const at = Date.now();
        samples.push({ at, events: c.events, duplicates: c.duplicates });
        if (firstAt === null && c.events > 0) firstAt = at;
        if (c.events + c.duplicates >= summary.acked) break;
        if (at - t0 > 300_000) throw new Error(`unbatch wrote ${c.events} of ${summary.acked} events in 300 s`);
        last = c.events;
        await sleep(250);
      }
      void last;
      rss.stop();
      const end = samples.at(-1)!;
      const from = samples.find((s) => s.events > 0)!;
      const wholeRate = (end.events - from.events) / ((end.at - from.at) / 1000);
      // sustained: from 10% to 90% of the events, past the JIT warm-up and the last partitions' tail (the daemon's figure also skips a warm-up)
      const p10 = samples.find((x) => x.events >= end.events * 0.1)!;
      const p90 = samples.find((x) => x.events >= end.events * 0.9)!;
      const unbatchRate = (p90.events - p10.events) / ((p90.at - p10.at) / 1000);
      const peak = rss.peak(child.pid!);
      const startupMs = from.at - t0;
      child.kill('SIGTERM');
      const load2 = loadavg();
      log(
        `unbatch: ${int(unbatchRate)} events/s sustained (10% to 90% of the events); ${int(wholeRate)} events/s from its first output to the last (${int(end.events - from.events)} events in ${fix((end.at - from.at) / 1000)} s; start-up ${fix(startupMs / 1000)} s); peak RSS ${mib(peak)} MiB`,
      );
      log(`ratio unbatch/daemon: ${fix(unbatchRate / summary.ackedPerSec, 2)}x (goal >= 2x)`);
      log(
        `load average (1/5/15 min): before ${load0.map((x) => fix(x, 2)).join('/')}, after the daemon ${load1.map((x) => fix(x, 2)).join('/')}, after unbatch ${load2.map((x) => fix(x, 2)).join('/')}`,
      );
      await admin.disconnect();
      const results = {
        at: new Date().toISOString(),
        options: values,
        daemon: { ackedPerSec: summary.ackedPerSec, acked: summary.acked, peakRssBytes: daemonPeak },
        unbatch: {
          eventsPerSec: unbatchRate,
          wholeEventsPerSec: wholeRate,
          events: end.events,
          duplicates: end.duplicates,
          peakRssBytes: peak,
          startupMs,
        },
        ratio: unbatchRate / summary.ackedPerSec,
        loadavg: { before: load0, afterDaemon: load1, afterUnbatch: load2 },
      };
      mkdirSync(join(ROOT, 'scripts/bench/results'), { recursive: true });
      const file = join(ROOT, `scripts/bench/results/unbatch-${Date.now()}.json`);
      writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
      log(`results: ${file}`);
      await killChildren();
      await kafka.stop();
      return 0;
    },
  ),
);
