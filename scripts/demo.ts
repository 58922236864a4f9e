/**
 * `npm run demo`: the whole path, end to end, in well under a minute.
 *
 *   simulated devices --MQTT QoS 1--> edgehaul (embedded broker, SQLite buffer) --CBOR batches--> Kafka
 *
 * 1. starts a throw-away Kafka with scripts/kafka/start.sh (jars fetched with mvn on first use, cached)
 * 2. starts the real daemon (`node dist/src/cli/main.js run`) on free loopback ports, temp state dir
 * 3. runs a few mqtt.js devices publishing JSON readings at QoS 1 for a bounded time
 * 4. prints a live line per second: device publishes and PUBACKs, and the daemon's own stats
 * 5. consumes the Kafka topic, prints one decoded batch, checks every acknowledged reading arrived
 * 6. shuts everything down (also on Ctrl-C) and removes its temp dirs
 *
 * Usage: npm run demo [-- [--seconds N] [--devices N]]     (or env DEMO_SECONDS, DEMO_DEVICES)
 * Exit: 0 when every acknowledged reading arrived in Kafka, 1 otherwise, 130 when interrupted.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Kafka, logLevel, type Consumer } from 'kafkajs';
import mqtt, { type MqttClient } from 'mqtt';
import { batchToJsonLines, decodeBatch, HEADERS, type Batch } from '../src/forward/format.js';
import { Daemon, type LogLine } from '../test/support/daemon.js';
import { ROOT, startKafka as startSharedKafka, stopKafka as stopSharedKafka } from '../test/support/kafka.js';
import { waitFor } from '../test/support/poll.js';

const GATEWAY_ID = 'demo-gateway';
const KAFKA_TOPIC = 'edgehaul.demo';
const ROUTE = { name: 'demo', match: 'devices/+device/#', topic: KAFKA_TOPIC, key: '{device}' };
/**
 * The forwarder waits this long after new commits before it reads and sends them. The default (5 ms)
 * sends nearly every reading of this gentle load in a record of its own; 500 ms lets the buffer and
 * the batches visibly fill, still well under a second from PUBACK to Kafka.
 */
const LINGER_MS = 500;
/** Where the shown record value is kept after the run (`.edgehaul/` is git-ignored). */
const BATCH_FILE = join(ROOT, '.edgehaul', 'demo-batch.cbor');

// ---------------------------------------------------------------- options

interface Options {
  seconds: number;
  devices: number;
}

function usage(): string {
  return [
    'usage: npm run demo [-- [--seconds N] [--devices N]]',
    '  --seconds N   how long the devices publish (default 20; env DEMO_SECONDS)',
    '  --devices N   how many simulated devices (default 5; env DEMO_DEVICES)',
  ].join('\n');
}

function parseOptions(argv: readonly string[]): Options {
  const opts: Options = { seconds: 20, devices: 5 };
  const set = (name: string, raw: string | undefined, from: string): void => {
    const n = Number(raw);
    const [min, max] = name === 'seconds' ? [1, 3600] : [1, 100];
    if (
      raw === undefined ||
      raw.trim() === '' ||
      !Number.isFinite(n) ||
      n < min ||
      n > max ||
      (name === 'devices' && !Number.isInteger(n))
    ) {
      throw new UsageError(
        `${from}: expected a number from ${min} to ${max}${name === 'devices' ? ' (whole)' : ''}, got ${JSON.stringify(raw ?? '')}`,
      );
    }
    (opts as unknown as Record<string, number>)[name] = n;
  };
  if (process.env.DEMO_SECONDS !== undefined && process.env.DEMO_SECONDS !== '')
    set('seconds', process.env.DEMO_SECONDS, 'DEMO_SECONDS');
  if (process.env.DEMO_DEVICES !== undefined && process.env.DEMO_DEVICES !== '')
    set('devices', process.env.DEMO_DEVICES, 'DEMO_DEVICES');
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-h' || arg === '--help') {
      process.stdout.write(`${usage()}\n`);
      process.exit(0);
    }
    const m = /^--(seconds|devices)(?:=(.*))?$/.exec(arg);
    if (m === null) throw new UsageError(`unknown argument ${JSON.stringify(arg)}`);
    set(m[1]!, m[2] ?? argv[++i], `--${m[1]!}`);
  }
  return opts;
}

class UsageError extends Error {}
/** An expected failure, already explained by the lines printed before it: no stack trace. */
class DemoError extends Error {}
class Interrupted extends Error {
  constructor() {
    super('interrupted');
  }
}

// ---------------------------------------------------------------- output

const tty = process.stdout.isTTY === true;
const useColor = tty && (process.env.NO_COLOR ?? '') === '';
const paint =
  (code: string) =>
  (s: string): string =>
    useColor ? `\x1b[${code}m${s}\x1b[0m` : s;
const bold = paint('1');
const dim = paint('2');
const green = paint('32');
const red = paint('31');
const yellow = paint('33');
const cyan = paint('36');

/** Plain lines, plus one refreshing status line on a TTY (plain lines otherwise). */
class Out {
  private live: string | null = null;
  /** stdout closed under us (e.g. `npm run demo | head`): keep quiet, but still clean up */
  gone = false;

  private write(s: string): void {
    if (!this.gone) process.stdout.write(s);
  }

  say(text = ''): void {
    if (this.live !== null) this.write('\r\x1b[K');
    this.write(`${text}\n`);
    if (this.live !== null) this.write(this.live);
  }

  status(text: string): void {
    if (!tty) {
      this.write(`${text}\n`);
      return;
    }
    const width = Math.max(40, (process.stdout.columns || 120) - 1);
    this.live = text.length > width ? text.slice(0, width) : text;
    this.write(`\r\x1b[K${this.live}`);
  }

  /** Leaves the last status line on screen. */
  endStatus(): void {
    if (this.live !== null) this.write('\n');
    this.live = null;
  }
}
const out = new Out();

const step = (n: number, text: string): void => out.say(`${bold(cyan(`[${n}/5]`))} ${text}`);
const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

// ---------------------------------------------------------------- interruption and teardown

const abort = new AbortController();

/** Rejects with Interrupted as soon as Ctrl-C (or SIGTERM) arrives. */
function abortable<T>(p: Promise<T>): Promise<T> {
  if (abort.signal.aborted) return Promise.reject(new Interrupted());
  return new Promise<T>((resolvePromise, reject) => {
    const onAbort = (): void => reject(new Interrupted());
    abort.signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        abort.signal.removeEventListener('abort', onAbort);
        resolvePromise(v);
      },
      (e: unknown) => {
        abort.signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>(
        (_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${secs(ms)}`)), ms)),
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Teardown steps, run last-registered first, each once, whatever happened before. */
const teardownSteps: Array<{ label: string; run: () => Promise<void> | void }> = [];
let teardownRun: Promise<void> | null = null;
function onTeardown(label: string, run: () => Promise<void> | void): void {
  teardownSteps.push({ label, run });
}
function teardown(): Promise<void> {
  teardownRun ??= (async () => {
    while (teardownSteps.length > 0) {
      const s = teardownSteps.pop()!;
      try {
        await s.run();
      } catch (err) {
        out.say(red(`  teardown: ${s.label} failed: ${(err as Error).message}`));
      }
    }
  })();
  return teardownRun;
}

// ---------------------------------------------------------------- Kafka

/** scripts/kafka/start.sh --dir DIR, its progress (the first run fetches jars) shown as it comes. */
async function startKafka(dir: string): Promise<{ brokers: string; version: string }> {
  try {
    const k = await startSharedKafka({
      dir,
      timeoutMs: 0,
      signal: abort.signal,
      onProgress: (line) => {
        if (/^start\.sh: Kafka \S+ ready on /.test(line)) return; // said below, shorter
        out.say(dim(`      kafka | ${line}`));
      },
    });
    return { brokers: k.brokers[0]!, version: k.version ?? '?' };
  } catch (err) {
    if (err instanceof Interrupted) throw err;
    // start.sh kills the broker it started when it fails or is stopped; stop.sh covers the rest
    throw new DemoError(
      `scripts/kafka/start.sh failed (${(err as Error).message.split('\n')[0]}); its messages are above`,
    );
  }
}

async function stopKafka(dir: string): Promise<void> {
  const t0 = Date.now();
  await stopSharedKafka(dir);
  out.say(`  Kafka stopped (${secs(Date.now() - t0)})`);
}

interface Received {
  readonly partition: number;
  readonly offset: string;
  readonly key: string;
  readonly headers: Record<string, string>;
  readonly value: Buffer;
  readonly batch: Batch;
}

// ---------------------------------------------------------------- devices

/** One simulated device: an mqtt.js client publishing a JSON reading at QoS 1 every 50-100 ms. */
class Device {
  published = 0;
  acked = 0;
  failed = 0;
  /** reading numbers whose PUBACK arrived: these must reach Kafka */
  readonly ackedNumbers: number[] = [];
  private client: MqttClient | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly inflight = new Set<Promise<void>>();
  private temp = 19 + Math.random() * 4;
  private hum = 35 + Math.random() * 10;

  constructor(readonly id: string) {}

  get topic(): string {
    return `devices/${this.id}/telemetry`;
  }

  async connect(url: string): Promise<void> {
    const client = await mqtt.connectAsync(url, {
      clientId: this.id,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: 5000,
    });
    client.on('error', () => undefined); // failed publishes are counted; a lost connection ends the run anyway
    this.client = client;
  }

  start(): void {
    const next = (): void => {
      this.timer = setTimeout(
        () => {
          this.publishOne();
          next();
        },
        50 + Math.random() * 50,
      );
    };
    next();
  }

  /** Stops publishing and waits (bounded) for the PUBACKs still outstanding. */
  async stop(graceMs: number): Promise<void> {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.inflight.size > 0) await Promise.race([Promise.allSettled([...this.inflight]), sleep(graceMs)]);
  }

  async disconnect(): Promise<void> {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const c = this.client;
    this.client = null;
    if (c !== null)
      await withTimeout(c.endAsync(this.inflight.size > 0), 3000, `${this.id} disconnect`).catch(() => c.end(true));
  }

  private publishOne(): void {
    const client = this.client;
    if (client === null) return;
    const n = this.published++;
    this.temp += (Math.random() - 0.5) * 0.3;
    this.hum += (Math.random() - 0.5) * 0.6;
    const reading = { device: this.id, n, temp: round1(this.temp), hum: round1(this.hum) };
    const p = client.publishAsync(this.topic, JSON.stringify(reading), { qos: 1 }).then(
      () => {
        this.acked++;
        this.ackedNumbers.push(n);
      },
      () => {
        this.failed++;
      },
    );
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }
}

const round1 = (x: number): number => Math.round(x * 10) / 10;
/** The live line's columns (header, right-aligned width). */
const COLUMNS = [
  { header: 'time', width: 6 },
  { header: 'published/s', width: 13 },
  { header: 'acked/s', width: 9 },
  { header: 'committed/s', width: 13 },
  { header: 'sent/s', width: 8 },
  { header: 'buffer', width: 8 },
  { header: 'oldest', width: 9 },
  { header: 'read back', width: 11 },
];
const sum = <T>(xs: readonly T[], f: (x: T) => number): number => xs.reduce((n, x) => n + f(x), 0);

// ---------------------------------------------------------------- daemon log lines

interface BufferStats {
  commits: number;
  events: number;
  bytes: number;
  oldestReceivedAt: number | null;
}
interface StatsSample {
  at: number;
  stats: Record<string, number | boolean>;
  buffer: BufferStats | null;
}

const HIDDEN_FIELDS = new Set(['level', 'time', 'msg', 'svc', 'pid', 'hostname']);
function formatDaemonLine(l: LogLine): string {
  const extra = Object.entries(l)
    .filter(([k, v]) => !HIDDEN_FIELDS.has(k) && v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  const text = `     daemon | ${l.level.padEnd(5)} ${l.msg}${extra !== '' ? `  ${extra}` : ''}`;
  const line = text.length > 200 ? `${text.slice(0, 197)}...` : text;
  return l.level === 'error' || l.level === 'fatal' ? red(line) : l.level === 'warn' ? yellow(line) : dim(line);
}

// ---------------------------------------------------------------- the demo

interface Outcome {
  published: number;
  acked: number;
  failed: number;
  arrived: number;
  duplicates: number;
  missing: number;
  outOfOrder: number;
  undecodable: number;
  daemonExit: number | null;
  daemonStats: Record<string, number | boolean> | null;
  leftInBuffer: number | undefined;
}

async function demo(opts: Options): Promise<Outcome> {
  const started = Date.now();
  out.say(bold(`edgehaul demo: ${opts.devices} simulated devices for ${opts.seconds} s`));
  out.say(
    dim('  devices --MQTT QoS 1--> edgehaul (embedded broker, PUBACK after the SQLite commit) --CBOR batches--> Kafka'),
  );
  out.say();

  const work = mkdtempSync(join(tmpdir(), 'edgehaul-demo-'));
  onTeardown('remove temp dir', () => {
    rmSync(work, { recursive: true, force: true });
    out.say(`  removed ${work}`);
  });

  // 1. Kafka
  const kafkaDir = join(work, 'kafka');
  mkdirSync(kafkaDir);
  step(1, 'starting Kafka (scripts/kafka/start.sh; the first run fetches the jars with mvn, once)');
  onTeardown('stop Kafka', () => stopKafka(kafkaDir));
  let t0 = Date.now();
  const kafkaInfo = await startKafka(kafkaDir);
  const brokers = [kafkaInfo.brokers];
  out.say(`  Kafka ${kafkaInfo.version} ready at ${kafkaInfo.brokers} (${secs(Date.now() - t0)})`);

  // quiet: a fresh broker answers "coordinator not available/loading" for a moment, which kafkajs retries
  const kafka = new Kafka({ clientId: 'edgehaul-demo', brokers, logLevel: logLevel.NOTHING });
  t0 = Date.now();
  const admin = kafka.admin();
  await abortable(admin.connect());
  try {
    await abortable(
      admin.createTopics({
        topics: [{ topic: KAFKA_TOPIC, numPartitions: 3, replicationFactor: 1 }],
        waitForLeaders: true,
      }),
    );
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
  // An idempotent producer's first request waits until the fresh broker can hand out producer ids;
  // doing that here keeps the daemon's log free of the "coordinator is loading" retries it would log.
  const warmup = kafka.producer({ idempotent: true });
  try {
    await abortable(withTimeout(warmup.connect(), 30_000, 'Kafka producer-id warm-up'));
  } finally {
    await warmup.disconnect().catch(() => undefined);
  }
  out.say(
    `  topic ${KAFKA_TOPIC} created (3 partitions), broker ready for idempotent producers (${secs(Date.now() - t0)})`,
  );

  // 2. the daemon
  const stateDir = join(work, 'state');
  mkdirSync(stateDir);
  const config = {
    gateway: { id: GATEWAY_ID },
    ingest: { mode: 'embedded', embedded: { host: '127.0.0.1', port: 0, auth: { allow_anonymous: true } } },
    buffer: { path: 'buffer.db', synchronous: 'full' },
    kafka: { brokers, linger_ms: LINGER_MS, retry: { initial_ms: 100, max_ms: 1000 } },
    routes: [ROUTE],
    log: { level: 'info', stats_interval_secs: 1 },
    shutdown: { timeout_secs: 10 },
    http: { host: '127.0.0.1', port: 0 },
  };
  const daemon = new Daemon(stateDir, config);
  step(2, 'starting the daemon');
  out.say(
    dim(
      `  node ${relative(process.cwd(), join(ROOT, 'dist/src/cli/main.js')) || '.'} run --config ${daemon.configFile}`,
    ),
  );
  out.say(
    dim(
      `  route ${ROUTE.name}: MQTT ${ROUTE.match} -> Kafka topic ${ROUTE.topic}, key ${ROUTE.key}; buffer ${join(stateDir, 'buffer.db')}`,
    ),
  );
  out.say(dim(`  kafka.linger_ms ${LINGER_MS} (default 100), so that the buffer and the batches visibly fill`));

  let daemonIdx = 0;
  let latestStats: StatsSample | null = null;
  const pumpDaemon = (): void => {
    for (; daemonIdx < daemon.lines.length; daemonIdx++) {
      const l = daemon.lines[daemonIdx]!;
      if (l.msg === 'stats') {
        latestStats = {
          at: Date.parse(String(l.time)) || Date.now(),
          stats: l.stats as StatsSample['stats'],
          buffer: (l.buffer as BufferStats | null) ?? null,
        };
      } else {
        out.say(formatDaemonLine(l));
      }
    }
  };
  let daemonExit: number | null = null;
  let daemonStopped = false;
  const stopDaemon = async (): Promise<void> => {
    if (daemonStopped || daemon.pid === undefined) return;
    daemonStopped = true;
    const t = Date.now();
    let exit;
    try {
      exit = await daemon.stop('SIGTERM', 20_000);
    } catch {
      out.say(red('  the daemon did not stop within 20 s; SIGKILL'));
      exit = await daemon.stop('SIGKILL', 5000);
    }
    pumpDaemon();
    daemonExit = exit.code;
    out.say(`  daemon exited with ${exit.code ?? exit.signal} (${secs(Date.now() - t)})`);
  };
  onTeardown('stop the daemon', stopDaemon);
  t0 = Date.now();
  let url: string;
  try {
    url = await abortable(daemon.start());
  } catch (err) {
    pumpDaemon();
    if (err instanceof Interrupted) throw err;
    const stderr = daemon.stderr.join('').trim();
    if (stderr !== '') out.say(red(stderr.slice(-2000)));
    throw new DemoError(`the daemon did not start: ${(err as Error).message.split('\n')[0]}`);
  }
  pumpDaemon();
  out.say(`  daemon pid ${daemon.pid} ready, devices connect to ${url} (${secs(Date.now() - t0)})`);

  // the consumer reads from the beginning, so it may join its group while the devices run
  // short fetch waits: disconnect() waits for the fetch in flight (5 s by default)
  const consumer: Consumer = kafka.consumer({
    groupId: `edgehaul-demo-${process.pid}-${Date.now()}`,
    maxWaitTimeInMs: 250,
  });
  const received: Received[] = [];
  // set by the CRASH listener; the cast keeps the compiler from narrowing it to null for good
  let consumerCrash = null as string | null;
  let undecodable = 0;
  consumer.on(
    consumer.events.CRASH,
    (e) => (consumerCrash = String((e.payload as { error?: Error }).error?.message ?? 'crashed')),
  );
  onTeardown('stop the Kafka consumer', () =>
    withTimeout(consumer.disconnect(), 10_000, 'consumer disconnect').catch(() => undefined),
  );
  await abortable(consumer.connect());
  await abortable(consumer.subscribe({ topics: [KAFKA_TOPIC], fromBeginning: true }));
  await abortable(
    consumer.run({
      eachMessage: async ({ partition, message }) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(message.headers ?? {}))
          if (v !== undefined) headers[k] = Array.isArray(v) ? v.map(String).join(',') : String(v);
        const value = message.value ?? Buffer.alloc(0);
        try {
          received.push({
            partition,
            offset: message.offset,
            key: message.key?.toString() ?? '',
            headers,
            value,
            batch: decodeBatch(value),
          });
        } catch (err) {
          undecodable++;
          out.say(
            red(
              `  record at partition ${partition} offset ${message.offset} is not an edgehaul batch: ${(err as Error).message}`,
            ),
          );
        }
      },
    }),
  );

  // 3. devices
  const devices = Array.from({ length: opts.devices }, (_, i) => new Device(`dev-${i + 1}`));
  onTeardown('disconnect the devices', async () => {
    await Promise.all(devices.map((d) => d.disconnect()));
  });
  await abortable(Promise.all(devices.map((d) => d.connect(url))));
  step(
    3,
    `${devices.length} devices publishing to devices/<device>/telemetry at QoS 1, every 50-100 ms each, for ${opts.seconds} s`,
  );
  out.say(
    dim('  published, acked: per second, seen by the devices (acked = PUBACK, sent only after the SQLite commit)'),
  );
  out.say(dim('  committed, sent (to Kafka), buffer (events), oldest (its age): the daemon\'s own "stats" log line'));
  out.say(dim("  read back: events the demo's Kafka consumer has read so far"));
  out.say(COLUMNS.map((c) => c.header.padStart(c.width)).join(''));

  // the consumer's view, for the live line and the check at the end
  const bySeq = new Map<number, { device: string; n: number }>();
  let consumedIdx = 0;
  let duplicates = 0;
  const absorb = (): void => {
    for (; consumedIdx < received.length; consumedIdx++) {
      const r = received[consumedIdx]!;
      for (const e of r.batch.events) {
        if (bySeq.has(e.seq)) {
          duplicates++;
          continue;
        }
        let reading: { device?: unknown; n?: unknown } = {};
        try {
          reading = JSON.parse(e.payload.toString('utf8')) as typeof reading;
        } catch {
          // not ours; counted as arrived, matched to no device
        }
        bySeq.set(e.seq, { device: String(reading.device), n: Number(reading.n) });
      }
    }
  };

  const runStart = Date.now();
  let last = { at: runStart, published: 0, acked: 0 };
  let statsPrev: StatsSample | null = null;
  let rates = { committed: 0, sent: 0 };
  const tick = (final = false): void => {
    pumpDaemon();
    absorb();
    const now = Date.now();
    const published = sum(devices, (d) => d.published);
    const acked = sum(devices, (d) => d.acked);
    const dt = Math.max(0.001, (now - last.at) / 1000);
    const pubRate = (published - last.published) / dt;
    const ackRate = (acked - last.acked) / dt;
    last = { at: now, published, acked };
    const s = latestStats;
    if (s !== null && (statsPrev === null || s.at > statsPrev.at)) {
      if (statsPrev !== null) {
        const sdt = Math.max(0.001, (s.at - statsPrev.at) / 1000);
        rates = {
          committed: (Number(s.stats.committed_events_total) - Number(statsPrev.stats.committed_events_total)) / sdt,
          sent: (Number(s.stats.sent_events_total) - Number(statsPrev.stats.sent_events_total)) / sdt,
        };
      }
      statsPrev = s;
    }
    const buf = s?.buffer ?? null;
    const oldest =
      buf === null || buf.oldestReceivedAt === null ? '-' : `${Math.max(0, s!.at - buf.oldestReceivedAt)} ms`;
    const r = (x: number): string => String(Math.round(x));
    const label = final ? 'end' : `${Math.round((now - runStart) / 1000)}s`;
    const cells = [
      label,
      r(pubRate),
      r(ackRate),
      r(rates.committed),
      r(rates.sent),
      String(buf?.events ?? '?'),
      oldest,
      String(bySeq.size),
    ];
    out.status(cells.map((v, i) => v.padStart(COLUMNS[i]!.width)).join(''));
  };
  for (const d of devices) d.start();
  const ticker = setInterval(tick, 1000);
  onTeardown('stop the live line', () => {
    clearInterval(ticker);
    out.endStatus();
  });

  const daemonGone = (): void => {
    if (daemon.running) return;
    pumpDaemon();
    throw new DemoError('the daemon exited unexpectedly; its last log lines are above');
  };
  const runEnd = Date.now() + opts.seconds * 1000;
  const ran = await waitFor(
    'the end of the run',
    () => (!daemon.running ? 'daemon gone' : Date.now() >= runEnd),
    opts.seconds * 1000 + 5000,
    100,
    abort.signal,
  );
  if (ran === 'daemon gone') daemonGone();
  await abortable(Promise.all(devices.map((d) => d.stop(10_000))));
  const stoppedAt = Date.now();
  const totalAcked = sum(devices, (d) => d.acked);
  const missingNow = (): number => {
    absorb();
    const seen = new Map<string, Set<number>>();
    for (const v of bySeq.values()) {
      let set = seen.get(v.device);
      if (set === undefined) seen.set(v.device, (set = new Set()));
      set.add(v.n);
    }
    return sum(devices, (d) => d.ackedNumbers.filter((n) => !(seen.get(d.id)?.has(n) ?? false)).length);
  };
  // settled: everything acknowledged is read back, and a daemon stats line taken after the last
  // PUBACK shows it sent all it committed (so the live line ends on an empty buffer)
  const settled = (): boolean => {
    pumpDaemon();
    const s = latestStats;
    const daemonDone =
      s !== null &&
      s.at > stoppedAt &&
      Number(s.stats.sent_events_total) >= Number(s.stats.committed_events_total) &&
      Number(s.stats.committed_events_total) >= totalAcked;
    return missingNow() === 0 && daemonDone;
  };
  let drainError: Error | null = null;
  try {
    const drained = await waitFor(
      'every acknowledged reading to arrive in Kafka',
      () => {
        if (!daemon.running) return 'daemon gone';
        return settled() || (consumerCrash !== null ? 'crashed' : false);
      },
      30_000,
      100,
      abort.signal,
    );
    if (drained === 'daemon gone') daemonGone();
  } catch (err) {
    if (err instanceof Interrupted || err instanceof DemoError) throw err;
    drainError = err as Error;
  }
  clearInterval(ticker);
  tick(true);
  out.endStatus();
  await Promise.all(devices.map((d) => d.disconnect()));
  if (consumerCrash !== null) out.say(red(`  the Kafka consumer crashed: ${consumerCrash}`));
  if (drainError !== null) out.say(red(`  ${drainError.message}`));
  out.say(
    `  devices stopped after ${opts.seconds} s; ${totalAcked} readings acknowledged, ${bySeq.size} events read back from Kafka`,
  );
  out.say();

  // 4. one decoded batch
  step(4, `one Kafka record from ${KAFKA_TOPIC}, decoded`);
  showOneBatch(received);
  out.say();

  // 5. shutdown and the check
  await withTimeout(consumer.disconnect(), 10_000, 'consumer disconnect').catch(() => undefined);
  step(5, 'shutting down: SIGTERM to the daemon (it commits, flushes to Kafka, closes), then Kafka');
  await stopDaemon();
  await teardown();

  const missing = missingNow();
  const perDevice = new Map<string, Array<{ seq: number; n: number }>>();
  for (const [seq, v] of bySeq) {
    let list = perDevice.get(v.device);
    if (list === undefined) perDevice.set(v.device, (list = []));
    list.push({ seq, n: v.n });
  }
  let outOfOrder = 0;
  for (const list of perDevice.values()) {
    list.sort((a, b) => a.seq - b.seq);
    for (let i = 1; i < list.length; i++) if (list[i]!.n <= list[i - 1]!.n) outOfOrder++;
  }
  let daemonStats: Record<string, number | boolean> | null = null;
  try {
    daemonStats = daemon.lastStats();
  } catch {
    // none logged
  }
  const stopped = [...daemon.lines].reverse().find((l) => l.msg === 'stopped');
  out.say(dim(`  total time ${secs(Date.now() - started)}`));
  return {
    published: sum(devices, (d) => d.published),
    acked: sum(devices, (d) => d.acked),
    failed: sum(devices, (d) => d.failed),
    arrived: bySeq.size,
    duplicates,
    missing,
    outOfOrder,
    undecodable,
    daemonExit,
    daemonStats,
    leftInBuffer: typeof stopped?.buffered_events === 'number' ? stopped.buffered_events : undefined,
  };
}

/** Prints the record with the most events (the first such), as headers and `edgehaul decode` JSON lines. */
function showOneBatch(received: readonly Received[]): void {
  if (received.length === 0) {
    out.say(red('  no record arrived'));
    return;
  }
  const r = received.reduce((best, x) => (x.batch.events.length > best.batch.events.length ? x : best));
  out.say(
    `  partition ${r.partition}, offset ${r.offset}, key ${JSON.stringify(r.key)}: ${r.batch.events.length} event(s) in ${r.value.length} bytes of CBOR`,
  );
  out.say(
    dim(
      `  (${received.length} records in all; shown: the one with the most events. A record holds the events of one key that`,
    ),
  );
  out.say(
    dim(
      `   the forwarder took from the buffer in one go: here what gathered in ${LINGER_MS} ms, under load up to kafka.max_events_per_record.)`,
    ),
  );
  out.say('  headers:');
  const order: string[] = Object.values(HEADERS);
  const keys = Object.keys(r.headers).sort((a, b) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99));
  for (const k of keys) out.say(`    ${k}: ${r.headers[k]}`);
  const lines = batchToJsonLines(r.batch);
  out.say('  events, as JSON lines:');
  const shown = 8;
  for (const l of lines.slice(0, shown)) out.say(`    ${l}`);
  if (lines.length > shown) out.say(dim(`    ... ${lines.length - shown} more`));

  // the same with the CLI, from the raw record value
  try {
    mkdirSync(join(ROOT, '.edgehaul'), { recursive: true });
    writeFileSync(BATCH_FILE, r.value);
    const cli = join(ROOT, 'dist/src/cli/main.js');
    const res = spawnSync(process.execPath, [cli, 'decode', BATCH_FILE], { encoding: 'utf8', timeout: 20_000 });
    const same = res.status === 0 && res.stdout === lines.map((l) => `${l}\n`).join('');
    const rel = (p: string): string => relative(process.cwd(), p) || p;
    out.say(
      `  the raw record value is saved; decode it yourself with the CLI${same ? ' (same output, checked)' : ''}:`,
    );
    out.say(`    ${bold(`node ${rel(cli)} decode ${rel(BATCH_FILE)}`)}`);
    if (!same)
      out.say(
        yellow(
          `  note: the CLI printed something else (exit ${res.status}): ${(res.stderr || res.stdout).trim().slice(0, 300)}`,
        ),
      );
  } catch (err) {
    out.say(yellow(`  could not save the record value: ${(err as Error).message}`));
  }
}

function printSummary(o: Outcome): boolean {
  const ok = o.missing === 0 && o.acked > 0 && o.daemonExit === 0;
  const row = (label: string, value: string | number, note = ''): void =>
    out.say(`  ${label.padEnd(34)} ${String(value).padStart(7)}${note !== '' ? `  ${dim(note)}` : ''}`);
  out.say();
  out.say(bold('summary'));
  row('published by the devices (QoS 1)', o.published);
  row(
    'acknowledged (PUBACK)',
    o.acked,
    o.published === o.acked
      ? ''
      : `${o.published - o.acked} without PUBACK${o.failed > 0 ? ` (${o.failed} failed)` : ''}`,
  );
  if (o.daemonStats !== null) {
    row('committed to SQLite (daemon)', Number(o.daemonStats.committed_events_total));
    row(
      'sent to Kafka (daemon)',
      Number(o.daemonStats.sent_events_total),
      `in ${Number(o.daemonStats.sent_records_total)} records, ${Number(o.daemonStats.sent_bytes_total)} bytes`,
    );
  }
  row('arrived in Kafka (read back)', o.arrived, o.duplicates > 0 ? `+${o.duplicates} duplicates` : 'no duplicates');
  row('acknowledged but missing in Kafka', o.missing);
  if (o.outOfOrder > 0) row('out of per-device order', o.outOfOrder);
  if (o.undecodable > 0) row('records that are not edgehaul batches', o.undecodable);
  if (o.leftInBuffer !== undefined) row('left in the buffer at shutdown', String(o.leftInBuffer));
  out.say();
  if (ok) {
    out.say(
      green(
        bold(
          `OK: all ${o.acked} acknowledged readings arrived in Kafka${o.outOfOrder === 0 ? ', in order per device' : ''}.`,
        ),
      ),
    );
  } else if (o.missing > 0) {
    out.say(red(bold(`FAILED: ${o.missing} acknowledged readings did not arrive in Kafka.`)));
  } else if (o.acked === 0) {
    out.say(red(bold('FAILED: no reading was acknowledged.')));
  } else {
    out.say(red(bold(`FAILED: the daemon exited with ${o.daemonExit} instead of 0.`)));
  }
  return ok;
}

// ---------------------------------------------------------------- main

let opts: Options;
try {
  opts = parseOptions(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n${usage()}\n`);
  process.exit(2);
}

let signalled: NodeJS.Signals | null = null;
const onSignal = (sig: NodeJS.Signals): void => {
  // Ctrl-C reaches npm, this process and the daemon (same process group); repeats are expected
  if (signalled !== null) return;
  signalled = sig;
  out.endStatus();
  out.say(yellow(`${sig}: stopping everything and cleaning up (a few seconds)...`));
  abort.abort(new Interrupted());
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
process.on('SIGHUP', onSignal);

// Whatever goes wrong outside the main flow, Kafka (a detached JVM) and the daemon must not be left behind.
let fatal = false;
process.stdout.on('error', () => {
  out.gone = true;
  fatal = true;
  abort.abort(new Interrupted());
});
const onUnexpected = (err: unknown): void => {
  out.endStatus();
  out.say(red(`unexpected error, cleaning up: ${(err as Error).stack ?? String(err)}`));
  fatal = true;
  abort.abort(new Interrupted());
};
process.on('uncaughtException', onUnexpected);
process.on('unhandledRejection', onUnexpected);

let code = 1;
try {
  const outcome = await demo(opts);
  code = printSummary(outcome) ? 0 : 1;
} catch (err) {
  if (!(err instanceof Interrupted)) {
    out.endStatus();
    out.say(red(`demo failed: ${err instanceof DemoError ? err.message : ((err as Error).stack ?? String(err))}`));
  }
} finally {
  await teardown();
}
if (fatal) code = 1;
else if (signalled !== null) code = 130;
process.exit(code);
