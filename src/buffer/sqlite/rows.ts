import type Database from 'better-sqlite3';
import type { CondensedRow, RowInfo, SequencedRow } from '../store.js';
import type { RowCodec } from './codec.js';
import type { RowSize } from './deletes.js';

export interface BodyRow {
  readonly id: number;
  readonly route: string;
  readonly kafka_topic: string;
  readonly priority: number;
  readonly first_seq: number;
  readonly event_count: number;
  readonly body: Buffer;
}

const INFO_COLUMNS = 'id, route, priority, event_count AS events, length(body) AS bytes, bucket_ms AS bucketMs';

/** The `commits` table: one row per route per group commit. */
export class CommitRows {
  private readonly insertRow: Database.Statement<[string, string, number, number, number, number, number, Buffer]>;
  private readonly insertWithId: Database.Statement<
    [number, string, string, number, number, number, number, number, Buffer, number]
  >;
  private readonly selectById: Database.Statement<[number], BodyRow>;
  private readonly selectNext: Database.Statement<[number, number, number, number], BodyRow>;
  private readonly selectOldestOfRoute: Database.Statement<[string, number, number], RowInfo>;
  private readonly selectOldestBelow: Database.Statement<[number, number, number, number], RowInfo>;
  private readonly expired: Database.Statement<[string, number, number], RowInfo>;
  private readonly deleteRow: Database.Statement<[number], RowSize>;
  private readonly oldestOf: Database.Statement<[string, number], { id: number; oldest_ms: number }>;
  private readonly sizeOf: Database.Statement<[number], RowSize>;
  private readonly perRoute: Database.Statement<[], { route: string; commits: number; events: number; bytes: number }>;

  constructor(
    db: Database.Database,
    private readonly codec: RowCodec,
  ) {
    this.insertRow = db.prepare(
      'INSERT INTO commits (route, kafka_topic, priority, first_seq, event_count, oldest_ms, newest_ms, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    );
    this.insertWithId = db.prepare(
      'INSERT INTO commits (id, route, kafka_topic, priority, first_seq, event_count, oldest_ms, newest_ms, body, bucket_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    this.selectById = db.prepare(
      'SELECT id, route, kafka_topic, priority, first_seq, event_count, body FROM commits WHERE id = ?',
    );
    this.selectNext = db.prepare(
      `SELECT id, route, kafka_topic, priority, first_seq, event_count, body FROM commits
     WHERE (priority < ? OR (priority = ? AND id > ?)) AND priority >= ? ORDER BY priority DESC, id LIMIT 64`,
    );
    this.selectOldestOfRoute = db.prepare(
      `SELECT ${INFO_COLUMNS} FROM commits WHERE route = ? AND id > ? ORDER BY id LIMIT ?`,
    );
    this.selectOldestBelow = db.prepare(
      `SELECT ${INFO_COLUMNS} FROM commits WHERE priority < ? AND (priority > ? OR (priority = ? AND id > ?)) ORDER BY priority, id LIMIT 64`,
    );
    this.expired = db.prepare(
      `SELECT ${INFO_COLUMNS} FROM commits WHERE route = ? AND newest_ms < ? AND id > ? ORDER BY id LIMIT 256`,
    );
    this.deleteRow = db.prepare(
      'DELETE FROM commits WHERE id = ? RETURNING route, event_count AS events, length(body) AS bytes',
    );
    this.oldestOf = db.prepare('SELECT id, oldest_ms FROM commits WHERE route = ? AND id > ? ORDER BY id LIMIT 16');
    this.sizeOf = db.prepare('SELECT route, event_count AS events, length(body) AS bytes FROM commits WHERE id = ?');
    this.perRoute = db.prepare(
      'SELECT route, count(*) AS commits, sum(event_count) AS events, sum(length(body)) AS bytes FROM commits GROUP BY route',
    );
  }

  /** Inserts one row; the caller owns the transaction. */
  insert(r: SequencedRow): { id: number; bytes: number } {
    const body = this.codec.encode(r.events);
    let oldest = Number.POSITIVE_INFINITY;
    let newest = 0;
    for (const e of r.events) {
      if (e.receivedAt < oldest) oldest = e.receivedAt;
      if (e.receivedAt > newest) newest = e.receivedAt;
    }
    const info = this.insertRow.run(
      r.route,
      r.events[0]?.kafkaTopic ?? '',
      r.priority,
      r.firstSeq,
      r.events.length,
      oldest,
      newest,
      body,
    );
    return { id: Number(info.lastInsertRowid), bytes: body.length };
  }

  /** Inserts a row of aggregates under a given id (one it replaces, deleted in the same transaction). */
  insertCondensed(r: CondensedRow): { id: number; bytes: number } {
    const body = this.codec.encode(r.events, true);
    let oldest = Number.POSITIVE_INFINITY;
    let newest = 0;
    let firstSeq = Number.POSITIVE_INFINITY;
    for (const e of r.events) {
      oldest = Math.min(oldest, e.receivedAt);
      newest = Math.max(newest, e.receivedAt);
      firstSeq = Math.min(firstSeq, e.seq);
    }
    this.insertWithId.run(
      r.id,
      r.route,
      r.events[0]?.kafkaTopic ?? '',
      r.priority,
      firstSeq,
      r.events.length,
      oldest,
      newest,
      body,
      r.bucketMs,
    );
    return { id: r.id, bytes: body.length };
  }

  /** Reads rows by id (for downsampling), in id order. */
  byIds(ids: readonly number[]): BodyRow[] {
    const out: BodyRow[] = [];
    for (const id of [...ids].sort((a, b) => a - b)) {
      const row = this.selectById.get(id);
      if (row !== undefined) out.push(row);
    }
    return out;
  }

  /** Deletes a row now (an eviction); the caller owns the transaction. */
  delete(id: number): RowSize | undefined {
    return this.deleteRow.get(id);
  }

  /** Up to 64 rows after the cursor, highest priority first then oldest, at least `minPriority`. */
  next(cursor: { priority: number; id: number }, minPriority: number): BodyRow[] {
    return this.selectNext.all(cursor.priority, cursor.priority, cursor.id, minPriority);
  }

  oldestOfRoute(route: string, afterId: number, limit: number): RowInfo[] {
    return this.selectOldestOfRoute.all(route, afterId, limit);
  }

  /** Up to 64 rows below `priority` after the cursor, lowest priority first then oldest. */
  oldestBelow(priority: number, cursor: { priority: number; id: number }): RowInfo[] {
    return this.selectOldestBelow.all(priority, cursor.priority, cursor.priority, cursor.id);
  }

  expiredRows(route: string, cutoffMs: number): RowInfo[] {
    return this.expired.all(route, cutoffMs, 0);
  }

  /** Up to 16 rows of a route after `afterId`, oldest first, with their oldest event's time. */
  oldestTimes(route: string, afterId: number): Array<{ id: number; oldest_ms: number }> {
    return this.oldestOf.all(route, afterId);
  }

  size(id: number): RowSize | undefined {
    return this.sizeOf.get(id);
  }

  usageByRoute(): Array<{ route: string; commits: number; events: number; bytes: number }> {
    return this.perRoute.all();
  }
}
