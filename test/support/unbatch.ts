import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './kafka.js';
import { LoggedProcess, type Exit } from './process.js';

const run = promisify(execFile);
export const UNBATCH_DIR = join(ROOT, 'clients/jvm/unbatch');
export const UNBATCH_JAR = join(UNBATCH_DIR, 'target/edgehaul-unbatch-0.1.0.jar');

/** The shaded jar; built with clients/jvm/unbatch/build.sh when missing (CI builds it before npm test). */
export async function unbatchJar(): Promise<string> {
  if (!existsSync(UNBATCH_JAR)) await run('bash', [join(UNBATCH_DIR, 'build.sh')], { timeout: 600_000 });
  return UNBATCH_JAR;
}

/** One edgehaul-unbatch instance as a child process (the launcher script), settings from EDGEHAUL_UNBATCH_* variables. */
export class Unbatch extends LoggedProcess {
  readonly stateDir: string;

  constructor(readonly env: Record<string, string>) {
    super('edgehaul-unbatch', 3000);
    this.stateDir = mkdtempSync(join(tmpdir(), 'edgehaul-unbatch-'));
  }

  /** Starts, waits for "unbatch running"; returns the metrics base URL. */
  async start(timeoutMs = 90_000): Promise<string> {
    await this.spawnUntil(
      'bash',
      [join(UNBATCH_DIR, 'bin/edgehaul-unbatch')],
      {
        env: {
          ...process.env,
          EDGEHAUL_UNBATCH_STATE_DIR: this.stateDir,
          EDGEHAUL_UNBATCH_METRICS_PORT: '0',
          ...this.env,
        },
      },
      { ready: 'unbatch running', timeoutMs, everyMs: 100 },
    );
    const http = [...this.lines].reverse().find((l) => l.msg === 'http listening');
    return `http://${http!.http as string}`;
  }

  /** The launcher execs java, so the child is the JVM itself. */
  override stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 60_000): Promise<Exit> {
    return super.stop(signal, timeoutMs);
  }
}

/** A Prometheus counter's sum over its label sets, from an edgehaul-unbatch /metrics page. */
export async function unbatchCounter(baseUrl: string, name: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n'))
    if (line.startsWith(`${name}{`)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

export interface DumpedRecord {
  readonly partition: number;
  readonly offset: number;
  readonly key: string | null;
  readonly headers: Record<string, string>;
  readonly value?: string;
  readonly value_base64?: string;
}

/**
 * Every committed record of `topic` once no transaction is open on it
 * (`edgehaul-unbatch dump --wait-stable`: a read_committed consumer up to the
 * last stable offsets). A SIGKILLed instance's open transaction holds
 * read_committed readers back until the broker aborts it; call this when
 * nothing writes to the topic any more. `waited` is what dump said of it.
 */
export async function dumpTopic(brokers: string[], topic: string): Promise<DumpedRecord[] & { waited?: string }> {
  const { stdout, stderr } = await run(
    'java',
    [
      '-Xmx256m',
      '-XX:+UseSerialGC',
      '-cp',
      UNBATCH_JAR,
      'io.edgehaul.unbatch.Main',
      'dump',
      '--brokers',
      brokers.join(','),
      '--topic',
      topic,
      '--wait-stable',
      '--timeout-ms',
      '90000',
    ],
    { timeout: 120_000, maxBuffer: 512 * 1024 * 1024 },
  );
  const records: DumpedRecord[] & { waited?: string } = stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as DumpedRecord);
  records.waited = stderr.split('\n').find((l) => l.startsWith('dump: no open transaction'));
  return records;
}
