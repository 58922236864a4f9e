/**
 * Per-process figures from Linux /proc: CPU time (utime+stime), resident
 * memory, and bytes the process caused to be written to storage.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let ticks: number | null = null;
function clockTicks(): number {
  if (ticks === null) {
    try {
      ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

export interface ProcSnapshot {
  /** epoch ms */
  readonly at: number;
  /** user + system CPU seconds since the process started */
  readonly cpuSecs: number;
  readonly rssBytes: number;
  /** VmHWM: peak resident set since the process started */
  readonly hwmBytes: number;
  /** /proc/<pid>/io write_bytes: bytes sent (or to be sent) to the storage layer */
  readonly writeBytes: number;
  readonly cancelledWriteBytes: number;
  /** /proc/<pid>/io wchar: bytes passed to write-like syscalls (files and sockets) */
  readonly wchar: number;
  readonly syscw: number;
}

function statusKb(status: string, key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
  return m === null ? 0 : Number(m[1]) * 1024;
}

function ioField(io: string, key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(io);
  return m === null ? 0 : Number(m[1]);
}

/** CPU seconds of a process (utime + stime), or null when it is gone. */
export function cpuSecs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // fields after the command name, which is in parentheses and may hold spaces
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / clockTicks();
  } catch {
    return null;
  }
}

export function rssBytes(pid: number): number | null {
  try {
    return statusKb(readFileSync(`/proc/${pid}/status`, 'utf8'), 'VmRSS');
  } catch {
    return null;
  }
}

export function snapshot(pid: number): ProcSnapshot | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    let io = '';
    try {
      io = readFileSync(`/proc/${pid}/io`, 'utf8');
    } catch {
      // not readable (another user): disk figures stay 0
    }
    return {
      at: Date.now(),
      cpuSecs: cpuSecs(pid) ?? 0,
      rssBytes: statusKb(status, 'VmRSS'),
      hwmBytes: statusKb(status, 'VmHWM'),
      writeBytes: ioField(io, 'write_bytes'),
      cancelledWriteBytes: ioField(io, 'cancelled_write_bytes'),
      wchar: ioField(io, 'wchar'),
      syscw: ioField(io, 'syscw'),
    };
  } catch {
    return null;
  }
}

/** Whole-machine CPU counters from /proc/stat (clock ticks), to tell how busy all cores were. */
export interface HostCpu {
  readonly busy: number;
  readonly total: number;
}

export function hostCpu(): HostCpu {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0); // idle + iowait
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/** Share of all cores that was busy between two readings, 0..1. */
export function hostBusy(a: HostCpu, b: HostCpu): number {
  const total = b.total - a.total;
  return total > 0 ? (b.busy - a.busy) / total : 0;
}

/** CPU seconds all processes on the machine used between two readings. */
export function hostBusySecs(a: HostCpu, b: HostCpu): number {
  return (b.busy - a.busy) / clockTicks();
}

/**
 * CPU seconds per role (several pids each) between two points in time, and
 * what the rest of the machine used meanwhile ("other": anything we did not
 * start, e.g. a test run next to the benchmark, which skews the figures).
 */
export class CpuProbe {
  private readonly start: { host: HostCpu; self: NodeJS.CpuUsage; roles: Map<string, number> };

  constructor(private readonly roles: Record<string, readonly number[]>) {
    this.start = { host: hostCpu(), self: process.cpuUsage(), roles: this.read() };
  }

  private read(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [role, pids] of Object.entries(this.roles)) {
      out.set(
        role,
        pids.reduce((n, pid) => n + (cpuSecs(pid) ?? 0), 0),
      );
    }
    return out;
  }

  /** CPU seconds since construction per role, plus `bench` (this process), `host` (all) and `other`. */
  end(): Record<string, number> & { host: number; other: number; bench: number; hostBusy: number } {
    const host = hostCpu();
    const self = process.cpuUsage(this.start.self);
    const now = this.read();
    const out: Record<string, number> = {};
    let ours = (self.user + self.system) / 1e6;
    for (const [role, v] of now) {
      const d = Math.max(0, v - (this.start.roles.get(role) ?? 0));
      out[role] = d;
      ours += d;
    }
    const busy = hostBusySecs(this.start.host, host);
    return {
      ...out,
      bench: (self.user + self.system) / 1e6,
      host: busy,
      other: Math.max(0, busy - ours),
      hostBusy: hostBusy(this.start.host, host),
    };
  }
}

/** Samples VmRSS of some processes every `everyMs`; keeps the peak per pid. */
export class RssSampler {
  private readonly peaks = new Map<number, number>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly pids: readonly number[],
    private readonly everyMs = 200,
  ) {}

  start(): this {
    const tick = (): void => {
      for (const pid of this.pids) {
        const rss = rssBytes(pid);
        if (rss !== null && rss > (this.peaks.get(pid) ?? 0)) this.peaks.set(pid, rss);
      }
    };
    tick();
    this.timer = setInterval(tick, this.everyMs);
    return this;
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  peak(pid: number): number {
    return this.peaks.get(pid) ?? 0;
  }
}

/**
 * CPU seconds so far of every process on the machine that is not one of
 * `roots` or their descendants (e.g. a test run next to the benchmark); take
 * two readings and `foreignCpuSecs` gives what they used in between.
 */
export function foreignCpu(roots: readonly number[]): Map<number, number> {
  const procs: Array<{ pid: number; ppid: number; cpu: number }> = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return new Map();
  }
  for (const e of entries) {
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      procs.push({ pid: Number(e), ppid: Number(rest[1]), cpu: (Number(rest[11]) + Number(rest[12])) / clockTicks() });
    } catch {
      // gone meanwhile
    }
  }
  const ours = new Set(roots);
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of procs) {
      if (!ours.has(p.pid) && ours.has(p.ppid)) {
        ours.add(p.pid);
        grew = true;
      }
    }
  }
  return new Map(procs.filter((p) => !ours.has(p.pid)).map((p) => [p.pid, p.cpu]));
}

/** CPU seconds foreign processes used between two foreignCpu() readings (processes that exited meanwhile are missed). */
export function foreignCpuSecs(before: ReadonlyMap<number, number>, after: ReadonlyMap<number, number>): number {
  let n = 0;
  for (const [pid, cpu] of after) n += Math.max(0, cpu - (before.get(pid) ?? 0));
  return n;
}
