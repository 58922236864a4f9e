import type { RoutedEvent, SettleCallback } from '../core/event.js';
import type { BufferStore } from './store.js';

export interface GroupCommitOptions {
  /** 0: commit once the packets already read are handed over (setImmediate); otherwise wait up to this long. */
  readonly maxWaitMs: number;
  /** Commit at once when this many events are waiting. */
  readonly maxEvents: number;
  /** Commit at once when this many payload bytes are waiting. */
  readonly maxBytes: number;
}

export interface CommitReport {
  readonly events: number;
  readonly messages: number;
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly durationMs: number;
}

/**
 * Collects routed events from many publishes and commits them in one
 * transaction, then settles every publish at once: this is where a device's
 * PUBACK waits for durability. While a commit's fsync blocks the event loop,
 * sockets keep filling, so the next commit naturally takes everything that
 * arrived meanwhile.
 */
export class GroupCommitWriter {
  private events: RoutedEvent[] = [];
  private bytes = 0;
  private settles: SettleCallback[] = [];
  private timer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;

  constructor(
    private readonly store: BufferStore,
    private readonly options: GroupCommitOptions,
    private readonly onCommit: (report: CommitReport) => void,
    private readonly onError: (err: Error, messages: number) => void,
  ) {}

  get pendingMessages(): number {
    return this.settles.length;
  }

  submit(events: readonly RoutedEvent[], settle: SettleCallback): void {
    for (const e of events) {
      this.events.push(e);
      this.bytes += e.payload.length;
    }
    this.settles.push(settle);
    if (this.events.length >= this.options.maxEvents || this.bytes >= this.options.maxBytes) {
      this.flush();
      return;
    }
    if (this.timer !== null || this.immediate !== null) return;
    if (this.options.maxWaitMs === 0) this.immediate = setImmediate(() => this.flush());
    else this.timer = setTimeout(() => this.flush(), this.options.maxWaitMs);
  }

  /** Commits what is waiting now; safe to call at any time (shutdown calls it). */
  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.immediate !== null) clearImmediate(this.immediate);
    this.timer = null;
    this.immediate = null;
    if (this.settles.length === 0) return;
    const events = this.events;
    const settles = this.settles;
    this.events = [];
    this.settles = [];
    this.bytes = 0;
    const started = performance.now();
    let report: CommitReport | null = null;
    let failure: Error | null = null;
    try {
      // a publish may be settled by a rule (no events) while others in the group carry events
      if (events.length > 0) {
        const { firstSeq, lastSeq } = this.store.append(events);
        report = { events: events.length, messages: settles.length, firstSeq, lastSeq, durationMs: performance.now() - started };
      }
    } catch (err) {
      failure = err as Error;
    }
    if (failure !== null) this.onError(failure, settles.length);
    else if (report !== null) this.onCommit(report);
    for (const settle of settles) settle(failure);
  }
}
