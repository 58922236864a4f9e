import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './kafka.js';
import { waitFor } from './poll.js';

/**
 * A plain MQTT broker (broker-process.ts: aedes, in memory) in a process of
 * its own, on an ephemeral loopback port. `tag` goes on its command line (for
 * pgrep); `track` sees the child (the benchmark's cleanup). `stop()` sends
 * SIGTERM, SIGKILL after 5 s.
 */
export async function startUpstreamBroker(
  opts: { tag?: string; track?: (child: ChildProcess) => void } = {},
): Promise<{ url: string; port: number; pid: number; stop: () => Promise<void> }> {
  const child: ChildProcess = spawn(
    process.execPath,
    [join(ROOT, 'dist/test/support/broker-process.js'), ...(opts.tag !== undefined ? [opts.tag] : [])],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  opts.track?.(child);
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  let found: string;
  try {
    found = await waitFor(
      'the MQTT broker process to listen',
      () => {
        if (child.exitCode !== null || child.signalCode !== null) return 'exited';
        return /BROKER_PORT=(\d+)/.exec(out)?.[1];
      },
      15_000,
      25,
    );
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  if (found === 'exited')
    throw new Error(`the MQTT broker process exited during start (${child.exitCode ?? child.signalCode})`);
  const port = Number(found);
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    pid: child.pid!,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}
