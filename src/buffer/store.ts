import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { Encoder } from 'cbor-x';
import type { RoutedEvent, SequencedEvent } from '../core/event.js';
import { EdgehaulError } from '../core/errors.js';

/**
 * The durable buffer: one SQLite file in WAL mode. Each group commit becomes
 * ONE row holding all its events as a CBOR array, so a commit writes about the
 * payload's own size instead of a B-tree entry per event (flash wear), and a
 * delivered commit is deleted with one row delete.
 *
 * Sequence numbers are gateway-wide and never repeat: `next_seq` lives in the
 * same transaction as the row it numbers, so a crash either keeps both or
 * neither.
 */
export interface StoredCommit {
  readonly id: number;
  readonly events: readonly SequencedEvent[];
  readonly bytes: number;
}

export interface BufferStats {
  readonly commits: number;
  readonly events: number;
  readonly bytes: number;
  /** received-at of the oldest buffered event, ms since epoch; null when empty */
  readonly oldestReceivedAt: number | null;
}

export interface BufferStore {
  /** Commits the events in one transaction and returns the sequence numbers they got. */
  append(events: readonly RoutedEvent[]): { firstSeq: number; lastSeq: number };
  /** Oldest commits first, whole commits, within maxEvents and maxBytes (but at least one commit if any). */
  readOldest(maxEvents: number, afterId?: number, maxBytes?: number): StoredCommit[];
  /** Removes delivered commits. */
  remove(ids: readonly number[]): void;
  stats(): BufferStats;
  close(): void;
}

const SCHEMA_VERSION = 1;

// Stored tuples rather than maps: the field names would otherwise be repeated per event on flash.
type StoredTuple = [route: string, kafkaTopic: string, key: string, topic: string, payload: Uint8Array, receivedAt: number];

export interface SqliteStoreOptions {
  synchronous: 'full' | 'normal';
}

export function openSqliteStore(path: string, options: SqliteStoreOptions): BufferStore {
  let db: Database.Database;
  try {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    db.exec(`
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT;
      CREATE TABLE IF NOT EXISTS commits (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        first_seq INTEGER NOT NULL,
        event_count INTEGER NOT NULL,
        oldest_ms INTEGER NOT NULL,
        body BLOB NOT NULL
      ) STRICT;
      INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ${SCHEMA_VERSION}), ('next_seq', 1);
    `);
  } catch (err) {
    throw new EdgehaulError('EH_ERR_STORE_OPEN', `cannot open buffer ${path}: ${(err as Error).message}`, { cause: err });
  }

  const encoder = new Encoder({ useRecords: false, tagUint8Array: false });
  const getNextSeq = db.prepare<[], { value: number }>("SELECT value FROM meta WHERE key = 'next_seq'");
  const setNextSeq = db.prepare<[number]>("UPDATE meta SET value = ? WHERE key = 'next_seq'");
  const insertCommit = db.prepare<[number, number, number, Buffer]>('INSERT INTO commits (first_seq, event_count, oldest_ms, body) VALUES (?, ?, ?, ?)');
  const selectOldest = db.prepare<[number, number], { id: number; first_seq: number; event_count: number; body: Buffer }>(
    'SELECT id, first_seq, event_count, body FROM commits WHERE id > ? ORDER BY id LIMIT ?',
  );
  const deleteCommit = db.prepare<[number]>('DELETE FROM commits WHERE id = ?');
  const totals = db.prepare<[], { commits: number; events: number | null; bytes: number | null; oldest: number | null }>(
    'SELECT count(*) AS commits, sum(event_count) AS events, sum(length(body)) AS bytes, min(oldest_ms) AS oldest FROM commits',
  );

  let nextSeq = getNextSeq.get()!.value;
  // kept in memory so that stats() costs nothing on the hot path; recomputed from the table at open
  const initial = totals.get()!;
  let stats = { commits: initial.commits, events: initial.events ?? 0, bytes: initial.bytes ?? 0 };
  const oldestRow = db.prepare<[], { oldest_ms: number }>('SELECT oldest_ms FROM commits ORDER BY id LIMIT 1');
  const sizes = new Map<number, { events: number; bytes: number; oldest: number }>();

  const appendTx = db.transaction((firstSeq: number, events: readonly RoutedEvent[], body: Buffer, oldest: number) => {
    const info = insertCommit.run(firstSeq, events.length, oldest, body);
    setNextSeq.run(firstSeq + events.length);
    return Number(info.lastInsertRowid);
  });
  const removeTx = db.transaction((ids: readonly number[]) => {
    for (const id of ids) deleteCommit.run(id);
  });

  return {
    append(events) {
      if (events.length === 0) throw new Error('append needs at least one event');
      const tuples: StoredTuple[] = events.map((e) => [e.route, e.kafkaTopic, e.key, e.topic, e.payload, e.receivedAt]);
      const body = encoder.encode(tuples);
      let oldest = events[0]!.receivedAt;
      for (const e of events) if (e.receivedAt < oldest) oldest = e.receivedAt;
      const firstSeq = nextSeq;
      let id: number;
      try {
        id = appendTx(firstSeq, events, body, oldest);
      } catch (err) {
        throw new EdgehaulError('EH_ERR_STORE_WRITE', `buffer commit failed: ${(err as Error).message}`, { cause: err });
      }
      nextSeq = firstSeq + events.length;
      sizes.set(id, { events: events.length, bytes: body.length, oldest });
      stats = { commits: stats.commits + 1, events: stats.events + events.length, bytes: stats.bytes + body.length };
      return { firstSeq, lastSeq: nextSeq - 1 };
    },

    readOldest(maxEvents, afterId = 0, maxBytes = Number.POSITIVE_INFINITY) {
      const out: StoredCommit[] = [];
      let count = 0;
      let bytes = 0;
      let cursor = afterId;
      while (count < maxEvents && bytes < maxBytes) {
        const rows = selectOldest.all(cursor, 64);
        if (rows.length === 0) break;
        for (const row of rows) {
          if (count > 0 && (count + row.event_count > maxEvents || bytes + row.body.length > maxBytes)) return out;
          const tuples = encoder.decode(row.body) as StoredTuple[];
          const events = tuples.map(([route, kafkaTopic, key, topic, payload, receivedAt], i): SequencedEvent => ({
            seq: row.first_seq + i,
            route,
            kafkaTopic,
            key,
            topic,
            payload: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength),
            receivedAt,
          }));
          out.push({ id: row.id, events, bytes: row.body.length });
          if (!sizes.has(row.id)) sizes.set(row.id, { events: row.event_count, bytes: row.body.length, oldest: events.reduce((m, e) => Math.min(m, e.receivedAt), Infinity) });
          count += row.event_count;
          bytes += row.body.length;
          cursor = row.id;
        }
      }
      return out;
    },

    remove(ids) {
      removeTx(ids);
      for (const id of ids) {
        const s = sizes.get(id);
        if (s === undefined) continue;
        sizes.delete(id);
        stats = { commits: stats.commits - 1, events: stats.events - s.events, bytes: stats.bytes - s.bytes };
      }
    },

    stats() {
      if (stats.commits === 0) return { ...stats, oldestReceivedAt: null };
      // the oldest row is the one the forwarder reads next: a primary-key lookup, not a scan
      const row = oldestRow.get();
      return { ...stats, oldestReceivedAt: row?.oldest_ms ?? null };
    },

    close() {
      if (db.open) db.close();
    },
  };
}
