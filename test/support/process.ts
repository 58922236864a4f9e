import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { onJsonLines, type LogLine } from './lines.js';
import { waitFor } from './poll.js';

export type Exit = { code: number | null; signal: NodeJS.Signals | null };

/**
 * A child process that logs JSON lines (the daemon, edgehaul-unbatch):
 * spawn and wait for its "ready" line, signal it, wait for its exit with a
 * deadline. `lines` and `stderr` keep what it wrote, across restarts.
 */
export class LoggedProcess {
  readonly lines: LogLine[] = [];
  readonly stderr: string[] = [];
  protected child: ChildProcess | null = null;
  private exit: Promise<Exit> | null = null;

  /** `name` for error messages; `stderrTail`: how much of stderr describe() shows. */
  constructor(
    private readonly name: string,
    private readonly stderrTail: number,
  ) {}

  /**
   * Spawns `cmd args` and waits until it logs a line with msg `ready` (polled
   * every `everyMs`); throws when it exits first. `onLine` sees each line
   * first; false keeps it out of `lines`.
   */
  protected async spawnUntil(
    cmd: string,
    args: readonly string[],
    options: SpawnOptions,
    o: {
      ready: string;
      timeoutMs: number;
      everyMs: number;
      onSpawn?: (child: ChildProcess) => void;
      onLine?: (line: LogLine) => boolean;
    },
  ): Promise<LogLine> {
    const child = spawn(cmd, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    o.onSpawn?.(child);
    this.child = child;
    const from = this.lines.length;
    onJsonLines(child.stdout, (line) => {
      if (o.onLine === undefined || o.onLine(line)) this.lines.push(line);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => this.stderr.push(chunk));
    this.exit = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    let exited = false;
    void this.exit.then(() => (exited = true));
    const ready = await waitFor(
      `${this.name} to report "${o.ready}"`,
      () => {
        if (exited) return 'exited' as const;
        return this.lines.slice(from).find((l) => l.msg === o.ready);
      },
      o.timeoutMs,
      o.everyMs,
    );
    if (ready === 'exited') throw new Error(`${this.name} exited during start: ${this.describe()}`);
    return ready;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  kill(signal: NodeJS.Signals): void {
    this.child?.kill(signal);
  }

  /** Sends `signal` (if it still runs) and waits for the exit; throws after `timeoutMs`. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 30_000): Promise<Exit> {
    if (this.exit === null) throw new Error('not started');
    if (this.running) this.child!.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    return await Promise.race([
      this.exit,
      new Promise<never>(
        (_, reject) =>
          (timer = setTimeout(() => reject(new Error(`${this.name} did not exit within ${timeoutMs} ms`)), timeoutMs)),
      ),
    ]).finally(() => clearTimeout(timer));
  }

  describe(): string {
    return `${this.lines
      .slice(-15)
      .map((l) => JSON.stringify(l))
      .join('\n')}\n${this.stderr.join('').slice(-this.stderrTail)}`;
  }
}
