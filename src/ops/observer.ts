import type { BufferStore } from '../buffer/store.js';
import type { Config } from '../config/schema.js';
import type { MessageSink } from '../core/event.js';
import { Interval } from '../core/interval.js';
import { LogThrottle, type Logger } from '../core/log.js';
import { BacklogMeter, processWriteBytes } from './backlog.js';
import { FlashMeter } from './flash.js';
import { evaluateHealth, type Health } from './health.js';
import type { DeadLetterRecord } from '../core/event.js';
import { BasicAuth, isLoopbackHost } from '../security/basic-auth.js';
import { RateHistory } from './history.js';
import { OpsServer } from './http.js';
import { RecentDeadLetters } from './recent-dead-letters.js';
import { commitDurationHistogram, createMetricsRegistry, type OpsSnapshot } from './metrics.js';
import { LOSS_REASONS, type Stats } from './stats.js';
import { VERSION, type StatusReport } from './status.js';
import { SystemProbe } from './system.js';
import { effectiveRoutes, healthMessage, type HealthRecord } from './telemetry.js';
import type { UploadGate } from './upload-gate.js';

/** The buffer as observation reads it: no writes. */
export type ObservedBuffer = Pick<BufferStore, 'stats' | 'usage' | 'fileBytes' | 'deadLetterCount'>;

/** The narrow, read-only view of the gateway that observation works from. */
export interface GatewayView {
  /** the config running now */
  readonly config: Readonly<Config>;
  readonly gatewayId: string;
  /** null before start; throws once closed (read through the safe helpers here) */
  readonly buffer: ObservedBuffer | null;
  /** what the buffer's filesystem can still take, bytes; Infinity when unknown */
  diskLimitBytes(): number;
  /** messages a full buffer holds unacknowledged; null before the writer exists */
  readonly blockedMessages: number | null;
  readonly connectedClients: number;
  /** false before the writer exists and once shutdown began: telemetry stores nothing then */
  readonly accepting: boolean;
  /** the input handler, as a device's PUBLISH goes through it */
  readonly handleMessage: MessageSink;
  /** the HTTP endpoint's certificate chain and key (PEM, read at config load); null without http.tls */
  httpTls(): { cert: string; key: string } | null;
}

/** What one group commit reported. */
export interface CommitObservation {
  readonly events: number;
  readonly durationMs: number;
  /** how long the flash budget held the commit back, ms */
  readonly pacedMs?: number;
}

/** How often the in/out rates of `edgehaul status` are sampled. */
const RATE_INTERVAL_MS = 10_000;
/** Dead letters /status lists (newest first). */
const DEAD_LETTERS_SHOWN = 20;
/** How often free disk space is sampled for the (synchronous) health rules. */
const DISK_INTERVAL_MS = 10_000;

/**
 * Everything that watches the gateway without steering it: health, GET
 * /status, /metrics, the periodic stats line, in/out rates, and the health
 * telemetry record. Reads the gateway through a GatewayView; owns its timers
 * (stats line, telemetry, disk and rate sampling) and the HTTP endpoint.
 */
export class Observer {
  private readonly startedAt = Date.now();
  private readonly system: SystemProbe;
  private lastCommitAt = 0;
  private lastCommitErrorAt = 0;
  private storeDamagedAt = 0;
  private readonly commitSeconds = commitDurationHistogram();
  /** the longest commit (write + sync) since the last stats line, ms */
  private commitMaxMs = 0;
  private lastHealth: Health['status'] = 'ok';
  private readonly rateMeter = new BacklogMeter();
  private rates: { in: number; out: number; intervalSecs: number; at: number } = {
    in: 0,
    out: 0,
    intervalSecs: 0,
    at: 0,
  };
  private readonly backlog = new BacklogMeter();
  /** the last hour of rates, for the status page's chart */
  private readonly history = new RateHistory(RATE_INTERVAL_MS / 1000);
  /** the last dead letters, with payload previews, for the status page */
  private readonly recentDeadLetters = new RecentDeadLetters(DEAD_LETTERS_SHOWN);
  private readonly statsTimer = new Interval(() => this.logStats());
  private readonly telemetryTimer = new Interval(
    () =>
      void this.reportHealth().catch((err: unknown) => {
        this.throttle.run('telemetry', (suppressed) =>
          this.log.error(
            { code: 'EH_ERR_SCHEDULE_FAILED', job: 'telemetry', err: (err as Error).message, suppressed },
            'scheduled job failed; it runs again at its next time',
          ),
        );
      }),
  );
  private readonly flash: FlashMeter;
  private readonly diskTimer = new Interval(() => void this.sampleDisk());
  private readonly rateTimer = new Interval(() => this.sampleRates());
  private readonly throttle = new LogThrottle(10_000);
  private http: OpsServer | null = null;
  private httpBound = '';

  constructor(
    private readonly view: GatewayView,
    private readonly stats: Stats,
    private readonly uploads: UploadGate,
    /** the buffer's directory: its filesystem's free space is watched */
    bufferDir: string,
    private readonly log: Logger,
  ) {
    this.system = new SystemProbe(bufferDir);
    this.flash = new FlashMeter(bufferDir, () => ({
      enduranceBytes: this.view.config.health.flash_endurance_bytes,
      budgetBytesPerDay: this.view.config.buffer.flash_budget_bytes_per_day,
    }));
  }

  /** host:port of the HTTP endpoint; empty when it is off or not started. */
  get httpAddress(): string {
    return this.httpBound;
  }

  /** First disk sample, before the health rules are first read. */
  async sampleDisk(): Promise<void> {
    await Promise.all([this.system.sampleDisk(), this.flash.sample()]);
  }

  /** The samplers behind health, status and metrics, and the HTTP endpoint: once, when ingest runs. */
  async start(): Promise<void> {
    const { config, gatewayId } = this.view;
    // the health rules are synchronous: free disk space is sampled in the background
    this.diskTimer.every(DISK_INTERVAL_MS);
    this.sampleRates();
    this.rateTimer.every(RATE_INTERVAL_MS);
    if (config.http.enabled) {
      const registry = createMetricsRegistry(this.stats, () => this.snapshot(), { gatewayId, version: VERSION }, [
        this.commitSeconds,
      ]);
      const httpLog = this.log.child({ stage: 'http' });
      const login = !isLoopbackHost(config.http.host);
      const tls = config.http.tls;
      this.http = new OpsServer(
        {
          registry,
          health: () => this.health(),
          status: () => this.status(),
          history: () => this.history.report(),
        },
        httpLog,
        {
          // config validation refuses a host beyond loopback without users
          auth: login ? new BasicAuth(config.http.auth.users) : null,
          tls: this.view.httpTls(),
          refused: (result, remote) => {
            this.stats.http_auth_failures_total++;
            if (result.why === 'missing') return; // a browser's first request before it asks the person: counted, not logged
            this.throttle.run(`http-auth:${result.why}`, (suppressed) =>
              httpLog.warn(
                { code: 'EH_ERR_HTTP_AUTH', why: result.why, username: result.username, remote, suppressed },
                'http login refused',
              ),
            );
          },
        },
      );
      this.httpBound = await this.http.listen(config.http.host, config.http.port);
      this.log.info(
        {
          http: this.httpBound,
          tls: tls.enabled,
          login,
          paths: ['/', '/status', '/status/history', '/metrics', '/healthz'],
        },
        'http listening',
      );
    }
  }

  /** The stats line every `secs` seconds; 0 or less: none. */
  setStatsInterval(secs: number): void {
    this.statsTimer.every(secs > 0 ? secs * 1000 : null);
  }

  /** The health record on an interval; null: none (off, or a cron job sends it). */
  setTelemetryInterval(ms: number | null): void {
    this.telemetryTimer.every(ms);
  }

  /** Dead letters the pipeline made (kept in memory for the status page). */
  deadLetters(records: readonly DeadLetterRecord[]): void {
    if (records.length > 0) this.recentDeadLetters.add(records);
  }

  /** A group commit held. */
  committed(report: CommitObservation): void {
    this.stats.commits_total++;
    this.lastCommitAt = Date.now();
    this.commitSeconds.observe(report.durationMs / 1000);
    if (report.durationMs > this.commitMaxMs) this.commitMaxMs = report.durationMs;
    this.stats.committed_events_total += report.events;
    if (report.pacedMs !== undefined && report.pacedMs > 0) {
      this.stats.flash_paced_commits_total++;
      this.stats.flash_paced_seconds_total += report.pacedMs / 1000;
    }
  }

  /** A group commit failed. */
  commitFailed(): void {
    this.stats.commit_errors_total++;
    this.lastCommitErrorAt = Date.now();
  }

  /** The buffer file was damaged at open and set aside with this many events. */
  storeDamaged(events: number): void {
    this.storeDamagedAt = Date.now();
    this.stats.store_damaged_total++;
    this.stats.loss('corrupt', '*', events);
  }

  /** ok, degraded or failing with the reasons; the rules are in ops/health.ts. */
  health(now = Date.now()): Health {
    const { config } = this.view;
    const rules = config.health;
    return evaluateHealth(
      {
        now,
        upstreamConnected: this.stats.upstream_connected,
        buffer: this.bufferStats(),
        maxBytes: config.buffer.max_bytes,
        lastLossAt: this.stats.last_loss_at,
        blockedMessages: this.view.blockedMessages ?? this.stats.blocked_messages,
        storeDamagedAt: this.storeDamagedAt,
        lastCommitAt: this.lastCommitAt,
        lastCommitErrorAt: this.lastCommitErrorAt,
        diskFreeBytes: this.system.lastDisk?.free_bytes ?? null,
        upstreamAuthFailed: this.stats.upstream_auth_failed,
        upstreamUnconfirmedAt: this.stats.upstream_unconfirmed_at,
        flashDaysLeft: this.flash.report().days_left,
      },
      {
        bufferRatio: rules.buffer_ratio,
        diskMinFreeBytes: rules.disk_min_free_bytes,
        lossWindowMs: rules.loss_window_secs * 1000,
        flashMinDays: rules.flash_min_days,
      },
    );
  }

  /** GET /status. */
  async status(): Promise<StatusReport> {
    this.refreshGauges();
    const { config, gatewayId } = this.view;
    const system = await this.system.sample();
    const now = Date.now();
    const buffer = this.bufferStats();
    let usage: ReturnType<BufferStore['usage']> = new Map();
    let fileBytes: number | null = null;
    try {
      usage = this.view.buffer?.usage() ?? usage;
      fileBytes = this.view.buffer?.fileBytes() ?? null;
    } catch {
      // closed while shutting down
    }
    const byReason: Record<string, number> = {};
    for (const reason of LOSS_REASONS)
      byReason[reason] = Object.values(this.stats.lost_events_total[reason]).reduce((a, b) => a + b, 0);
    const oldest = ageSecs(buffer?.oldestReceivedAt ?? null, now);
    return {
      gateway_id: gatewayId,
      version: VERSION,
      started_at: new Date(this.startedAt).toISOString(),
      uptime_secs: Math.round((now - this.startedAt) / 1000),
      health: this.health(now),
      devices: { connected: this.stats.connected_clients },
      rates: {
        in_events_per_sec: this.rates.in,
        out_events_per_sec: this.rates.out,
        interval_secs: this.rates.intervalSecs,
      },
      buffer: {
        events: buffer?.events ?? 0,
        bytes: buffer?.bytes ?? 0,
        max_bytes: config.buffer.max_bytes,
        oldest_age_secs: oldest,
        file_bytes: fileBytes,
        drain_eta_secs: drainEtaSecs(buffer?.events ?? 0, this.rates),
        routes: Object.fromEntries(
          [...usage].map(([route, u]) => [
            route,
            { events: u.events, bytes: u.bytes, oldest_age_secs: ageSecs(u.oldestReceivedAt, now) },
          ]),
        ),
      },
      upstream: {
        connected: this.stats.upstream_connected,
        brokers: config.kafka.brokers,
        lag_secs: oldest,
        upload_window: {
          configured: this.uploads.configured,
          open: this.uploads.isOpen(new Date(now)),
          exempt_priority: config.kafka.upload_exempt_priority,
        },
      },
      drops: {
        by_reason: byReason,
        unrouted_messages: this.stats.dropped_unrouted_total,
        oversize_messages: this.stats.dropped_oversize_total,
      },
      dead_letters: {
        total: byReason.dead_letter ?? 0,
        stored: this.deadLettersStored(),
        recent: this.recentDeadLetters.list(),
      },
      flash: this.flash.report(),
      system,
      stats: this.stats.snapshot(),
    };
  }

  /** One health record into the pipeline, like a device message (buffered, batched, counted). */
  async reportHealth(): Promise<void> {
    if (!this.view.accepting) return;
    const { gatewayId } = this.view;
    const system = await this.system.sample();
    const buffer = this.bufferStats();
    if (!this.view.accepting || buffer === null) return; // stopping meanwhile: the writer takes no more
    const now = Date.now();
    const health = this.health(now);
    const record: HealthRecord = {
      type: 'edgehaul.health',
      version: 1,
      gateway_id: gatewayId,
      at: new Date(now).toISOString(),
      health: { status: health.status, reasons: health.reasons },
      system,
      buffer: {
        events: buffer.events,
        bytes: buffer.bytes,
        max_bytes: this.view.config.buffer.max_bytes,
        oldest_age_secs: ageSecs(buffer.oldestReceivedAt, now),
      },
      upstream: { connected: this.stats.upstream_connected },
      counters: {
        received_messages_total: this.stats.received_messages_total,
        committed_events_total: this.stats.committed_events_total,
        sent_events_total: this.stats.sent_events_total,
        lost_events_total: this.stats.lostTotal(),
        connected_clients: this.view.connectedClients,
      },
    };
    await new Promise<void>((resolve) => {
      this.view.handleMessage(healthMessage(gatewayId, record, now), (err) => {
        if (err !== null) {
          this.throttle.run('telemetry-commit', (suppressed) =>
            this.log.warn(
              { code: 'EH_ERR_SCHEDULE_FAILED', job: 'telemetry', err: err.message, suppressed },
              'health record not stored',
            ),
          );
        }
        resolve();
      });
    });
  }

  /** The stats line: counters, buffer, backlog, health (and a line of its own when health changed). */
  logStats(): void {
    const buffer = this.bufferStats();
    this.refreshGauges();
    const backlog =
      buffer === null
        ? null
        : this.backlog.sample(
            Date.now(),
            {
              sent: this.stats.sent_events_total,
              committed: this.stats.committed_events_total,
              written: processWriteBytes(),
            },
            buffer,
          );
    const health = this.health();
    if (health.status !== this.lastHealth) {
      this.log[health.status === 'ok' ? 'info' : health.status === 'degraded' ? 'warn' : 'error'](
        { health: health.status, reasons: health.reasons },
        `health ${health.status}`,
      );
      this.lastHealth = health.status;
    }
    const commit = { max_ms: Math.round(this.commitMaxMs * 100) / 100 };
    this.commitMaxMs = 0;
    this.log.info({ stats: this.stats.snapshot(), buffer, backlog, health, commit }, 'stats');
  }

  /** Stops every timer; telemetry stores nothing more. */
  stop(): void {
    this.statsTimer.stop();
    this.telemetryTimer.stop();
    this.diskTimer.stop();
    this.rateTimer.stop();
  }

  /** Closes the HTTP endpoint. */
  async closeHttp(): Promise<void> {
    await this.http?.close();
  }

  /** Buffer counts, or null before start and once closed. */
  bufferStats(): ReturnType<BufferStore['stats']> | null {
    const buffer = this.view.buffer;
    if (buffer === null) return null;
    try {
      return buffer.stats();
    } catch {
      return null; // closed
    }
  }

  /** What the gauges read, refreshed from the stages (not kept up to date on the hot path). */
  private refreshGauges(): void {
    this.stats.connected_clients = this.view.connectedClients;
    this.stats.blocked_messages = this.view.blockedMessages ?? 0;
    this.stats.disk_written_bytes_total = processWriteBytes() ?? 0;
  }

  private async snapshot(): Promise<OpsSnapshot> {
    this.refreshGauges();
    const system = await this.system.sample();
    const { config } = this.view;
    let usage: OpsSnapshot['usage'] = null;
    let fileBytes: number | null = null;
    try {
      usage = this.view.buffer?.usage() ?? null;
      fileBytes = this.view.buffer?.fileBytes() ?? null;
    } catch {
      // closed while shutting down
    }
    return {
      now: Date.now(),
      stats: this.stats,
      routes: effectiveRoutes(config).map((r) => r.name),
      usage,
      fileBytes,
      maxBytes: config.buffer.max_bytes,
      limitBytes: Math.floor(Math.min(config.buffer.max_bytes, this.view.diskLimitBytes())),
      health: this.health(),
      uploadWindowOpen: this.uploads.isOpen(new Date()),
      disk: system?.disk ?? null,
      cpuTemperature: system?.cpu_temperature_celsius ?? null,
      startedAt: this.startedAt,
      flash: this.flash.report(),
    };
  }

  private sampleRates(): void {
    const buffer = this.bufferStats();
    if (buffer === null) return;
    const now = Date.now();
    const prev = this.rates.at;
    const r = this.rateMeter.sample(
      now,
      { sent: this.stats.sent_events_total, committed: this.stats.committed_events_total, written: null },
      buffer,
    );
    this.rates = {
      in: r.receive_rate,
      out: r.send_rate,
      intervalSecs: prev === 0 ? 0 : Math.round((now - prev) / 1000),
      at: now,
    };
    if (prev !== 0)
      this.history.add({
        at: now,
        interval_secs: this.rates.intervalSecs,
        in_events_per_sec: r.receive_rate,
        out_events_per_sec: r.send_rate,
        buffer_bytes: buffer.bytes,
      });
  }

  private deadLettersStored(): number | null {
    try {
      return this.view.buffer?.deadLetterCount() ?? null;
    } catch {
      return null; // closed
    }
  }
}

function ageSecs(receivedAt: number | null, now: number): number | null {
  return receivedAt === null ? null : Math.max(0, Math.round((now - receivedAt) / 100) / 10);
}

/** Seconds until the buffer is empty at the last interval's rates; 0 when empty; null when it is not shrinking. */
export function drainEtaSecs(events: number, rates: { in: number; out: number; intervalSecs: number }): number | null {
  if (events === 0) return 0;
  if (rates.intervalSecs === 0 || rates.out <= rates.in) return null;
  return Math.round(events / (rates.out - rates.in));
}
