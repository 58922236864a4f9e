import { statSync } from 'node:fs';
import type Database from 'better-sqlite3';
import type { SequencedEvent } from '../../core/event.js';
import { EdgehaulError } from '../../core/errors.js';
import type {
  BufferStats,
  CommitExtras,
  CommitGroup,
  DeadLetterRecord,
  MaintenanceReport,
  PublishId,
  RemovedRow,
  RouteUsage,
  RowInfo,
  SequencedRow,
  SqliteBufferStore,
  StateRecord,
  StoredCommit,
} from '../store.js';
import { RowCodec } from './codec.js';
import { DeferredDeletes, DELETE_FLUSH_MS } from './deletes.js';
import { ExtrasTables } from './extras.js';
import { readIncarnation, SequenceLedger } from './ledger.js';
import { PublishLedger } from './publishes.js';
import { CommitRows } from './rows.js';
import { capFileSize, openDatabase } from './schema.js';
import { UsageCounts } from './usage.js';

export interface SqliteStoreOptions {
  synchronous: 'full' | 'normal';
  /**
   * Hard cap on the database file (SQLite max_page_count): an insert beyond it
   * fails and is not acknowledged. The full policy keeps usage well below it;
   * this only guards the disk if accounting were ever wrong.
   */
  maxFileBytes?: number;
  /** First sequence number of a new database (default 1). */
  firstSeq?: number;
}

/**
 * The durable buffer: one SQLite file in WAL mode. Each group commit becomes
 * one row per route holding that route's events as a CBOR array, so a commit
 * writes about the payload's own size instead of a B-tree entry per event
 * (flash wear), and a delivered commit is deleted with one row delete.
 *
 * Sequence numbers are gateway-wide and never repeat (SequenceLedger). Within
 * a commit each route's events get a contiguous range, so a row stores only
 * its first sequence number.
 *
 * Evictions (a full buffer's policy) happen in the same transaction as the
 * insert that needed the room, so a crash can never count a drop that did not
 * happen or lose room it made.
 */
export function openSqliteStore(path: string, options: SqliteStoreOptions): SqliteBufferStore {
  let db: Database.Database;
  let incarnation: string;
  try {
    db = openDatabase(path, options);
    incarnation = readIncarnation(db);
    capFileSize(db, options.maxFileBytes);
  } catch (err) {
    throw new EdgehaulError('EH_ERR_STORE_OPEN', `cannot open buffer ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return new SqliteStore(path, db, incarnation);
}

interface Inserted {
  readonly route: string;
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly events: number;
  readonly bytes: number;
  /** a row of aggregates (its numbers were handed out before) */
  readonly condensed?: boolean;
}

class SqliteStore implements SqliteBufferStore {
  private readonly codec = new RowCodec();
  private readonly rows: CommitRows;
  private readonly extras: ExtrasTables;
  private readonly publishes: PublishLedger;
  private readonly seq: SequenceLedger;
  private readonly deletes: DeferredDeletes;
  /** live rows per route (removed rows not counted), computed from the table at open */
  private readonly usageCounts = new UsageCounts();
  private readonly commitTx: (
    groups: readonly CommitGroup[],
    evict: readonly number[],
    withDeletes: boolean,
    extras: CommitExtras | undefined,
  ) => { evicted: RemovedRow[]; condensed: RemovedRow[]; inserted: Inserted[]; nextSeq: number; ceiling: number };
  private readonly insertSequencedTx: (
    rows: readonly SequencedRow[],
  ) => Array<{ id: number; bytes: number; route: string; events: number }>;

  constructor(
    private readonly path: string,
    private readonly db: Database.Database,
    readonly incarnation: string,
  ) {
    this.rows = new CommitRows(db, this.codec);
    this.extras = new ExtrasTables(db);
    this.publishes = new PublishLedger(db);
    this.seq = new SequenceLedger(db);
    this.deletes = new DeferredDeletes(db, this.seq);
    for (const r of this.rows.usageByRoute()) this.usageCounts.account(r.route, r.commits, r.events, r.bytes);

    this.commitTx = db.transaction(
      (
        groups: readonly CommitGroup[],
        evict: readonly number[],
        withDeletes: boolean,
        extras: CommitExtras | undefined,
      ) => {
        if (withDeletes) this.deletes.apply();
        this.extras.write(extras);
        if (extras?.publishes !== undefined && extras.publishes.length > 0) this.publishes.write(extras.publishes);
        const evicted: RemovedRow[] = [];
        for (const id of evict) {
          const row = this.rows.delete(id);
          if (row !== undefined) evicted.push({ id, ...row });
        }
        const inserted: Inserted[] = [];
        const condensed: RemovedRow[] = [];
        for (const c of extras?.condense ?? []) {
          for (const id of c.remove) {
            const row = this.rows.delete(id);
            if (row !== undefined) condensed.push({ id, ...row });
          }
          for (const r of c.rows) {
            const { bytes } = this.rows.insertCondensed(r);
            const seqs = r.events.map((e) => e.seq);
            inserted.push({
              route: r.route,
              firstSeq: Math.min(...seqs),
              lastSeq: Math.max(...seqs),
              events: r.events.length,
              bytes,
              condensed: true,
            });
          }
        }
        let seq = this.seq.next;
        for (const g of groups) {
          const { bytes } = this.rows.insert({ ...g, firstSeq: seq });
          inserted.push({
            route: g.route,
            firstSeq: seq,
            lastSeq: seq + g.events.length - 1,
            events: g.events.length,
            bytes,
          });
          seq += g.events.length;
        }
        // rows that go take their evidence of the numbers handed out with them: write it down
        const deleting = withDeletes || evict.length > 0 || condensed.length > 0;
        const ceiling = deleting ? this.seq.persist(seq) : this.seq.persisted;
        return { evicted, condensed, inserted, nextSeq: seq, ceiling };
      },
    );
    this.insertSequencedTx = db.transaction((rows: readonly SequencedRow[]) =>
      rows.map((r) => ({ ...this.rows.insert(r), route: r.route, events: r.events.length })),
    );
  }

  allocate(count: number): number {
    return this.seq.allocate(count);
  }

  insertSequenced(rows: readonly SequencedRow[]): number[] {
    let inserted: Array<{ id: number; route: string; events: number; bytes: number }>;
    try {
      inserted = this.insertSequencedTx(rows);
    } catch (err) {
      throw new EdgehaulError('EH_ERR_STORE_WRITE', `buffer spill failed: ${(err as Error).message}`, { cause: err });
    }
    for (const r of inserted) this.usageCounts.account(r.route, 1, r.events, r.bytes);
    return inserted.map((r) => r.id);
  }

  commit(
    groups: readonly CommitGroup[],
    evict: readonly number[] = [],
    extras?: CommitExtras,
  ): ReturnType<SqliteBufferStore['commit']> {
    // deletes ride along at most every DELETE_FLUSH_MS: fewer transactions that touch the index and meta pages
    let withDeletes = this.deletes.due();
    const nonEmpty = groups.filter((g) => g.events.length > 0);
    let result: ReturnType<SqliteStore['commitTx']>;
    try {
      result = this.commitTx(nonEmpty, evict, withDeletes, extras);
    } catch (err) {
      // the deletes must not wait for inserts the disk refuses: alone they need less room, and free
      // pages the commit can then reuse, so it is tried once more
      if (this.deletes.size === 0 || !this.deletes.flush())
        throw new EdgehaulError('EH_ERR_STORE_WRITE', `buffer commit failed: ${(err as Error).message}`, {
          cause: err,
        });
      withDeletes = false;
      try {
        result = this.commitTx(nonEmpty, evict, false, extras);
      } catch (again) {
        throw new EdgehaulError('EH_ERR_STORE_WRITE', `buffer commit failed: ${(again as Error).message}`, {
          cause: again,
        });
      }
    }
    this.seq.settle(result.nextSeq, result.ceiling);
    if (extras?.publishes !== undefined) this.publishes.remember(extras.publishes);
    if (withDeletes) this.deletes.done();
    for (const r of [...result.evicted, ...result.condensed])
      this.usageCounts.account(r.route, -1, -r.events, -r.bytes);
    for (const r of result.inserted) this.usageCounts.account(r.route, 1, r.events, r.bytes);
    return {
      evicted: result.evicted,
      ranges: result.inserted
        .filter((r) => r.condensed !== true)
        .map(({ route, firstSeq, lastSeq }) => ({ route, firstSeq, lastSeq })),
    };
  }

  readNext(
    maxEvents: number,
    maxBytes: number,
    skip?: ReadonlySet<number>,
    minPriority = Number.MIN_SAFE_INTEGER,
  ): StoredCommit[] {
    const isHidden = this.deletes.hidden(skip);
    const out: StoredCommit[] = [];
    let count = 0;
    let bytes = 0;
    let cursor = { priority: Number.MAX_SAFE_INTEGER, id: 0 };
    while (count < maxEvents && bytes < maxBytes) {
      const rows = this.rows.next(cursor, minPriority);
      if (rows.length === 0) break;
      for (const row of rows) {
        cursor = { priority: row.priority, id: row.id };
        if (isHidden(row.id)) continue;
        if (count > 0 && count + row.event_count > maxEvents) return out;
        // the limit is on what the events take once decoded: a compressed row may hold ten times its size
        const raw = this.codec.raw(row.body);
        if (count > 0 && bytes + raw.length > maxBytes) return out;
        out.push({
          id: row.id,
          route: row.route,
          priority: row.priority,
          events: this.codec.decode(raw, row),
          bytes: raw.length,
        });
        count += row.event_count;
        bytes += raw.length;
      }
    }
    return out;
  }

  readRows(ids: readonly number[]): StoredCommit[] {
    return this.rows.byIds(ids.filter((id) => !this.deletes.has(id))).map((row) => {
      const raw = this.codec.raw(row.body);
      return {
        id: row.id,
        route: row.route,
        priority: row.priority,
        events: this.codec.decode(raw, row),
        bytes: raw.length,
      };
    });
  }

  condensedBytes(events: readonly SequencedEvent[]): number {
    return this.codec.encode(events, true).length;
  }

  oldestRows(
    filter: { route: string } | { belowPriority: number },
    limit: number,
    skip?: ReadonlySet<number>,
  ): RowInfo[] {
    const isHidden = this.deletes.hidden(skip);
    const out: RowInfo[] = [];
    if ('route' in filter) {
      let after = 0;
      while (out.length < limit) {
        const rows = this.rows.oldestOfRoute(filter.route, after, 64);
        if (rows.length === 0) break;
        for (const r of rows) if (!isHidden(r.id) && out.length < limit) out.push(r);
        after = rows.at(-1)!.id;
      }
      return out;
    }
    let cursor = { priority: Number.MIN_SAFE_INTEGER, id: 0 };
    while (out.length < limit) {
      const rows = this.rows.oldestBelow(filter.belowPriority, cursor);
      if (rows.length === 0) break;
      for (const r of rows) if (!isHidden(r.id) && out.length < limit) out.push(r);
      cursor = { priority: rows.at(-1)!.priority, id: rows.at(-1)!.id };
    }
    return out;
  }

  expiredRows(route: string, cutoffMs: number, skip?: ReadonlySet<number>): RowInfo[] {
    const isHidden = this.deletes.hidden(skip);
    return this.rows.expiredRows(route, cutoffMs).filter((r) => !isHidden(r.id));
  }

  setDeleteDelay(ms: number): void {
    this.deletes.aloneAfterMs = Math.max(DELETE_FLUSH_MS, ms);
  }

  remove(ids: readonly number[]): RemovedRow[] {
    const removed: RemovedRow[] = [];
    for (const id of ids) {
      if (this.deletes.has(id)) continue;
      const row = this.rows.size(id);
      if (row === undefined) continue;
      this.deletes.add(id, row);
      this.usageCounts.account(row.route, -1, -row.events, -row.bytes);
      removed.push({ id, ...row });
    }
    // an idle link still gets its deletes written soon
    this.deletes.schedule();
    return removed;
  }

  isResend(id: PublishId): boolean {
    return this.publishes.has(id);
  }

  rememberPublishes(publishes: readonly PublishId[]): void {
    this.publishes.remember(publishes);
  }

  recentDeadLetters(limit: number): DeadLetterRecord[] {
    return this.extras.recentDeadLetters(limit);
  }

  loadStates(): Array<StateRecord & { readonly state: Buffer }> {
    return this.extras.loadStates();
  }

  deadLetterCount(): number {
    return this.extras.deadLetterCount();
  }

  stats(): BufferStats {
    let commits = 0;
    let events = 0;
    let bytes = 0;
    let oldest: number | null = null;
    for (const route of this.usageCounts.routes()) {
      const o = this.firstLive(route);
      if (o !== null && (oldest === null || o < oldest)) oldest = o;
    }
    for (const u of [...this.usageCounts.values(), ...this.deletes.inFile.values()]) {
      commits += u.commits;
      events += u.events;
      bytes += u.bytes;
    }
    return { commits, events, bytes, oldestReceivedAt: oldest };
  }

  bytes(route?: string): number {
    return this.usageCounts.bytes(route);
  }

  usage(): ReadonlyMap<string, RouteUsage> {
    const out = new Map<string, RouteUsage>();
    for (const route of new Set([...this.usageCounts.routes(), ...this.deletes.inFile.routes()])) {
      const u = this.usageCounts.get(route) ?? { commits: 0, events: 0, bytes: 0 };
      const p = this.deletes.inFile.get(route) ?? { commits: 0, events: 0, bytes: 0 };
      out.set(route, {
        commits: u.commits + p.commits,
        events: u.events + p.events,
        bytes: u.bytes + p.bytes,
        oldestReceivedAt: this.usageCounts.has(route) ? this.firstLive(route) : null,
      });
    }
    return out;
  }

  fileBytes(): number {
    const pages = this.db.pragma('page_count', { simple: true }) as number;
    const pageSize = this.db.pragma('page_size', { simple: true }) as number;
    return pages * pageSize;
  }

  reusableBytes(): number {
    const free = this.db.pragma('freelist_count', { simple: true }) as number;
    const pageSize = this.db.pragma('page_size', { simple: true }) as number;
    return free * pageSize;
  }

  maintain(): MaintenanceReport {
    const started = Date.now();
    this.deletes.flush();
    let walBytes = 0;
    try {
      walBytes = statSync(`${this.path}-wal`).size;
    } catch {
      // no WAL file right now
    }
    const [cp] = this.db.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number }>;
    this.db.pragma('optimize');
    return { busy: (cp?.busy ?? 0) !== 0, wal_bytes_before: walBytes, ms: Date.now() - started };
  }

  close(): void {
    this.deletes.flush();
    if (this.db.open) this.db.close();
  }

  /** received-at of the route's oldest event not waiting for its delete */
  private firstLive(route: string): number | null {
    let after = 0;
    for (;;) {
      const rows = this.rows.oldestTimes(route, after);
      if (rows.length === 0) return null;
      for (const r of rows) if (!this.deletes.has(r.id)) return r.oldest_ms;
      after = rows.at(-1)!.id;
    }
  }
}
