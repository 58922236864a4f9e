import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ROOT } from './kafka.js';
import { LoggedProcess } from './process.js';
import type { LogLine } from './lines.js';

export type { LogLine };

/** How a Daemon's process is spawned; the defaults are what the tests use. */
export interface DaemonSpawn {
  /** the checkout whose dist/src/cli/main.js runs (the benchmark can compare another build) */
  root?: string;
  /** node flags before the script (--cpu-prof, the systemd unit's flags) */
  nodeArgs?: readonly string[];
  /** a command that execs node (`taskset -c 0`): the pid stays the daemon's */
  wrap?: readonly string[];
  /** more environment variables (allocator settings) */
  env?: Record<string, string>;
  /** sees the child process once spawned (the benchmark tracks it for cleanup) */
  onSpawn?: (child: ChildProcess) => void;
  /** sees each log line first; false keeps it out of `lines` */
  onLine?: (line: LogLine) => boolean;
}

/** The real daemon as a child process: `node dist/src/cli/main.js run --config FILE`. */
export class Daemon extends LoggedProcess {
  readonly configFile: string;

  constructor(
    readonly dir: string,
    config: Record<string, unknown>,
    private readonly spawnOpts: DaemonSpawn = {},
  ) {
    super('the daemon', 2000);
    this.configFile = join(dir, 'edgehaul.yaml');
    writeFileSync(this.configFile, stringify(config));
  }

  static tempDir(): string {
    return mkdtempSync(join(tmpdir(), 'edgehaul-test-'));
  }

  /** Replaces the config file (for a reload); YAML text is written as given. */
  writeConfig(config: Record<string, unknown> | string): void {
    writeFileSync(this.configFile, typeof config === 'string' ? config : stringify(config));
  }

  /** Starts and waits for "edgehaul running"; returns the MQTT address it reports. `env` adds variables (NOTIFY_SOCKET). */
  async start(timeoutMs = 30_000, env: Record<string, string> = {}): Promise<string> {
    const o = this.spawnOpts;
    const argv = [
      process.execPath,
      ...(o.nodeArgs ?? []),
      join(o.root ?? ROOT, 'dist/src/cli/main.js'),
      'run',
      '--config',
      this.configFile,
    ];
    const [cmd, ...args] = [...(o.wrap ?? []), ...argv];
    const running = await this.spawnUntil(
      cmd!,
      args,
      { cwd: this.dir, env: { ...withoutSystemd(process.env), ...o.env, STATE_DIRECTORY: this.dir, ...env } },
      {
        ready: 'edgehaul running',
        timeoutMs,
        everyMs: 25,
        ...(o.onSpawn !== undefined ? { onSpawn: o.onSpawn } : {}),
        ...(o.onLine !== undefined ? { onLine: o.onLine } : {}),
      },
    );
    return running.ingest as string;
  }

  /** Base URL of the HTTP endpoint (/metrics, /healthz, /status) the last start logged. */
  get httpUrl(): string {
    const line = [...this.lines].reverse().find((l) => l.msg === 'http listening');
    if (line === undefined) throw new Error('the daemon logged no "http listening" line');
    return `http://${line.http as string}`;
  }

  /** The last "stats" line the daemon logged (it logs one when it stops). */
  lastStats(): Record<string, number> {
    const line = [...this.lines].reverse().find((l) => l.msg === 'stats');
    if (line === undefined) throw new Error('no stats line yet');
    return line.stats as Record<string, number>;
  }
}

/** A test run started by systemd must not hand its notify socket to the daemons it starts. */
function withoutSystemd(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { NOTIFY_SOCKET: _socket, WATCHDOG_USEC: _usec, WATCHDOG_PID: _pid, ...rest } = env;
  return rest;
}

/**
 * A config for tests: everything on loopback, ephemeral ports, quick retries.
 * Anonymous MQTT clients are allowed unless the overrides set
 * `ingest.embedded.auth.allow_anonymous` themselves (the security tests do).
 */
export function testConfig(brokers: string[], overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const config: Record<string, unknown> = {
    gateway: { id: 'gw-test' },
    ingest: { mode: 'embedded', embedded: { host: '127.0.0.1', port: 0 } },
    buffer: { path: 'buffer.db' },
    kafka: {
      brokers,
      retry: { initial_ms: 100, max_ms: 1000 },
      connection_timeout_ms: 1000,
      request_timeout_ms: 10_000,
    },
    log: { level: 'info', stats_interval_secs: 0 },
    shutdown: { timeout_secs: 10 },
    // never the default port: test daemons run side by side
    http: { host: '127.0.0.1', port: 0 },
    ...overrides,
  };
  const ingest = { ...(config.ingest as Record<string, unknown>) };
  const embedded = { ...((ingest.embedded ?? {}) as Record<string, unknown>) };
  const auth = { ...((embedded.auth ?? {}) as Record<string, unknown>) };
  if (auth.allow_anonymous === undefined) auth.allow_anonymous = true;
  embedded.auth = auth;
  ingest.embedded = embedded;
  config.ingest = ingest;
  return config;
}
