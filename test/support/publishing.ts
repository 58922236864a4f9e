import type { MqttClient } from 'mqtt';
import type { Daemon } from './daemon.js';
import { statsLines } from './stats.js';

/** A publish whose outcome can be looked at without awaiting it. */
export interface TrackedPublish {
  readonly n: number;
  state(): 'pending' | 'acked' | 'failed';
  readonly error: () => unknown;
  /** Resolves when acknowledged; never rejects (a failure shows in state()). */
  readonly settled: Promise<void>;
}

/** Starts a QoS 1 publish and tracks it (rejections are kept, never unhandled). */
export function trackPublish(client: MqttClient, topic: string, payload: string | Buffer, n: number): TrackedPublish {
  let state: 'pending' | 'acked' | 'failed' = 'pending';
  let error: unknown = null;
  const settled = client.publishAsync(topic, payload, { qos: 1 }).then(
    () => {
      state = 'acked';
    },
    (err: unknown) => {
      state = 'failed';
      error = err;
    },
  );
  return { n, state: () => state, error: () => error, settled };
}

/**
 * Publishes numbered QoS 1 messages one at a time (window 1: each is one
 * group commit) until one is not acknowledged and the daemon's stats show a
 * held message (blocked_messages > 0, logged after that publish started).
 * Needs log.stats_interval_secs > 0. Returns the acknowledged numbers and
 * the held publish (still pending).
 */
export async function publishUntilHeld(
  client: MqttClient,
  daemon: Daemon,
  opts: {
    topic: string;
    payload: (n: number) => string | Buffer;
    first?: number;
    max: number;
    perPublishTimeoutMs?: number;
  },
): Promise<{ acked: number[]; held: TrackedPublish }> {
  const acked: number[] = [];
  const timeout = opts.perPublishTimeoutMs ?? 15_000;
  for (let n = opts.first ?? 0; n < (opts.first ?? 0) + opts.max; n++) {
    const from = daemon.lines.length;
    const p = trackPublish(client, opts.topic, opts.payload(n), n);
    const deadline = Date.now() + timeout;
    for (;;) {
      const s = p.state();
      if (s === 'acked') break;
      if (s === 'failed') throw new Error(`publish ${n} failed: ${String(p.error())}`);
      if (statsLines(daemon, from).some((l) => l.stats.blocked_messages > 0)) return { acked, held: p };
      if (Date.now() > deadline)
        throw new Error(`publish ${n}: neither acknowledged nor reported held within ${timeout} ms`);
      // look again when the publish settles, or in 20 ms for a new stats line
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([p.settled, new Promise((r) => (timer = setTimeout(r, 20)))]);
      clearTimeout(timer);
    }
    acked.push(n);
  }
  throw new Error(`all ${opts.max} publishes were acknowledged; none was held`);
}

/**
 * Publishes numbered QoS 1 messages first..first+count-1 one at a time
 * (window 1: each is one group commit), each acknowledged within
 * `perPublishTimeoutMs` or the call fails. Returns the acknowledged numbers.
 */
export async function publishSequence(
  client: MqttClient,
  opts: {
    topic: string;
    payload: (n: number) => string | Buffer;
    first?: number;
    count: number;
    perPublishTimeoutMs?: number;
  },
): Promise<number[]> {
  const acked: number[] = [];
  const timeout = opts.perPublishTimeoutMs ?? 15_000;
  const first = opts.first ?? 0;
  for (let n = first; n < first + opts.count; n++) {
    const p = trackPublish(client, opts.topic, opts.payload(n), n);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      p.settled,
      new Promise<void>(
        (_, reject) =>
          (timer = setTimeout(() => reject(new Error(`publish ${n} not acknowledged within ${timeout} ms`)), timeout)),
      ),
    ]).finally(() => clearTimeout(timer));
    if (p.state() === 'failed') throw new Error(`publish ${n} failed: ${String(p.error())}`);
    acked.push(n);
  }
  return acked;
}
