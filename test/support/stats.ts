import { readFileSync } from 'node:fs';
import type { Daemon, LogLine } from './daemon.js';

/** The counters of a daemon's `stats` log line (see README "Operations"). */
export interface DaemonStats {
  received_messages_total: number;
  acked_messages_total: number;
  committed_events_total: number;
  commits_total: number;
  commit_errors_total: number;
  sent_events_total: number;
  sent_records_total: number;
  send_errors_total: number;
  upstream_connected: boolean;
  blocked_messages: number;
  store_damaged_total: number;
  lost_events_total: Record<string, Record<string, number>>;
  [k: string]: unknown;
}

/** One `stats` log line: counters, buffer depth and health. */
export interface StatsLine {
  /** index of the line in Daemon.lines */
  readonly index: number;
  readonly stats: DaemonStats;
  readonly buffer: { events: number; bytes: number; commits: number; oldestReceivedAt: number | null } | null;
  readonly health: { status: 'ok' | 'degraded' | 'failing'; reasons: string[] };
  /** the longest commit since the line before */
  readonly commit?: { max_ms: number };
}

function toStats(line: LogLine, index: number): StatsLine {
  return {
    index,
    stats: line.stats as DaemonStats,
    buffer: (line.buffer ?? null) as StatsLine['buffer'],
    health: line.health as StatsLine['health'],
    ...(line.commit !== undefined ? { commit: line.commit as { max_ms: number } } : {}),
  };
}

/** The daemon's stats lines logged at or after line index `from`. */
export function statsLines(daemon: Daemon, from = 0): StatsLine[] {
  const out: StatsLine[] = [];
  for (let i = from; i < daemon.lines.length; i++) {
    const l = daemon.lines[i]!;
    if (l.msg === 'stats') out.push(toStats(l, i));
  }
  return out;
}

/** The newest stats line, or undefined before the first one. */
export function latestStats(daemon: Daemon, from = 0): StatsLine | undefined {
  for (let i = daemon.lines.length - 1; i >= from; i--) {
    const l = daemon.lines[i]!;
    if (l.msg === 'stats') return toStats(l, i);
  }
  return undefined;
}

/** Events counted as lost for `reason` on `route` (0 when the counter is absent). */
export function lost(stats: DaemonStats, reason: string, route: string): number {
  return stats.lost_events_total[reason]?.[route] ?? 0;
}

/** Every loss counter of `route`, reason by reason; {} when it lost nothing. */
export function lossesOf(stats: DaemonStats, route: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [reason, byRoute] of Object.entries(stats.lost_events_total)) {
    const n = byRoute[route];
    if (n !== undefined && n !== 0) out[reason] = n;
  }
  return out;
}

/** Fields of /proc/<pid>/status in KiB (VmRSS, RssAnon, RssFile, RssShmem, VmHWM, ...), or null once the process is gone. */
export function procStatusKiB(pid: number): Record<string, number> | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^(\w+):\s+(\d+) kB$/.exec(line);
    if (m !== null) out[m[1]!] = Number(m[2]);
  }
  return out;
}

/** Resident set size of a process in KiB from /proc/<pid>/status (VmRSS), or null once it is gone. */
export function rssKiB(pid: number): number | null {
  return procStatusKiB(pid)?.VmRSS ?? null;
}

/** Samples a process' VmRSS every `everyMs` until stop(); keeps the peak, overall and per phase. */
export class RssSampler {
  peakKiB = 0;
  /** anonymous memory (heap, buffers) at the sample with the peak VmRSS */
  anonAtPeakKiB = 0;
  /** VmHWM (the kernel's own peak RSS) at the last sample */
  hwmKiB = 0;
  samples = 0;
  /** peak KiB per phase name, in the order the phases began */
  readonly phases = new Map<string, number>();
  private current = 'start';
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly pid: number,
    everyMs = 100,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  get peakMiB(): number {
    return this.peakKiB / 1024;
  }

  /** Samples from now on count towards `name` (and the overall peak). */
  phase(name: string): void {
    this.sample();
    this.current = name;
    this.sample();
  }

  /** e.g. "start 95, outage 160, drain 230" (MiB) */
  describePhases(): string {
    return [...this.phases].map(([name, kib]) => `${name} ${(kib / 1024).toFixed(0)}`).join(', ');
  }

  sample(): void {
    const status = procStatusKiB(this.pid);
    const kib = status?.VmRSS;
    if (status === null || kib === undefined) return;
    this.samples++;
    this.hwmKiB = status.VmHWM ?? this.hwmKiB;
    if (kib > this.peakKiB) {
      this.peakKiB = kib;
      this.anonAtPeakKiB = status.RssAnon ?? 0;
    }
    if (kib > (this.phases.get(this.current) ?? 0)) this.phases.set(this.current, kib);
  }

  stop(): void {
    this.sample();
    clearInterval(this.timer);
  }
}
