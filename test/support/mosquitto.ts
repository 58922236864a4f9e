import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { waitFor } from './poll.js';

/** Debian's package installs it in /usr/sbin, which a non-root PATH may lack. */
export function findMosquitto(): string | null {
  return ['/usr/sbin/mosquitto', '/usr/bin/mosquitto'].find((p) => spawnSync(p, ['-h']).error === undefined) ?? null;
}
export const MOSQUITTO_BIN = findMosquitto();

/**
 * What README recommends for a broker edgehaul subscribes to: the session and
 * its queue on disk, a queue that does not overflow during an outage, and an
 * in-flight window a group commit can fill (= ingest.client.max_in_flight).
 */
export const RECOMMENDED: Readonly<Record<string, string>> = {
  persistence: 'true',
  autosave_interval: '30',
  max_inflight_messages: '1000',
  max_queued_messages: '0',
  max_queued_bytes: '0',
};

/** Mosquitto's own defaults, written out (persistence false, 20 in flight, 1000 queued). */
export const DEFAULTS: Readonly<Record<string, string>> = {};

export interface Mosquitto {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port with the same settings (and, with persistence, the same sessions). */
  restart(): Promise<void>;
}

/** Starts Debian's mosquitto on a free loopback port with `settings`, its files under `dir`. */
export async function startMosquitto(
  dir: string,
  settings: Readonly<Record<string, string>> = RECOMMENDED,
): Promise<Mosquitto> {
  const bin = findMosquitto();
  if (bin === null) throw new Error('mosquitto is not installed (Debian: apt-get install mosquitto)');
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const lines = [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    `persistence_location ${dir}/`,
    `user ${userInfo().username}`, // as root, mosquitto would switch to its own user, which cannot write under dir
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    ...Object.entries(settings).map(([k, v]) => `${k} ${v}`),
  ];
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(conf, `${lines.join('\n')}\n`);
  let child: ChildProcess;
  const launch = async (): Promise<void> => {
    child = spawn(bin, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
    await waitFor(
      `mosquitto to listen on ${port}`,
      async () => {
        if (child.exitCode !== null) throw new Error(`mosquitto exited ${child.exitCode}: ${err}`);
        return (await accepts(port)) || undefined;
      },
      10_000,
    );
  };
  await launch();
  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
  };
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    get pid() {
      return child.pid!;
    },
    stop,
    async restart() {
      await stop();
      await launch();
    },
  };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
