import type { RoutedEvent, SettleCallback } from '../core/event.js';
import type { FlashPacer } from './pacer.js';
import { AdmissionPlan, type BufferLimits } from './policy.js';
import type { BufferStore, DeadLetterRecord, PublishId, RemovedRow, StateRecord } from './store.js';

export interface GroupCommitOptions {
  /** 0: commit once the packets already read are handed over (setImmediate); otherwise wait up to this long. */
  readonly maxWaitMs: number;
  /** Commit at once when this many events are waiting. */
  readonly maxEvents: number;
  /**
   * Enough for an efficient commit: once this many events wait, commit as soon as the packets
   * already read are handed over instead of waiting maxWaitMs. A busy gateway never waits; a
   * quiet one gathers up to maxWaitMs so that a commit is not a few events on many pages.
   */
  readonly minEvents?: number;
  /** Commit at once when this many payload bytes are waiting. */
  readonly maxBytes: number;
  /**
   * Commit at once when this many messages are waiting: in client mode each
   * connection hands over one message at a time, so once every connection has
   * one waiting, waiting longer only adds latency.
   */
  readonly maxMessages?: number;
  /** Dead letters the store keeps for inspection at most. */
  readonly keepDeadLetters?: number;
  /**
   * A daily write budget (buffer.flash_budget_bytes_per_day): commits that are
   * due wait for it, at most its maxWaitMs after their first message. Commits
   * forced by maxEvents, maxBytes, maxMessages or flush() do not wait.
   */
  readonly pacer?: FlashPacer | null;
}

export interface CommitReport {
  readonly events: number;
  readonly messages: number;
  readonly durationMs: number;
  /** how long the flash budget held this commit back, ms (0: not paced) */
  readonly pacedMs?: number;
}

export interface WriterHooks {
  onCommit(report: CommitReport): void;
  onError(err: Error, messages: number): void;
  /** Events that left the buffer (evicted) or never entered it (dropped new) because the buffer was full. */
  onFull(route: string, events: number, how: 'evicted_oldest' | 'dropped_newest'): void;
  /** Original events replaced by aggregates (when_full: downsample): they arrive only as part of those. */
  onDownsampled?(route: string, events: number): void;
  /** Messages whose acknowledgement is held because these `block` routes are full; called at every try while held. */
  onHeld?(routes: readonly string[], messages: number): void;
  /**
   * Transform checkpoints that changed since the last commit; written in the
   * commit's transaction, so the inputs acknowledged by it and their share of
   * open windows become durable together.
   */
  checkpoints?(): StateRecord[];
  /** The commit that carried these checkpoints failed: offer them again with the next one. */
  checkpointsLost?(states: readonly StateRecord[]): void;
}

interface Pending {
  readonly events: readonly RoutedEvent[];
  readonly settle: SettleCallback;
  readonly deadLetters?: readonly DeadLetterRecord[] | undefined;
  readonly publish?: PublishId | undefined;
}

/** How long held messages wait at most before the writer looks for room again by itself. */
const BLOCKED_RECHECK_MS = 500;

/**
 * Collects routed events from many publishes and commits them in one
 * transaction, then settles every publish at once: this is where a device's
 * PUBACK waits for durability. While a commit's fsync blocks the event loop,
 * sockets keep filling, so the next commit naturally takes everything that
 * arrived meanwhile.
 *
 * When the buffer is at its bounds, the admission plan decides per message;
 * a message held by a `block` route keeps its settle callback (and so the
 * device's PUBACK) until kick() finds room.
 */
export class GroupCommitWriter {
  private pending: Pending[] = [];
  private blocked: Pending[] = [];
  private events = 0;
  private bytes = 0;
  private timer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private recheck: NodeJS.Timeout | null = null;
  /** performance.now() when the oldest waiting message arrived */
  private firstAt = 0;
  /** when the flash budget first held the waiting commit back; 0: not held */
  private pacedSince = 0;

  constructor(
    private readonly store: BufferStore,
    private options: GroupCommitOptions,
    private readonly limits: () => BufferLimits,
    private readonly leased: () => ReadonlySet<number>,
    private readonly hooks: WriterHooks,
  ) {}

  /** New commit settings (a reload); the events already waiting are committed by the new rules. */
  reconfigure(options: GroupCommitOptions): void {
    this.options = options;
    if (this.pending.length > 0) this.schedule();
  }

  /** Messages whose acknowledgement is held because their route blocks on a full buffer. */
  get blockedMessages(): number {
    return this.blocked.length;
  }

  /**
   * `events` may be empty when the message only fed transform state or became a
   * dead letter: it is then acknowledged with the commit that makes that durable.
   */
  submit(
    events: readonly RoutedEvent[],
    settle: SettleCallback,
    deadLetters?: readonly DeadLetterRecord[],
    publish?: PublishId,
  ): void {
    if (this.pending.length === 0) this.firstAt = performance.now();
    this.pending.push({ events, settle, deadLetters, publish });
    if (events.length === 0) this.events++; // still a commit's worth of work
    this.events += events.length;
    for (const e of events) this.bytes += e.payload.length;
    if (this.events >= this.options.maxEvents || this.bytes >= this.options.maxBytes) {
      this.flush();
      return;
    }
    // client mode: not synchronously. mqtt.js hands the next buffered message over inside our
    // settle callback, so a synchronous commit here would chain commit after commit through a
    // broker's whole backlog without ever yielding: no Kafka I/O, no timers, for seconds
    if (this.pending.length >= (this.options.maxMessages ?? Number.POSITIVE_INFINITY)) {
      this.scheduleImmediate(true);
      return;
    }
    if (this.events >= (this.options.minEvents ?? Number.POSITIVE_INFINITY)) this.scheduleImmediate();
    else this.schedule();
  }

  /** Room was made (delivery, expiry): try the held messages again soon. */
  kick(): void {
    if (this.blocked.length > 0) this.schedule();
  }

  /**
   * A commit is due (its wait is over, or enough events wait): with a flash
   * budget it may wait longer, until the budget has room for it or the
   * oldest waiting message has waited the budget's maxWaitMs.
   */
  private due(): void {
    const pacer = this.options.pacer;
    if (pacer != null && this.pending.length > 0) {
      const now = performance.now();
      const left = pacer.maxWaitMs - (now - this.firstAt);
      const wait = Math.min(pacer.delayMs(), left);
      if (wait >= 1) {
        this.clearTimers();
        if (this.pacedSince === 0) this.pacedSince = now;
        this.timer = setTimeout(() => this.due(), wait);
        return;
      }
    }
    this.flush();
  }

  /** Commits what is waiting now; safe to call at any time (shutdown calls it). */
  flush(): void {
    const pacedMs = this.pacedSince === 0 ? 0 : performance.now() - this.pacedSince;
    this.pacedSince = 0;
    this.clearTimers();
    if (this.pending.length === 0 && this.blocked.length === 0) return;
    // held messages go first: they arrived first
    const batch = this.blocked.length > 0 ? [...this.blocked, ...this.pending] : this.pending;
    this.pending = [];
    this.blocked = [];
    this.events = 0;
    this.bytes = 0;

    const plan = new AdmissionPlan(
      this.limits(),
      {
        bytesOf: (route) => this.store.bytes(route),
        totalBytes: () => this.store.bytes(),
        oldestRows: (filter, limit, skip) => this.store.oldestRows(filter, limit, skip),
        readRows: (ids) => this.store.readRows(ids),
        condensedBytes: (events) => this.store.condensedBytes(events),
      },
      this.leased(),
    );
    const taken: Pending[] = [];
    for (const p of batch) (plan.admit(p.events) ? taken : this.blocked).push(p);

    const started = performance.now();
    const pacer = this.options.pacer ?? null;
    let failure: Error | null = null;
    let evicted: RemovedRow[] = [];
    const deadLetters = taken.flatMap((p) => p.deadLetters ?? []);
    const states = this.hooks.checkpoints?.() ?? [];
    if (!plan.isEmpty || deadLetters.length > 0 || states.length > 0) {
      try {
        // the publishes whose events this commit stores: a device's re-send of one is recognised from now on
        const publishes = taken.flatMap((p) => (p.publish !== undefined ? [p.publish] : []));
        const writtenBefore = pacer?.start() ?? null;
        evicted = this.store.commit(plan.commitGroups(), plan.evict, {
          deadLetters,
          states,
          keepDeadLetters: this.options.keepDeadLetters,
          publishes,
          condense: plan.condense,
        }).evicted;
        pacer?.committed(writtenBefore);
      } catch (err) {
        failure = err as Error;
        if (states.length > 0) this.hooks.checkpointsLost?.(states);
      }
    }
    if (failure !== null) {
      this.hooks.onError(failure, taken.length);
    } else {
      for (const row of evicted) this.hooks.onFull(row.route, row.events, 'evicted_oldest');
      for (const [route, n] of plan.droppedNewest) this.hooks.onFull(route, n, 'dropped_newest');
      for (const [route, n] of plan.downsampled) if (n > 0) this.hooks.onDownsampled?.(route, n);
      const stored = [...plan.groups.values()].reduce((n, l) => n + l.length, 0);
      if (taken.length > 0)
        this.hooks.onCommit({
          events: stored,
          messages: taken.length,
          durationMs: performance.now() - started,
          ...(pacedMs > 0 ? { pacedMs } : {}),
        });
    }
    for (const p of taken) p.settle(failure);
    if (this.blocked.length > 0) this.hooks.onHeld?.([...plan.blockedRoutes], this.blocked.length);
    if (this.blocked.length > 0 && this.recheck === null) {
      this.recheck = setTimeout(() => {
        this.recheck = null;
        this.due();
      }, BLOCKED_RECHECK_MS);
    }
  }

  /** Shutdown: held messages are not acknowledged; their devices send them again after the restart. */
  releaseBlocked(err: Error): void {
    const held = this.blocked;
    this.blocked = [];
    if (this.recheck !== null) clearTimeout(this.recheck);
    this.recheck = null;
    for (const p of held) p.settle(err);
  }

  /** `force`: commit without asking the flash budget (a full in-flight window waits for nothing). */
  private scheduleImmediate(force = false): void {
    if (this.immediate !== null) return;
    // held back by the flash budget: the paced timer stands unless the commit is forced
    if (this.pacedSince !== 0 && !force) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.immediate = setImmediate(() => (force ? this.flush() : this.due()));
  }

  private schedule(): void {
    if (this.timer !== null || this.immediate !== null) return;
    if (this.options.maxWaitMs === 0) this.immediate = setImmediate(() => this.due());
    else this.timer = setTimeout(() => this.due(), this.options.maxWaitMs);
  }

  private clearTimers(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.immediate !== null) clearImmediate(this.immediate);
    if (this.recheck !== null) clearTimeout(this.recheck);
    this.timer = null;
    this.immediate = null;
    this.recheck = null;
  }
}
