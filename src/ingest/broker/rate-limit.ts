import type { Client } from 'aedes';
import { TokenBucket } from 'limiter';
import type { Connection, Warn } from './connection.js';

/** ingest.embedded's rate settings; absent: no limit. */
export interface RateSettings {
  readonly max_publish_per_sec: number;
  readonly publish_burst: number;
}

export interface RateCounters {
  rate_limited_total: number;
}

/**
 * The per-connection publish rate (max_publish_per_sec, a token bucket of
 * publish_burst): a fast client's publishes wait for a token in order, and
 * since aedes reads a connection's next chunk only after every packet of the
 * previous one was authorized, the delay pushes back on that client's TCP
 * stream alone.
 */
export class PublishRateLimit {
  private readonly rate: number;
  private readonly burst: number;
  /** Connections whose publishes may wait for a token. */
  private readonly limited = new Set<Connection>();

  constructor(
    emb: RateSettings | undefined,
    private readonly stats: RateCounters | undefined,
    private readonly warn: Warn,
  ) {
    this.rate = emb?.max_publish_per_sec ?? 0;
    this.burst = Math.max(1, emb?.publish_burst || Math.ceil(this.rate));
  }

  /** A full bucket for a connection that logged in; null when there is no limit. */
  bucket(): TokenBucket | null {
    if (this.rate <= 0) return null;
    const bucket = new TokenBucket({ bucketSize: this.burst, tokensPerInterval: this.rate, interval: 'second' });
    bucket.content = this.burst;
    return bucket;
  }

  /** Runs `go` now if the connection has a token and nothing waits before it, else once it gets one. */
  admit(state: Connection | undefined, client: Client, go: () => void): void {
    const bucket = state?.bucket ?? null;
    if (bucket === null || (state!.queue.length === 0 && bucket.tryRemoveTokens(1))) return go();
    if (this.stats !== undefined) this.stats.rate_limited_total++;
    this.warn(
      `rate:${client.id}`,
      { code: 'EH_ERR_INGEST_RATE_LIMITED', client_id: client.id, limit_per_sec: this.rate },
      'client publishes faster than max_publish_per_sec; slowed down',
    );
    state!.queue.push(go);
    this.limited.add(state!);
    if (state!.timer === null)
      state!.timer = setTimeout(() => this.drain(state!, client), Math.max(1, Math.ceil(1000 / this.rate)));
  }

  /** The connection closed. */
  forget(state: Connection): void {
    this.limited.delete(state);
  }

  /** Shutdown: every waiting publish goes at once. */
  releaseAll(): void {
    for (const state of this.limited) {
      if (state.timer !== null) clearTimeout(state.timer);
      state.timer = null;
      for (const go of state.queue.splice(0)) go();
    }
    this.limited.clear();
  }

  private drain(state: Connection, client: Client): void {
    state.timer = null;
    if (client.closed) {
      state.queue.length = 0;
      return;
    }
    while (state.queue.length > 0 && state.bucket!.tryRemoveTokens(1)) state.queue.shift()!();
    if (state.queue.length > 0) {
      state.timer = setTimeout(() => this.drain(state, client), Math.max(1, Math.ceil(1000 / this.rate)));
    }
  }
}
