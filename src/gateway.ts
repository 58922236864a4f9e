import type { InboundMessage, MessageSink, SettleCallback } from './core/event.js';
import type { LoadedConfig } from './config/load.js';
import { deepFreeze, readSecret } from './config/load.js';
import { changed, diffConfig, effectiveConfig, type ConfigDiff } from './config/diff.js';
import { openBuffer } from './buffer/open.js';
import type { BufferLimits, RouteLimits } from './buffer/policy.js';
import { DiskRoom } from './buffer/room.js';
import { publishDigest, type BufferStore } from './buffer/store.js';
import { TieredStore, type SpillOptions } from './buffer/tiered.js';
import type { Config } from './config/schema.js';
import { GroupCommitWriter } from './buffer/writer.js';
import { Forwarder } from './forward/forwarder.js';
import { createKafkaSink } from './forward/kafka.js';
import type { RecordSink } from './forward/sink.js';
import { createBrokerIngest } from './ingest/broker.js';
import { createClientIngest } from './ingest/client.js';
import type { Ingest } from './ingest/ingest.js';
import { BacklogMeter, processWriteBytes } from './ops/backlog.js';
import { LogThrottle, type Logger } from './core/log.js';
import { Stats } from './ops/stats.js';
import { DEAD_LETTER_ROUTE, Pipeline, type Outcome } from './transform/pipeline.js';
import { tlsClientOptions } from './security/tls.js';
import { dirname } from 'node:path';
import { evaluateHealth, type Health } from './ops/health.js';
import { OpsServer } from './ops/http.js';
import { commitDurationHistogram, createMetricsRegistry, type OpsSnapshot } from './ops/metrics.js';
import { Scheduler } from './ops/schedule.js';
import { LOSS_REASONS } from './ops/stats.js';
import { VERSION, type StatusReport } from './ops/status.js';
import { SystemProbe } from './ops/system.js';
import { effectiveRoutes, healthMessage, type HealthRecord } from './ops/telemetry.js';
import { compileUploadWindows, type UploadWindows } from './ops/windows.js';

/** What a config change did: the live keys applied, and those that wait for a restart. */
export interface ApplyReport {
  readonly applied: readonly string[];
  readonly restartRequired: readonly string[];
}

const NOTHING_LEASED: ReadonlySet<number> = new Set();

export interface ShutdownReport {
  /** events still in the buffer, to be sent after the next start */
  readonly buffered: number;
  readonly timedOut: boolean;
}

/**
 * Wires the stages and owns their order: store, forwarder, then ingest on the
 * way up; ingest, pending commits, forwarder flush, store on the way down.
 * The constructor only initialises fields.
 */
export class Gateway {
  readonly stats = new Stats();
  private store: TieredStore | null = null;
  /** what the buffer's filesystem can still take */
  private room: DiskRoom | null = null;
  private writer: GroupCommitWriter | null = null;
  private forwarder: Forwarder | null = null;
  private ingest: Ingest | null = null;
  private statsTimer: NodeJS.Timeout | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private spillTimer: NodeJS.Timeout | null = null;
  private storeDamagedAt = 0;
  private lastHealth: Health['status'] = 'ok';
  // operations: health, metrics, status, telemetry, schedules, upload windows
  private readonly startedAt = Date.now();
  private lastCommitAt = 0;
  private readonly commitSeconds = commitDurationHistogram();
  /** the longest commit (write + sync) since the last stats line, ms */
  private commitMaxMs = 0;
  private lastCommitErrorAt = 0;
  private ops: OpsServer | null = null;
  private httpBound = '';
  private scheduler: Scheduler | null = null;
  private telemetryTimer: NodeJS.Timeout | null = null;
  private system: SystemProbe | null = null;
  private windows: UploadWindows | null = null;
  private windowOpen = true;
  private opsTimers: NodeJS.Timeout[] = [];
  private stopping = false;
  private readonly rateMeter = new BacklogMeter();
  private rates: { in: number; out: number; intervalSecs: number; at: number } = { in: 0, out: 0, intervalSecs: 0, at: 0 };
  private readonly backlog = new BacklogMeter();
  private pipeline: Pipeline;
  private tickTimer: NodeJS.Timeout | null = null;
  private limits: BufferLimits | null = null;
  private applying: Promise<unknown> = Promise.resolve();
  private sinkGeneration = 0;
  private readonly throttle = new LogThrottle(10_000);

  constructor(
    private loaded: LoadedConfig,
    private readonly log: Logger,
    private readonly sinkFactory: (kafka: Config['kafka'], onConnected: (up: boolean) => void) => RecordSink = (kafka, onConnected) =>
      createKafkaSink(kafka, log, onConnected, this.stats),
  ) {
    const dl = loaded.config.dead_letters;
    this.pipeline = new Pipeline(effectiveRoutes(loaded.config), { gatewayId: loaded.gatewayId, deadLetterTopic: dl.forward ? dl.topic : null }, {
      dropped: (route, step) => {
        const k = `${route}/${step}`;
        this.stats.transform_dropped_total[k] = (this.stats.transform_dropped_total[k] ?? 0) + 1;
      },
      deadLetter: (route, step, reason) => {
        this.stats.loss('dead_letter', route, 1);
        this.throttle.run(`dead:${route}:${step}`, (suppressed) => {
          this.log.warn({ code: 'EH_ERR_TRANSFORM_FAILED', route, step, reason, suppressed }, 'transform step failed; the input is a dead letter');
        });
      },
    });
  }

  get address(): string {
    return this.ingest?.address ?? '';
  }

  /** host:port of the HTTP endpoint; empty when it is off or not started. */
  get httpAddress(): string {
    return this.httpBound;
  }

  /** The config running now: the last one applied, with restart-only settings as they were at start. */
  get config(): Readonly<Config> {
    return this.loaded.config;
  }

  async start(): Promise<void> {
    const { config, gatewayId, bufferPath } = this.loaded;
    // the file may exceed the stored bytes by SQLite's page and index overhead; beyond this it refuses writes
    const opened = openBuffer(bufferPath, { synchronous: config.buffer.synchronous, maxFileBytes: Math.ceil(config.buffer.max_bytes * 1.25) + 8_388_608 }, this.log);
    const store = new TieredStore(opened.store);
    this.store = store;
    this.room = new DiskRoom(dirname(bufferPath), () => this.loaded.config.buffer.disk_reserve_bytes, store);
    if (opened.quarantined !== null) {
      this.storeDamagedAt = Date.now();
      this.stats.store_damaged_total++;
      this.stats.loss('corrupt', '*', opened.quarantined.events ?? 0);
    }
    this.pipeline.restore(opened.store.loadStates());
    const backlog = store.stats();
    this.log.info({ gateway_id: gatewayId, buffer: bufferPath, incarnation: opened.store.incarnation, buffered_events: backlog.events, buffered_bytes: backlog.bytes, max_bytes: config.buffer.max_bytes }, 'buffer open');

    this.system = new SystemProbe(dirname(bufferPath));
    await this.system.sampleDisk();

    await this.apply(diffConfig(null, config));

    this.ingest = this.createIngest(this.sink);
    await this.ingest.start();
    await this.startOps();
  }

  /**
   * Applies a config change: at boot the diff from nothing, on reload the diff
   * from the running config. Live settings take effect between messages;
   * settings that need a restart keep their running values and are reported.
   * One change at a time.
   */
  apply(diff: ConfigDiff): Promise<ApplyReport> {
    const run = this.applying.then(() => this.applyNow(diff));
    this.applying = run.catch(() => undefined);
    return run;
  }

  private async applyNow(diff: ConfigDiff): Promise<ApplyReport> {
    const config = deepFreeze(effectiveConfig(diff));
    const has = (key: string): boolean => changed(diff, key);
    const restartRequired = diff.changes.filter((c) => !c.live).map((c) => c.key);
    const previousFilters = this.pipeline.filters;
    this.loaded = Object.freeze({ ...this.loaded, config });

    if (has('log')) {
      this.log.level = config.log.level;
      this.restartStatsTimer(config);
    }
    // the writer must exist before routes change: closed windows are committed through it
    if (has('buffer.commit') || has('dead_letters.keep') || this.writer === null) this.applyCommit(config);
    if (has('routes') && diff.from !== null) {
      this.applyRoutes(config);
      const c = config.ingest.client;
      const derived = config.ingest.mode === 'client' && c.topics.length === 0 && c.connections.length === 0;
      if (derived && !sameSet(previousFilters, this.pipeline.filters)) restartRequired.push('ingest.client subscriptions (from routes)');
    }
    // the internal health route comes and goes with telemetry
    if (has('telemetry') && !has('routes') && diff.from !== null) this.applyRoutes(config);
    // the writer reads the limits through a callback: the next group commit sees the new ones
    if (has('routes') || has('buffer') || has('dead_letters') || has('telemetry')) this.limits = bufferLimits(config);
    if (has('routes') || has('buffer.memory')) this.restartSpillTimer(config);
    if (has('routes') || has('buffer.ttl_secs') || has('schedules')) this.restartSweepTimer(config);
    if (has('kafka') || has('schedules')) this.applyWindows(config);
    if (has('telemetry') || has('schedules') || has('routes') || has('buffer.ttl_secs')) this.applySchedules(config);
    if (has('routes')) this.restartTickTimer(config);
    // last: it waits for the batch in flight
    if (has('kafka')) await this.replaceForwarder(config);
    return { applied: diff.changes.filter((c) => c.live).map((c) => c.key), restartRequired };
  }

  /**
   * Swaps in the pipeline for the new routes in one assignment, so a message
   * is handled wholly by the old or the new routes. Unchanged routes keep their
   * state; the open windows of changed routes are closed and stored. At boot
   * the constructor's pipeline (restored from the buffer) is already right.
   */
  private applyRoutes(config: Config): void {
    const { pipeline, closed } = this.pipeline.replace(effectiveRoutes(config));
    this.pipeline = pipeline;
    this.submitGenerated(closed);
  }

  private applyCommit(config: Config): void {
    const options = {
      maxWaitMs: config.buffer.commit.max_wait_ms,
      maxEvents: config.buffer.commit.max_events,
      minEvents: config.buffer.commit.min_events,
      maxBytes: config.buffer.commit.max_bytes,
      keepDeadLetters: config.dead_letters.keep,
      ...(config.ingest.mode === 'client' ? { maxMessages: Math.max(1, config.ingest.client.connections.length) * config.ingest.client.max_in_flight } : {}),
    };
    if (this.writer !== null) {
      this.writer.reconfigure(options);
      return;
    }
    const store = this.store!;
    this.writer = new GroupCommitWriter(
      store,
      options,
      () => this.currentLimits(),
      () => this.forwarder?.inFlight ?? NOTHING_LEASED,
      {
        onCommit: (report) => {
          this.stats.commits_total++;
          this.lastCommitAt = Date.now();
          this.commitSeconds.observe(report.durationMs / 1000);
          if (report.durationMs > this.commitMaxMs) this.commitMaxMs = report.durationMs;
          this.stats.committed_events_total += report.events;
          this.forwarder?.notify();
        },
        onError: (err, messages) => {
          this.stats.commit_errors_total++;
          this.room?.invalidate();
          this.lastCommitErrorAt = Date.now();
          this.throttle.run('commit', (suppressed) => {
            this.log.error({ code: 'EH_ERR_STORE_WRITE', err: err.message, messages, suppressed }, 'buffer commit failed; publishes not acknowledged');
          });
        },
        onFull: (route, events, how) => {
          this.stats.loss('dropped_full', route, events);
          this.throttle.run(`full:${route}:${how}`, (suppressed) => {
            this.log.warn({ code: 'EH_ERR_BUFFER_FULL', route, events, how, suppressed, ...this.bufferBounds() }, how === 'evicted_oldest' ? 'buffer full: oldest events evicted' : 'buffer full: new events dropped');
          });
        },
        onHeld: (routes, messages) => {
          for (const route of routes) {
            this.throttle.run(`full:${route}:held`, (suppressed) => {
              this.log.warn({ code: 'EH_ERR_BUFFER_FULL', route, how: 'held', held_messages: messages, suppressed, ...this.bufferBounds() }, 'buffer full: acknowledgements held');
            });
          }
        },
        checkpoints: () => this.pipeline.checkpoints(),
        checkpointsLost: (states) => this.pipeline.checkpointsLost(states),
      },
    );
  }

  /** The full policy's bounds now: buffer.max_bytes, or less when the filesystem cannot take that much. */
  private currentLimits(): BufferLimits {
    const limits = this.limits ?? bufferLimits(this.loaded.config);
    const disk = this.room?.limitBytes() ?? Number.POSITIVE_INFINITY;
    return disk < limits.totalBytes ? { ...limits, diskBytes: Math.floor(disk) } : limits;
  }

  /** For EH_ERR_BUFFER_FULL lines: what is stored and the bound that applies. */
  private bufferBounds(): Record<string, unknown> {
    const max = this.loaded.config.buffer.max_bytes;
    const disk = this.room?.limitBytes() ?? Number.POSITIVE_INFINITY;
    return {
      buffered_bytes: this.store?.bytes() ?? 0,
      max_bytes: max,
      limit_bytes: Math.floor(Math.min(max, disk)),
      limited_by: disk < max ? 'disk' : 'max_bytes',
      disk_free_bytes: this.room?.freeBytes ?? null,
    };
  }

  /**
   * A new Kafka producer and forwarder. The old forwarder first finishes the
   * send in flight (rows leave the buffer only after Kafka acknowledged them),
   * so the new one starts at the oldest row still buffered: nothing lost,
   * nothing sent twice, nothing reordered. Commits go on meanwhile.
   */
  private async replaceForwarder(config: Config): Promise<void> {
    const old = this.forwarder;
    if (old !== null) await old.pause();
    const generation = ++this.sinkGeneration;
    const sink = this.sinkFactory(config.kafka, (up) => {
      if (generation !== this.sinkGeneration) return; // a replaced producer closing
      if (up !== this.stats.upstream_connected) this.log.info({ brokers: config.kafka.brokers }, up ? 'kafka connected' : 'kafka disconnected');
      this.stats.upstream_connected = up;
    });
    const forwarder = new Forwarder(this.store!, sink, {
      gatewayId: this.loaded.gatewayId,
      maxEventsPerRecord: config.kafka.max_events_per_record,
      maxEventsPerSend: config.kafka.max_events_per_send,
      maxSendBytes: config.kafka.max_send_bytes,
      lingerMs: config.kafka.linger_ms,
      retryInitialMs: config.kafka.retry.initial_ms,
      retryMaxMs: config.kafka.retry.max_ms,
      maxBytesPerSec: config.kafka.max_bytes_per_sec,
      minPriority: () => this.forwardFloor(),
    }, this.stats, this.log.child({ stage: 'forward' }), () => this.writer?.kick());
    this.forwarder = forwarder;
    forwarder.start();
    sink.connect().catch((err: unknown) => {
      this.log.warn({ code: 'EH_ERR_UPSTREAM_SEND', brokers: config.kafka.brokers, err: (err as Error).message }, 'kafka not reachable yet; events are buffered and sent once it is');
    });
  }

  private restartSpillTimer(config: Config): void {
    if (this.spillTimer !== null) clearInterval(this.spillTimer);
    this.spillTimer = null;
    if (!config.routes.some((r) => r.durability === 'memory')) return;
    const spill = { afterMs: config.buffer.memory.spill_after_ms, maxBytes: config.buffer.memory.max_bytes };
    this.spillTimer = setInterval(() => this.spill(spill), Math.max(100, Math.min(1000, spill.afterMs / 4)));
    this.spillTimer.unref();
  }

  private restartSweepTimer(config: Config): void {
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    const ttls = routeTtls(config);
    // a cron expression in schedules.ttl_sweep replaces the interval (applySchedules)
    if (ttls.length === 0 || config.schedules.ttl_sweep !== '') return;
    this.sweepTimer = setInterval(() => this.expire(ttls), Math.min(10_000, Math.max(1000, Math.min(...ttls.map((t) => t.ttlMs)) / 4)));
    this.sweepTimer.unref();
  }

  private restartTickTimer(config: Config): void {
    if (this.tickTimer !== null) clearInterval(this.tickTimer);
    this.tickTimer = null;
    if (!config.routes.some((r) => r.steps.some((st) => 'window' in st))) return;
    // windows close on time even when no new event comes
    this.tickTimer = setInterval(() => this.tick(), WINDOW_TICK_MS);
    this.tickTimer.unref();
    this.tick();
  }

  private restartStatsTimer(config: Config): void {
    if (this.statsTimer !== null) clearInterval(this.statsTimer);
    this.statsTimer = null;
    const every = config.log.stats_interval_secs;
    if (every <= 0) return;
    this.statsTimer = setInterval(() => this.logStats(), every * 1000);
    this.statsTimer.unref();
  }

  /** HTTP endpoint and the samplers behind health, status and metrics: once, at start. */
  private async startOps(): Promise<void> {
    const { config, gatewayId } = this.loaded;
    const every = (ms: number, fn: () => unknown): void => {
      const t = setInterval(fn, ms);
      t.unref();
      this.opsTimers.push(t);
    };
    // the health rules are synchronous: free disk space is sampled in the background
    every(10_000, () => void this.system?.sampleDisk());
    this.sampleRates();
    every(RATE_INTERVAL_MS, () => this.sampleRates());
    every(1000, () => this.watchWindow());
    if (config.http.enabled) {
      const registry = createMetricsRegistry(this.stats, () => this.opsSnapshot(), { gatewayId, version: VERSION }, [this.commitSeconds]);
      this.ops = new OpsServer({ registry, health: () => this.health(), status: () => this.status() }, this.log.child({ stage: 'http' }));
      this.httpBound = await this.ops.listen(config.http.host, config.http.port);
      this.log.info({ http: this.httpBound, paths: ['/metrics', '/healthz', '/status'] }, 'http listening');
    }
  }

  /** Upload windows from kafka.upload_windows (live: read by the forwarder at every selection). */
  private applyWindows(config: Config): void {
    this.windows?.close();
    this.windows = compileUploadWindows(config.kafka.upload_windows, config.schedules.timezone);
    const open = this.windows.isOpen(new Date());
    if (!this.windows.always || !this.windowOpen) {
      this.log.info({ windows: config.kafka.upload_windows, exempt_priority: config.kafka.upload_exempt_priority, open }, open ? 'upload window open' : 'upload window closed');
    }
    this.windowOpen = open;
    if (open) this.forwarder?.notify();
  }

  /** Lowest priority the forwarder may send now; null: all. */
  private forwardFloor(): number | null {
    return this.windows === null || this.windows.isOpen(new Date()) ? null : this.loaded.config.kafka.upload_exempt_priority;
  }

  /** The cron jobs and the telemetry interval, rebuilt from the config (boot and reload). */
  private applySchedules(config: Config): void {
    this.scheduler?.stop();
    if (this.telemetryTimer !== null) clearInterval(this.telemetryTimer);
    this.telemetryTimer = null;
    const scheduler = new Scheduler(config.schedules.timezone, this.log.child({ stage: 'schedule' }));
    this.scheduler = scheduler;
    const ttls = routeTtls(config);
    if (config.schedules.ttl_sweep !== '' && ttls.length > 0) scheduler.add({ name: 'ttl_sweep', cron: config.schedules.ttl_sweep, run: () => this.expire(ttls) });
    if (config.schedules.store_maintenance !== '') scheduler.add({ name: 'store_maintenance', cron: config.schedules.store_maintenance, run: () => this.maintainStore() });
    if (!config.telemetry.enabled) return;
    if (config.telemetry.cron !== '') {
      scheduler.add({ name: 'telemetry', cron: config.telemetry.cron, run: () => this.reportHealth() });
      return;
    }
    this.telemetryTimer = setInterval(() => void this.reportHealth().catch((err: unknown) => {
      this.throttle.run('telemetry', (suppressed) => this.log.error({ code: 'EH_ERR_SCHEDULE_FAILED', job: 'telemetry', err: (err as Error).message, suppressed }, 'scheduled job failed; it runs again at its next time'));
    }), config.telemetry.interval_secs * 1000);
    this.telemetryTimer.unref();
  }

  private watchWindow(): void {
    const open = this.windows?.isOpen(new Date()) ?? true;
    if (open === this.windowOpen || this.windows?.always === true) return;
    this.windowOpen = open;
    this.log.info({ exempt_priority: this.loaded.config.kafka.upload_exempt_priority, buffered_events: this.store !== null ? safeStats(this.store)?.events : null }, open ? 'upload window open' : 'upload window closed');
    if (open) this.forwarder?.notify();
  }

  private sampleRates(): void {
    const buffer = this.store !== null ? safeStats(this.store) : null;
    if (buffer === null) return;
    const now = Date.now();
    const prev = this.rates.at;
    const r = this.rateMeter.sample(now, { sent: this.stats.sent_events_total, committed: this.stats.committed_events_total, written: null }, buffer);
    this.rates = { in: r.receive_rate, out: r.send_rate, intervalSecs: prev === 0 ? 0 : Math.round((now - prev) / 1000), at: now };
  }

  /** Scheduled: WAL checkpoint and PRAGMA optimize. */
  private maintainStore(): void {
    const report = this.store?.maintain();
    if (report !== undefined) this.log.info({ ...report }, report.busy ? 'store maintenance: checkpoint busy, tried again next time' : 'store maintenance done');
  }

  /** One health record into the pipeline, like a device message (buffered, batched, counted). */
  async reportHealth(): Promise<void> {
    if (this.system === null || this.writer === null || this.stopping) return;
    const { gatewayId } = this.loaded;
    const system = await this.system.sample();
    const buffer = this.store !== null ? safeStats(this.store) : null;
    if (this.stopping || buffer === null) return; // stopping meanwhile: the writer takes no more
    const now = Date.now();
    const health = this.health(now);
    const record: HealthRecord = {
      type: 'edgehaul.health',
      version: 1,
      gateway_id: gatewayId,
      at: new Date(now).toISOString(),
      health: { status: health.status, reasons: health.reasons },
      system,
      buffer: { events: buffer.events, bytes: buffer.bytes, max_bytes: this.loaded.config.buffer.max_bytes, oldest_age_secs: ageSecs(buffer.oldestReceivedAt, now) },
      upstream: { connected: this.stats.upstream_connected },
      counters: {
        received_messages_total: this.stats.received_messages_total,
        committed_events_total: this.stats.committed_events_total,
        sent_events_total: this.stats.sent_events_total,
        lost_events_total: this.stats.lostTotal(),
        connected_clients: this.ingest?.connectedClients ?? 0,
      },
    };
    await new Promise<void>((resolve) => {
      this.sink(healthMessage(gatewayId, record, now), (err) => {
        if (err !== null) {
          this.throttle.run('telemetry-commit', (suppressed) => this.log.warn({ code: 'EH_ERR_SCHEDULE_FAILED', job: 'telemetry', err: err.message, suppressed }, 'health record not stored'));
        }
        resolve();
      });
    });
  }

  /** What the gauges read, refreshed from the stages (not kept up to date on the hot path). */
  private refreshGauges(): void {
    this.stats.connected_clients = this.ingest?.connectedClients ?? 0;
    this.stats.blocked_messages = this.writer?.blockedMessages ?? 0;
    this.stats.disk_written_bytes_total = processWriteBytes() ?? 0;
  }

  private async opsSnapshot(): Promise<OpsSnapshot> {
    this.refreshGauges();
    const system = (await this.system?.sample()) ?? null;
    const store = this.store;
    let usage: OpsSnapshot['usage'] = null;
    let fileBytes: number | null = null;
    try {
      usage = store?.usage() ?? null;
      fileBytes = store?.fileBytes() ?? null;
    } catch {
      // closed while shutting down
    }
    return {
      now: Date.now(),
      stats: this.stats,
      routes: effectiveRoutes(this.loaded.config).map((r) => r.name),
      usage,
      fileBytes,
      maxBytes: this.loaded.config.buffer.max_bytes,
      limitBytes: Math.floor(Math.min(this.loaded.config.buffer.max_bytes, this.room?.limitBytes() ?? Number.POSITIVE_INFINITY)),
      health: this.health(),
      uploadWindowOpen: this.windows?.isOpen(new Date()) ?? true,
      disk: system?.disk ?? null,
      cpuTemperature: system?.cpu_temperature_celsius ?? null,
      startedAt: this.startedAt,
    };
  }

  /** GET /status. */
  async status(): Promise<StatusReport> {
    this.refreshGauges();
    const { config, gatewayId } = this.loaded;
    const system = await this.system!.sample();
    const now = Date.now();
    const buffer = this.store !== null ? safeStats(this.store) : null;
    let usage: ReturnType<BufferStore['usage']> = new Map();
    let fileBytes: number | null = null;
    try {
      usage = this.store?.usage() ?? usage;
      fileBytes = this.store?.fileBytes() ?? null;
    } catch {
      // closed while shutting down
    }
    const byReason: Record<string, number> = {};
    for (const reason of LOSS_REASONS) byReason[reason] = Object.values(this.stats.lost_events_total[reason]).reduce((a, b) => a + b, 0);
    const oldest = ageSecs(buffer?.oldestReceivedAt ?? null, now);
    return {
      gateway_id: gatewayId,
      version: VERSION,
      started_at: new Date(this.startedAt).toISOString(),
      uptime_secs: Math.round((now - this.startedAt) / 1000),
      health: this.health(now),
      devices: { connected: this.stats.connected_clients },
      rates: { in_events_per_sec: this.rates.in, out_events_per_sec: this.rates.out, interval_secs: this.rates.intervalSecs },
      buffer: {
        events: buffer?.events ?? 0,
        bytes: buffer?.bytes ?? 0,
        max_bytes: config.buffer.max_bytes,
        oldest_age_secs: oldest,
        file_bytes: fileBytes,
        routes: Object.fromEntries([...usage].map(([route, u]) => [route, { events: u.events, bytes: u.bytes, oldest_age_secs: ageSecs(u.oldestReceivedAt, now) }])),
      },
      upstream: {
        connected: this.stats.upstream_connected,
        brokers: config.kafka.brokers,
        lag_secs: oldest,
        upload_window: { configured: !(this.windows?.always ?? true), open: this.windows?.isOpen(new Date(now)) ?? true, exempt_priority: config.kafka.upload_exempt_priority },
      },
      drops: { by_reason: byReason, unrouted_messages: this.stats.dropped_unrouted_total, oversize_messages: this.stats.dropped_oversize_total },
      dead_letters: { total: byReason.dead_letter ?? 0, stored: this.deadLettersStored() },
      system,
      stats: this.stats.snapshot(),
    };
  }

  /**
   * Closed windows' aggregates go to the buffer; their commit also checkpoints
   * the emptied windows, so a crash either keeps the window open (and closes it
   * again after the restart) or has stored its aggregate, never neither.
   */
  private tick(): void {
    const due = this.pipeline.nextDue();
    if (due === null || due > Date.now() || this.writer === null) return;
    const out = this.pipeline.tick(Date.now());
    this.stats.transform_window_events_total += out.events.filter((e) => e.route !== DEAD_LETTER_ROUTE).length;
    this.submitGenerated(out);
  }

  /** Events no device waits for (window aggregates): a failed commit is retried until it holds. */
  private submitGenerated(out: Outcome): void {
    if (out.events.length === 0 && out.deadLetters.length === 0) return;
    const settle = (err: Error | null): void => {
      if (err === null || this.writer === null) return;
      setTimeout(() => this.writer?.submit(out.events, settle, out.deadLetters), 1000).unref();
    };
    this.writer!.submit(out.events, settle, out.deadLetters);
  }

  private deadLettersStored(): number | null {
    try {
      return this.store?.deadLetterCount() ?? null;
    } catch {
      return null; // closed
    }
  }

  /** Memory rows the uplink has not taken in time go to disk. */
  private spill(options: SpillOptions): void {
    try {
      const events = this.store?.spill(options, this.forwarder?.inFlight) ?? 0;
      this.stats.spilled_events_total += events;
    } catch (err) {
      this.throttle.run('spill', (suppressed) => {
        this.log.error({ code: 'EH_ERR_STORE_WRITE', err: (err as Error).message, suppressed }, 'spilling memory events to disk failed; they stay in memory');
      });
    }
  }

  /** Drops events past their route's TTL, counted as expired. Never rows that are being sent. */
  private expire(ttls: ReadonlyArray<{ route: string; ttlMs: number }>): void {
    const store = this.store;
    if (store === null) return;
    let freed = false;
    for (const { route, ttlMs } of ttls) {
      const rows = store.expiredRows(route, Date.now() - ttlMs, this.forwarder?.inFlight);
      if (rows.length === 0) continue;
      const removed = store.remove(rows.map((r) => r.id));
      const events = removed.reduce((n, r) => n + r.events, 0);
      this.stats.loss('expired', route, events);
      freed = true;
      this.throttle.run(`expired:${route}`, (suppressed) => {
        this.log.warn({ code: 'EH_ERR_BUFFER_EXPIRED', route, events, ttl_secs: ttlMs / 1000, suppressed }, 'events older than the route TTL dropped');
      });
    }
    if (freed) this.writer?.kick();
  }

  /** ok, degraded or failing with the reasons; the rules are in ops/health.ts. */
  health(now = Date.now()): Health {
    const rules = this.loaded.config.health;
    const buffered = this.store !== null ? safeStats(this.store) : null;
    return evaluateHealth({
      now,
      upstreamConnected: this.stats.upstream_connected,
      buffer: buffered,
      maxBytes: this.loaded.config.buffer.max_bytes,
      lastLossAt: this.stats.last_loss_at,
      blockedMessages: this.writer?.blockedMessages ?? this.stats.blocked_messages,
      storeDamagedAt: this.storeDamagedAt,
      lastCommitAt: this.lastCommitAt,
      lastCommitErrorAt: this.lastCommitErrorAt,
      diskFreeBytes: this.system?.lastDisk?.free_bytes ?? null,
      upstreamAuthFailed: this.stats.upstream_auth_failed,
      upstreamUnconfirmedAt: this.stats.upstream_unconfirmed_at,
    }, { bufferRatio: rules.buffer_ratio, diskMinFreeBytes: rules.disk_min_free_bytes, lossWindowMs: rules.loss_window_secs * 1000 });
  }

  /** Stops in order within the deadline (ms since epoch). */
  async stop(deadline: number): Promise<ShutdownReport> {
    this.stopping = true;
    for (const t of this.opsTimers.splice(0)) clearInterval(t);
    if (this.telemetryTimer !== null) clearInterval(this.telemetryTimer);
    this.telemetryTimer = null;
    this.scheduler?.stop();
    this.scheduler = null;
    this.windows?.close();
    if (this.statsTimer !== null) clearInterval(this.statsTimer);
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
    if (this.spillTimer !== null) clearInterval(this.spillTimer);
    if (this.tickTimer !== null) clearInterval(this.tickTimer);
    this.spillTimer = null;
    this.tickTimer = null;
    this.statsTimer = null;
    this.sweepTimer = null;
    const errors: unknown[] = [];
    const step = async (name: string, fn: () => unknown): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        errors.push(err);
        this.log.error({ step: name, err: (err as Error).message }, 'shutdown step failed');
      }
    };
    await step('close http', () => this.ops?.close());
    // no connection is read any more; what was read is handed over
    await step('stop accepting', () => this.ingest?.stopAccepting());
    // a reload handing over to a new Kafka producer finishes first
    await step('finish reload', () => this.applying);
    // everything already read gets committed and acknowledged before connections close
    await step('final commit', () => this.writer?.flush());
    // held by a full buffer: not acknowledged, so the devices send them again after the restart
    await step('release held', () => this.writer?.releaseBlocked(new Error('gateway is shutting down')));
    await step('close ingest', () => this.ingest?.close());
    let buffered = 0;
    await step('flush upstream', async () => {
      buffered = (await this.forwarder?.stop(deadline)) ?? 0;
    });
    // what a memory route still holds goes to disk, so a clean restart loses nothing
    await step('spill memory', () => {
      const spilled = this.store?.spillAll() ?? 0;
      if (spilled > 0) this.log.info({ events: spilled }, 'memory events written to the buffer for the next start');
    });
    // delivered rows are counted until their deletes are written: write them, so the count is what stays
    await step('write deletes', () => {
      if (this.store === null) return;
      this.store.maintain();
      buffered = this.store.stats().events;
    });
    await step('close buffer', () => this.store?.close());
    this.logStats();
    return { buffered, timedOut: Date.now() > deadline };
  }

  /** The entry point ingest calls for every PUBLISH. */
  private readonly sink: MessageSink = (message: InboundMessage, settle: SettleCallback) => {
    this.stats.received_messages_total++;
    const acked: SettleCallback = (err) => {
      if (err === null) this.stats.acked_messages_total++;
      settle(err);
    };
    if (message.payload.length > this.loaded.config.ingest.max_payload_bytes) {
      this.stats.dropped_oversize_total++;
      this.stats.loss('rejected', '-', 1);
      this.throttle.run(`oversize:${message.clientId}`, (suppressed) => {
        this.log.warn({ code: 'EH_ERR_INGEST_OVERSIZE', client_id: message.clientId, topic: message.topic, bytes: message.payload.length, limit: this.loaded.config.ingest.max_payload_bytes, suppressed }, 'payload too large; dropped and counted');
      });
      return acked(null);
    }
    // a QoS 1/2 publish is recognised by client id, packet id, topic and payload; a re-send (DUP) of
    // one already committed (its PUBACK was lost in a crash or a broken connection) makes no second event
    const publish = message.packetId !== undefined && message.qos > 0
      ? { clientId: message.clientId, packetId: message.packetId, digest: publishDigest(message.topic, message.payload) }
      : undefined;
    if (publish !== undefined && message.dup === true && this.store?.isResend(publish) === true) {
      this.stats.resends_acked_total++;
      return acked(null);
    }
    const out = this.pipeline.process(message);
    if (out.matched === 0) {
      this.stats.dropped_unrouted_total++;
      this.throttle.run(`unrouted:${message.topic}`, (suppressed) => {
        this.log.warn({ code: 'EH_ERR_INGEST_UNROUTED', client_id: message.clientId, topic: message.topic, suppressed }, 'no route matches this topic; dropped and counted');
      });
      return acked(null);
    }
    // every route's steps took it out on purpose (filter, deadband, dedupe): nothing to make durable
    if (out.events.length === 0 && out.deadLetters.length === 0 && !out.stateful) return acked(null);
    this.writer!.submit(out.events, acked, out.deadLetters, publish);
  };

  private createIngest(sink: MessageSink): Ingest {
    const { config, gatewayId } = this.loaded;
    const ingestLog = this.log.child({ stage: 'ingest' });
    if (config.ingest.mode === 'embedded') {
      return createBrokerIngest({
        host: config.ingest.embedded.host,
        port: config.ingest.embedded.port,
        embedded: config.ingest.embedded,
        maxPayloadBytes: config.ingest.max_payload_bytes,
        stats: this.stats,
      }, sink, ingestLog);
    }
    const c = config.ingest.client;
    return createClientIngest({
      url: c.url,
      clientId: c.client_id !== '' ? c.client_id : `edgehaul-${gatewayId}`,
      username: c.username,
      password: c.password !== undefined ? readSecret(c.password) : undefined,
      tls: tlsClientOptions(c.tls),
      connections: c.connections.length > 0 ? c.connections : [c.topics.length > 0 ? c.topics : this.pipeline.filters],
      qos: c.qos,
      maxInFlight: c.max_in_flight,
      keepaliveSecs: c.keepalive_secs,
      reconnectMs: c.reconnect_ms,
    }, sink, ingestLog);
  }

  private logStats(): void {
    const buffer = this.store !== null ? safeStats(this.store) : null;
    this.refreshGauges();
    const backlog = buffer === null ? null : this.backlog.sample(Date.now(), {
      sent: this.stats.sent_events_total,
      committed: this.stats.committed_events_total,
      written: processWriteBytes(),
    }, buffer);
    const health = this.health();
    if (health.status !== this.lastHealth) {
      this.log[health.status === 'ok' ? 'info' : health.status === 'degraded' ? 'warn' : 'error']({ health: health.status, reasons: health.reasons }, `health ${health.status}`);
      this.lastHealth = health.status;
    }
    const commit = { max_ms: Math.round(this.commitMaxMs * 100) / 100 };
    this.commitMaxMs = 0;
    this.log.info({ stats: this.stats.snapshot(), buffer, backlog, health, commit }, 'stats');
  }
}

/** The full-buffer policy's view of the config. */
export function bufferLimits(config: Config): BufferLimits {
  const routes = new Map<string, RouteLimits>(effectiveRoutes(config).map((r) => [r.name, { priority: r.priority, whenFull: r.when_full, maxBytes: r.max_bytes ?? null, durability: r.durability }]));
  // dead letters wait below every route and make room first
  routes.set(DEAD_LETTER_ROUTE, { priority: DEAD_LETTER_PRIORITY, whenFull: 'drop_oldest', maxBytes: Math.min(config.dead_letters.max_bytes, config.buffer.max_bytes), durability: 'disk' });
  return { totalBytes: config.buffer.max_bytes, routes };
}

/** Below the lowest priority a route may have (-1000). */
const DEAD_LETTER_PRIORITY = -1001;
/** How often open windows are checked for their end. */
const WINDOW_TICK_MS = 250;

/** How often the in/out rates of `edgehaul status` are sampled. */
const RATE_INTERVAL_MS = 10_000;

function ageSecs(receivedAt: number | null, now: number): number | null {
  return receivedAt === null ? null : Math.max(0, Math.round((now - receivedAt) / 100) / 10);
}

/** TTL per route (the internal health route included), for routes that have one. */
function routeTtls(config: Config): Array<{ route: string; ttlMs: number }> {
  return effectiveRoutes(config).map((r) => ({ route: r.name, ttlMs: (r.ttl_secs ?? config.buffer.ttl_secs) * 1000 })).filter((t) => t.ttlMs > 0);
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

function safeStats(store: BufferStore): ReturnType<BufferStore['stats']> | null {
  try {
    return store.stats();
  } catch {
    return null; // closed
  }
}
