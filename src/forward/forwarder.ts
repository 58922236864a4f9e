import { TokenBucket } from 'limiter';
import type { SequencedEvent } from '../core/event.js';
import type { BufferStore, StoredCommit } from '../buffer/store.js';
import { LogThrottle, type Logger } from '../core/log.js';
import { batchHeaders, encodeBatch } from './format.js';
import type { Confirmation, OutRecord, RecordSink } from './sink.js';

export interface ForwarderOptions {
  readonly gatewayId: string;
  readonly maxEventsPerRecord: number;
  readonly maxEventsPerSend: number;
  /** Record value bytes per sink.send at most (Kafka's max.message.bytes bounds a partition's batch). */
  readonly maxSendBytes: number;
  readonly lingerMs: number;
  readonly retryInitialMs: number;
  readonly retryMaxMs: number;
  /** Upload cap for metered links, record bytes per second; 0: none. */
  readonly maxBytesPerSec: number;
  /**
   * Upload windows: the lowest priority that may be sent right now (null: all).
   * Consulted whenever rows are selected; call notify() when it changes.
   */
  readonly minPriority?: () => number | null;
}

/** The counters the forwarder writes (ops/Stats satisfies this; the gateway passes it in). */
export interface ForwarderCounters {
  /** read: the sink's connection state, set by the Kafka sink */
  readonly upstream_connected: boolean;
  send_errors_total: number;
  /** reads or deletes of buffered events that failed under the forwarder (retried) */
  store_read_errors_total: number;
  upstream_unconfirmed_records_total: number;
  upstream_unconfirmed_at: number;
  upstream_reordered_records_total: number;
  sent_bytes_total: number;
  sent_records_total: number;
  sent_events_total: number;
}

/**
 * Reads the oldest commits, sends them as CBOR batches, and deletes them only
 * after the sink acknowledged every record. One send at a time: per-key order
 * holds across retries because nothing newer is sent before an older batch is
 * acknowledged.
 */
export class Forwarder {
  private running = false;
  private storeClosed = false;
  private halted = false;
  private wake: (() => void) | null = null;
  private interrupt: (() => void) | null = null;
  private pendingWake = false;
  private loop: Promise<void> | null = null;
  private attempt = 0;
  private readonly throttle = new LogThrottle(30_000);
  private readonly leased = new Set<number>();
  private readonly bucket: TokenBucket | null;

  constructor(
    private readonly store: BufferStore,
    private readonly sink: RecordSink,
    private readonly options: ForwarderOptions,
    private readonly stats: ForwarderCounters,
    private readonly log: Logger,
    /** Called after delivered commits left the buffer: room was made. */
    private readonly onDelivered: () => void = () => undefined,
  ) {
    this.bucket =
      options.maxBytesPerSec > 0
        ? new TokenBucket({
            bucketSize: Math.max(options.maxBytesPerSec, options.maxSendBytes),
            tokensPerInterval: options.maxBytesPerSec,
            interval: 'second',
          })
        : null;
  }

  /** Rows being sent right now: not to be evicted or expired under the forwarder's feet. */
  get inFlight(): ReadonlySet<number> {
    return this.leased;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** New events were committed. */
  notify(): void {
    this.pendingWake = true;
    this.wake?.();
  }

  /**
   * Sends what the upstream takes until the buffer is empty or the deadline
   * passes, then stops. Returns how many events are left in the buffer. After
   * this, the forwarder never touches the store again, even if a send that was
   * in flight completes later: those events stay buffered and are sent again
   * after a restart, with the same sequence numbers.
   */
  async stop(deadline: number): Promise<number> {
    this.running = false;
    this.wake?.();
    this.interrupt?.();
    let drained = this.loop === null;
    void this.loop?.then(() => (drained = true));
    // a send in flight to a Kafka that is down would only end at the deadline: stop waiting once the
    // upstream is known to be down, the events stay buffered for the next start
    while (!drained && Date.now() < deadline && this.stats.upstream_connected) {
      await new Promise((r) => setTimeout(r, Math.min(100, Math.max(1, deadline - Date.now()))));
    }
    this.storeClosed = true;
    await this.sink.close().catch(() => undefined);
    return this.store.stats().events;
  }

  /**
   * Stops once the send in flight (if any) was acknowledged or failed, without
   * draining the buffer, and closes the sink: another forwarder can then take
   * over the same rows in the same order (a Kafka reconfiguration on reload).
   */
  async pause(): Promise<void> {
    this.halted = true;
    this.running = false;
    this.wake?.();
    this.interrupt?.();
    await this.loop;
    this.storeClosed = true;
    await this.sink.close().catch(() => undefined);
  }

  private async run(): Promise<void> {
    for (;;) {
      try {
        if (!(await this.step())) return;
      } catch (err) {
        // the store failed under the forwarder (a read or delete: I/O error, a damaged page): nothing was
        // deleted that was not delivered; count it, wait, read again rather than let the loop die unseen
        this.stats.store_read_errors_total++;
        this.throttle.run('read', (suppressed) => {
          this.log.error(
            { code: 'EH_ERR_STORE_READ', err: (err as Error).message, suppressed },
            'reading or deleting buffered events failed; they stay buffered and are read again',
          );
        });
        if (!this.running || this.storeClosed || this.halted) return;
        await this.sleep(this.nextBackoff());
      }
    }
  }

  /** One round of the loop: false when the loop is to end. */
  private async step(): Promise<boolean> {
    if (this.storeClosed || this.halted) return false;
    if (this.store.bytes() === 0) {
      if (!this.running) return false;
      await this.idle();
      return true;
    }
    // connect before reading: while Kafka is unreachable nothing is decoded again and again,
    // and the rows stay evictable by the full-buffer policy, oldest first
    if (!(await this.connect())) {
      if (!this.running) return false;
      await this.sleep(this.nextBackoff());
      return true;
    }
    if (this.storeClosed) return false;
    const commits = this.store.readNext(
      this.options.maxEventsPerSend,
      this.options.maxSendBytes,
      undefined,
      this.options.minPriority?.() ?? undefined,
    );
    if (commits.length === 0) {
      // accounting says there is something, but nothing is readable (rows being deleted): wait for news
      if (!this.running) return false;
      await this.idle();
      return true;
    }
    const ok = await this.sendOnce(commits);
    if (!ok) {
      if (!this.running) return false;
      await this.sleep(this.nextBackoff());
    }
    return true;
  }

  private async connect(): Promise<boolean> {
    try {
      await this.sink.connect();
      return true;
    } catch (err) {
      this.failed(err, this.store.stats().events);
      return false;
    }
  }

  private failed(err: unknown, events: number): void {
    this.stats.send_errors_total++;
    this.throttle.run('send', (suppressed) => {
      this.log.warn(
        { code: 'EH_ERR_UPSTREAM_SEND', err: (err as Error).message, events, attempt: this.attempt + 1, suppressed },
        'batch not delivered; kept in the buffer and retried',
      );
    });
  }

  /** Records the upstream did not confirm: counted and logged, the send fails and is retried. */
  private unconfirmed(u: Unconfirmed): void {
    this.stats.upstream_unconfirmed_records_total += u.records;
    this.stats.upstream_unconfirmed_at = Date.now();
    if (u.reordered > 0) this.stats.upstream_reordered_records_total += u.reordered;
    this.throttle.run('unconfirmed', (suppressed) => {
      this.log.error(
        { code: 'EH_ERR_UPSTREAM_UNCONFIRMED', records: u.records, reordered: u.reordered, suppressed },
        'kafka confirmed only some records of a send (no partition and offset for the others); all are kept and sent again',
      );
    });
  }

  private async sendOnce(commits: StoredCommit[]): Promise<boolean> {
    const records = this.toRecords(commits);
    for (const c of commits) this.leased.add(c.id);
    try {
      // in order, one request at a time; the commits are deleted only after the last one
      for (const request of this.toRequests(records)) {
        if (this.bucket !== null) await this.bucket.removeTokens(request.reduce((n, r) => n + r.value.length, 0));
        const unconfirmed = checkConfirmations(request, await this.sink.send(request));
        if (unconfirmed !== null) {
          this.unconfirmed(unconfirmed);
          throw new Error(`kafka confirmed ${request.length - unconfirmed.records} of ${request.length} records`);
        }
      }
    } catch (err) {
      this.leased.clear();
      this.failed(
        err,
        commits.reduce((n, c) => n + c.events.length, 0),
      );
      return false;
    }
    this.leased.clear();
    if (this.storeClosed) return true;
    this.store.remove(commits.map((c) => c.id));
    this.onDelivered();
    if (this.attempt > 0) this.log.info({ after_attempts: this.attempt }, 'upstream delivering again');
    this.attempt = 0;
    for (const r of records) this.stats.sent_bytes_total += r.value.length;
    this.stats.sent_records_total += records.length;
    this.stats.sent_events_total += commits.reduce((n, c) => n + c.events.length, 0);
    return true;
  }

  /** Groups records into requests of at most maxSendBytes, keeping their order. */
  toRequests(records: readonly OutRecord[]): OutRecord[][] {
    const requests: OutRecord[][] = [];
    let current: OutRecord[] = [];
    let bytes = 0;
    for (const r of records) {
      if (current.length > 0 && bytes + r.value.length > this.options.maxSendBytes) {
        requests.push(current);
        current = [];
        bytes = 0;
      }
      current.push(r);
      bytes += r.value.length;
    }
    if (current.length > 0) requests.push(current);
    return requests;
  }

  /**
   * One record per (topic, route, key), in sequence order, at most
   * maxEventsPerRecord events and about maxSendBytes bytes each.
   */
  toRecords(commits: readonly StoredCommit[]): OutRecord[] {
    const groups = new Map<string, SequencedEvent[]>();
    for (const c of commits) {
      for (const e of c.events) {
        const id = `${e.kafkaTopic}\u0000${e.route}\u0000${e.key}`;
        let g = groups.get(id);
        if (g === undefined) groups.set(id, (g = []));
        g.push(e);
      }
    }
    const records: OutRecord[] = [];
    const source = { gatewayId: this.options.gatewayId, incarnation: this.store.incarnation };
    const emit = (chunk: SequencedEvent[]): void => {
      const first = chunk[0]!;
      records.push({
        topic: first.kafkaTopic,
        key: first.key,
        value: encodeBatch(source, first.route, first.key, chunk),
        headers: batchHeaders(source, first.route, chunk),
      });
    };
    // leaves room for the batch's own fields and each event's tuple around its payload
    const byteBudget = this.options.maxSendBytes - 2048;
    for (const events of groups.values()) {
      let chunk: SequencedEvent[] = [];
      let bytes = 0;
      for (const e of events) {
        const size = e.payload.length + e.topic.length + 24;
        if (chunk.length > 0 && (chunk.length >= this.options.maxEventsPerRecord || bytes + size > byteBudget)) {
          emit(chunk);
          chunk = [];
          bytes = 0;
        }
        chunk.push(e);
        bytes += size;
      }
      if (chunk.length > 0) emit(chunk);
    }
    return records;
  }

  /** Exponential backoff with full jitter: many gateways reconnecting after an outage do not arrive in step. */
  private nextBackoff(): number {
    const cap = Math.min(this.options.retryMaxMs, this.options.retryInitialMs * 2 ** Math.min(this.attempt, 20));
    this.attempt++;
    return this.options.retryInitialMs / 2 + Math.random() * (cap - this.options.retryInitialMs / 2);
  }

  private async idle(): Promise<void> {
    if (!this.pendingWake) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = null;
    }
    this.pendingWake = false;
    if (this.running && this.options.lingerMs > 0) await this.sleep(this.options.lingerMs);
  }

  /** Waits, cut short only by stop(): new commits must not shorten a backoff. */
  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.interrupt = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.interrupt = done;
    });
  }
}

export interface Unconfirmed {
  /** records without a confirmation */
  readonly records: number;
  /** confirmed records that follow an unconfirmed one of the same topic and key: written out of order */
  readonly reordered: number;
}

/**
 * The evidence check: every record needs its own confirmation (a partition
 * and an offset). Returns null when all are confirmed.
 */
export function checkConfirmations(
  records: readonly OutRecord[],
  confirmations: ReadonlyArray<Confirmation | null>,
): Unconfirmed | null {
  let missing = 0;
  let reordered = 0;
  const gapAt = new Set<string>();
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    const c = i < confirmations.length ? confirmations[i] : null;
    const id = `${r.topic}\u0000${r.key}`;
    if (c === null || c === undefined || !(c.partition >= 0) || !/^\d+$/.test(c.offset)) {
      missing++;
      gapAt.add(id);
    } else if (gapAt.has(id)) {
      reordered++;
    }
  }
  return missing === 0 ? null : { records: missing, reordered };
}
