import { Interval } from '../core/interval.js';
import { LogThrottle, type Logger } from '../core/log.js';
import type { SpillOptions, TieredStore } from './tiered.js';

/** TTL of one route (the internal health route included), for routes that have one. */
export interface RouteTtl {
  readonly route: string;
  readonly ttlMs: number;
}

/** What housekeeping counts: events spilled to disk, events dropped past their TTL. */
export interface HousekeepingCounters {
  spilled(events: number): void;
  expired(route: string, events: number): void;
}

export interface HousekeepingLinks {
  /** Rows the forwarder is sending now: never spilled or expired under it. */
  inFlight(): ReadonlySet<number> | undefined;
  /** Room was freed: the writer may retry what a full buffer held. */
  freed(): void;
}

/**
 * The buffer's background work: memory rows the uplink has not taken in time
 * go to disk (spill), events past their route's TTL are dropped and counted
 * (sweep), and WAL checkpoint + PRAGMA optimize when scheduled (maintain).
 * Owns its two timers; `stop()` clears them.
 */
export class BufferHousekeeping {
  private spillOptions: SpillOptions | null = null;
  private ttls: readonly RouteTtl[] = [];
  private readonly spillTimer = new Interval(() => this.spill());
  private readonly sweepTimer = new Interval(() => this.expire(this.ttls));
  private readonly throttle = new LogThrottle(10_000);

  constructor(
    private readonly store: TieredStore,
    private readonly links: HousekeepingLinks,
    private readonly counters: HousekeepingCounters,
    private readonly log: Logger,
  ) {}

  /** Spills memory rows older than `afterMs`; null: no memory route, no spill timer. */
  configureSpill(options: SpillOptions | null): void {
    this.spillOptions = options;
    this.spillTimer.every(options === null ? null : Math.max(100, Math.min(1000, options.afterMs / 4)));
  }

  /**
   * Sweeps on an interval derived from the shortest TTL; `byInterval` false
   * when a cron schedule runs `expire` instead.
   */
  configureSweep(ttls: readonly RouteTtl[], byInterval: boolean): void {
    this.ttls = ttls;
    this.sweepTimer.every(
      ttls.length === 0 || !byInterval
        ? null
        : Math.min(10_000, Math.max(1000, Math.min(...ttls.map((t) => t.ttlMs)) / 4)),
    );
  }

  /** Memory rows the uplink has not taken in time go to disk. */
  spill(): void {
    const options = this.spillOptions;
    if (options === null) return;
    try {
      this.counters.spilled(this.store.spill(options, this.links.inFlight()));
    } catch (err) {
      this.throttle.run('spill', (suppressed) => {
        this.log.error(
          { code: 'EH_ERR_STORE_WRITE', err: (err as Error).message, suppressed },
          'spilling memory events to disk failed; they stay in memory',
        );
      });
    }
  }

  /** Drops events past their route's TTL, counted as expired. Never rows that are being sent. */
  expire(ttls: readonly RouteTtl[]): void {
    let freed = false;
    for (const { route, ttlMs } of ttls) {
      const rows = this.store.expiredRows(route, Date.now() - ttlMs, this.links.inFlight());
      if (rows.length === 0) continue;
      const removed = this.store.remove(rows.map((r) => r.id));
      const events = removed.reduce((n, r) => n + r.events, 0);
      this.counters.expired(route, events);
      freed = true;
      this.throttle.run(`expired:${route}`, (suppressed) => {
        this.log.warn(
          { code: 'EH_ERR_BUFFER_EXPIRED', route, events, ttl_secs: ttlMs / 1000, suppressed },
          'events older than the route TTL dropped',
        );
      });
    }
    if (freed) this.links.freed();
  }

  /** Scheduled: WAL checkpoint and PRAGMA optimize. */
  maintain(): void {
    const report = this.store.maintain();
    this.log.info(
      { ...report },
      report.busy ? 'store maintenance: checkpoint busy, tried again next time' : 'store maintenance done',
    );
  }

  stop(): void {
    this.spillTimer.stop();
    this.sweepTimer.stop();
  }
}
