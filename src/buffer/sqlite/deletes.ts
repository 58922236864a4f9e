import type Database from 'better-sqlite3';
import type { SequenceLedger } from './ledger.js';
import { UsageCounts } from './usage.js';

/** Delivered rows are deleted at most this often, by a commit that comes along or by a transaction of their own. */
export const DELETE_FLUSH_MS = 250;
/** A delete that failed (a full disk) is tried again, backing off to this. */
const DELETE_RETRY_MAX_MS = 2000;

export interface RowSize {
  readonly route: string;
  readonly events: number;
  readonly bytes: number;
}

/**
 * Delivered rows are deleted in the next commit's transaction rather than in
 * one of their own: in FULL mode that saves an fsync per send and rewrites
 * the same b-tree pages once instead of twice (flash wear). Until then they
 * are invisible to every read. A crash before the delete means the rows are
 * sent again after the restart, with the same sequence numbers.
 *
 * A delete never depends on a commit succeeding: when no commit takes them
 * within DELETE_FLUSH_MS, or the commit that carried them failed (a full
 * disk refuses the insert), they go in a transaction of their own, tried
 * again until it holds. Their pages then go to SQLite's free list, where new
 * rows reuse them.
 */
export class DeferredDeletes {
  private readonly pending = new Map<number, RowSize>();
  /** removed rows still in the file, per route: stats() and usage() count them, bytes() does not */
  readonly inFile = new UsageCounts();
  private since = 0;
  private timer: NodeJS.Timeout | null = null;
  private retryMs = DELETE_FLUSH_MS;
  /** how long delivered rows wait for a commit to carry them before a transaction of their own */
  aloneAfterMs = DELETE_FLUSH_MS;
  private readonly deleteById: Database.Statement<[number]>;
  private readonly alone: () => number;

  constructor(
    private readonly db: Database.Database,
    private readonly ledger: SequenceLedger,
    private readonly now: () => number = Date.now,
  ) {
    this.deleteById = db.prepare<[number]>('DELETE FROM commits WHERE id = ?');
    this.alone = db.transaction(() => {
      this.apply();
      return this.ledger.persist(this.ledger.next);
    });
  }

  get size(): number {
    return this.pending.size;
  }

  has(id: number): boolean {
    return this.pending.has(id);
  }

  /** Marks a row delivered: hidden from reads from now on, deleted later. */
  add(id: number, row: RowSize): void {
    if (this.pending.size === 0) this.since = this.now();
    this.pending.set(id, row);
    this.inFile.account(row.route, 1, row.events, row.bytes);
  }

  /** Whether a commit now should carry the deletes: at most every DELETE_FLUSH_MS. */
  due(): boolean {
    return this.pending.size > 0 && this.now() - this.since >= DELETE_FLUSH_MS;
  }

  /** Runs the deletes; the caller owns the transaction. */
  apply(): void {
    for (const id of this.pending.keys()) this.deleteById.run(id);
  }

  /** After the transaction that applied them committed. */
  done(): void {
    this.pending.clear();
    this.inFile.clear();
    this.retryMs = DELETE_FLUSH_MS;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Writes them on their own after `ms` unless a commit takes them first. */
  schedule(ms: number = this.aloneAfterMs): void {
    if (this.timer !== null || this.pending.size === 0) return;
    this.timer = setTimeout(() => this.flush(), ms);
    this.timer.unref();
  }

  /** Writes them now in a transaction of their own. True when nothing is left to delete. */
  flush(): boolean {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.pending.size === 0 || !this.db.open) return this.pending.size === 0;
    try {
      const ceiling = this.alone();
      this.ledger.settle(this.ledger.next, ceiling);
      this.done();
      return true;
    } catch {
      // kept pending and invisible to reads; tried again (by a commit too) until the disk takes it
      this.retryMs = Math.min(DELETE_RETRY_MAX_MS, this.retryMs * 2);
      this.schedule(this.retryMs);
      return false;
    }
  }

  /** Pending rows and the rows of `skip` are hidden from reads. */
  hidden(skip?: ReadonlySet<number>): (id: number) => boolean {
    return (id) => this.pending.has(id) || (skip?.has(id) ?? false);
  }
}
