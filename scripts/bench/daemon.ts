/**
 * The real daemon as a child process for the benchmark: test/support's
 * Daemon, with extra node flags (--cpu-prof) and an optional wrapper command
 * that execs node (`taskset -c 0`: the pid stays the daemon's). Its state dir
 * is on its command line, so `pgrep -f <tmp dir>` finds it. It runs with the
 * node flags and allocator settings of the systemd unit (test/support's unitRuntime), so the
 * benchmark measures what a gateway runs.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Daemon, type LogLine } from '../../test/support/daemon.js';
import { unitRuntime } from '../../test/support/unit-runtime.js';
import { track } from './harness.js';

export type { LogLine };

export interface StatsLine {
  readonly at: number;
  readonly stats: Record<string, unknown>;
  /** the buffer totals of the stats line (`events` is what the benchmark reads) */
  readonly buffer: { events?: unknown; [k: string]: unknown } | null;
  /** the backlog figures of the stats line (send_rate, receive_rate, drain_eta_secs, disk_bytes_per_event, ...) */
  readonly backlog?: { [k: string]: unknown } | null;
  /** the longest group commit (SQLite write and its fsync) since the previous stats line, ms */
  readonly commitMaxMs?: number | null;
}

/** The support library's Daemon with the unit's runtime, stats lines kept apart, and a stop that SIGKILLs after its timeout. */
export class BenchDaemon {
  readonly stats: StatsLine[] = [];
  private readonly d: Daemon;

  constructor(
    root: string,
    dir: string,
    config: Record<string, unknown>,
    nodeArgs: readonly string[] = [],
    wrap: readonly string[] = [],
  ) {
    const unit = unitRuntime(readFileSync(join(root, 'systemd/edgehaul.service'), 'utf8'));
    this.d = new Daemon(dir, config, {
      root,
      nodeArgs: [...unit.nodeArgs, ...nodeArgs],
      wrap,
      env: unit.env,
      onSpawn: track,
      onLine: (line) => {
        if (line.msg !== 'stats') return true;
        this.stats.push({
          at: Date.now(),
          stats: line.stats as StatsLine['stats'],
          buffer: (line.buffer ?? null) as StatsLine['buffer'],
          backlog: (line.backlog ?? null) as StatsLine['backlog'],
          commitMaxMs:
            typeof (line.commit as { max_ms?: unknown } | undefined)?.max_ms === 'number'
              ? (line.commit as { max_ms: number }).max_ms
              : null,
        });
        return false;
      },
    });
  }

  /** log lines other than "stats" */
  get lines(): LogLine[] {
    return this.d.lines;
  }

  get stderr(): string[] {
    return this.d.stderr;
  }

  get pid(): number {
    const pid = this.d.pid;
    if (pid === undefined) throw new Error('daemon not started');
    return pid;
  }

  get running(): boolean {
    return this.d.running;
  }

  /** Starts and waits for "edgehaul running"; returns the ingest address it reports. */
  start(timeoutMs = 30_000): Promise<string> {
    return this.d.start(timeoutMs);
  }

  /** The newest stats line, or null. */
  lastStats(): StatsLine | null {
    return this.stats.at(-1) ?? null;
  }

  /** Waits until `check(stats)` holds for a stats line newer than `since` (epoch ms); null after the deadline. */
  async waitStats(check: (s: StatsLine) => boolean, timeoutMs: number, since = 0): Promise<StatsLine | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = this.lastStats();
      if (s !== null && s.at >= since && check(s)) return s;
      if (!this.running || Date.now() > deadline) return null;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** `signal`, then SIGKILL if it has not exited within `timeoutMs` (`killed`). */
  async stop(
    signal: NodeJS.Signals = 'SIGTERM',
    timeoutMs = 30_000,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null; killed: boolean }> {
    if (this.d.pid === undefined) return { code: null, signal: null, killed: false };
    try {
      return { ...(await this.d.stop(signal, timeoutMs)), killed: false };
    } catch {
      return { ...(await this.d.stop('SIGKILL', 60_000)), killed: true };
    }
  }

  /** warn/error/fatal lines, for the report */
  problems(): LogLine[] {
    return this.lines.filter(
      (l) => l.level === 'warn' || l.level === 'error' || l.level === 'fatal' || l.level === 'raw',
    );
  }

  describe(): string {
    return this.d.describe();
  }
}
