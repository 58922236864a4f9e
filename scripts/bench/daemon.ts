/**
 * The real daemon as a child process for the benchmark: like
 * test/support/daemon.ts, plus extra node flags (--cpu-prof) and an optional
 * wrapper command that execs node (`taskset -c 0`: the pid stays the
 * daemon's). Its state dir is on its command line, so `pgrep -f <tmp dir>`
 * finds it. It runs with the node flags and allocator settings of the
 * systemd unit (unitRuntime), so the benchmark measures what a gateway runs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';

import { onJsonLines, type LogLine } from '../../test/support/lines.js';
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

/**
 * What systemd/edgehaul.service gives the daemon besides its arguments: the
 * node flags of ExecStart (between `node` and the script) and the
 * Environment= settings for the allocator (MALLOC_*).
 */
export function unitRuntime(unitText: string): { nodeArgs: string[]; env: Record<string, string> } {
  const exec = /^ExecStart=(.*)$/m.exec(unitText);
  if (exec === null) throw new Error('the unit has no ExecStart=');
  const words = exec[1]!.trim().split(/\s+/);
  const node = words.findIndex((w) => w === 'node' || w.endsWith('/node'));
  const script = words.findIndex((w, i) => i > node && !w.startsWith('-'));
  if (node < 0 || script < 0) throw new Error(`cannot find node and its script in ExecStart=${exec[1]!}`);
  const env: Record<string, string> = {};
  for (const m of unitText.matchAll(/^Environment=(MALLOC_[A-Z_]+)=(\S+)$/gm)) env[m[1]!] = m[2]!;
  return { nodeArgs: words.slice(node + 1, script), env };
}

export class BenchDaemon {
  readonly lines: LogLine[] = [];
  readonly stats: StatsLine[] = [];
  readonly stderr: string[] = [];
  readonly configFile: string;
  private child: ChildProcess | null = null;
  private exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | null = null;

  constructor(
    readonly root: string,
    readonly dir: string,
    config: Record<string, unknown>,
    private readonly nodeArgs: readonly string[] = [],
    private readonly wrap: readonly string[] = [],
  ) {
    this.configFile = join(dir, 'edgehaul.yaml');
    writeFileSync(this.configFile, stringify(config));
  }

  get pid(): number {
    const pid = this.child?.pid;
    if (pid === undefined) throw new Error('daemon not started');
    return pid;
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts and waits for "edgehaul running"; returns the ingest address it reports. */
  async start(timeoutMs = 30_000): Promise<string> {
    const unit = unitRuntime(readFileSync(join(this.root, 'systemd/edgehaul.service'), 'utf8'));
    const argv = [process.execPath, ...unit.nodeArgs, ...this.nodeArgs, join(this.root, 'dist/src/cli/main.js'), 'run', '--config', this.configFile];
    const [cmd, ...args] = [...this.wrap, ...argv];
    const child = track(spawn(cmd!, args, {
      cwd: this.dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...unit.env, STATE_DIRECTORY: this.dir },
    }));
    this.child = child;
    onJsonLines(child.stdout!, (line) => {
      if (line.msg === 'stats') {
        this.stats.push({ at: Date.now(), stats: line.stats as StatsLine['stats'], buffer: (line.buffer ?? null) as StatsLine['buffer'], backlog: (line.backlog ?? null) as StatsLine['backlog'], commitMaxMs: typeof (line.commit as { max_ms?: unknown } | undefined)?.max_ms === 'number' ? (line.commit as { max_ms: number }).max_ms : null });
      } else {
        this.lines.push(line);
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => this.stderr.push(chunk));
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const running = this.lines.find((l) => l.msg === 'edgehaul running');
      if (running !== undefined) return String(running.ingest);
      if (!this.running) throw new Error(`daemon exited during start:\n${this.describe()}`);
      if (Date.now() > deadline) throw new Error(`daemon not running after ${timeoutMs} ms:\n${this.describe()}`);
      await new Promise((r) => setTimeout(r, 25));
    }
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

  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 30_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; killed: boolean }> {
    if (this.exited === null) return { code: null, signal: null, killed: false };
    if (this.running) this.child!.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const result = await Promise.race([this.exited, new Promise<null>((r) => (timer = setTimeout(() => r(null), timeoutMs)))]);
    clearTimeout(timer);
    if (result !== null) return { ...result, killed: false };
    this.child!.kill('SIGKILL');
    return { ...(await this.exited), killed: true };
  }

  /** warn/error/fatal lines, for the report */
  problems(): LogLine[] {
    return this.lines.filter((l) => l.level === 'warn' || l.level === 'error' || l.level === 'fatal' || l.level === 'raw');
  }

  describe(): string {
    return `${this.lines.slice(-15).map((l) => JSON.stringify(l)).join('\n')}\n${this.stderr.join('').slice(-2000)}`;
  }
}
