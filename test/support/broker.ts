import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './kafka.js';
import { waitFor } from './poll.js';

/** Starts test/support/broker-process in a child process; resolves with its URL. */
export async function startUpstreamBroker(): Promise<{ url: string; stop: () => Promise<void> }> {
  const child: ChildProcess = spawn(process.execPath, [join(ROOT, 'dist/test/support/broker-process.js')], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  const port = await waitFor('the upstream broker to listen', () => /BROKER_PORT=(\d+)/.exec(out)?.[1], 15_000);
  return {
    url: `mqtt://127.0.0.1:${port}`,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}
