import { randomBytes } from 'node:crypto';
import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import Database from 'better-sqlite3';
import { Encoder } from 'cbor-x';
import type { RoutedEvent, SequencedEvent } from '../core/event.js';
import { EdgehaulError } from '../core/errors.js';

/**
 * The durable buffer: one SQLite file in WAL mode. Each group commit becomes
 * one row per route holding that route's events as a CBOR array, so a commit
 * writes about the payload's own size instead of a B-tree entry per event
 * (flash wear), and a delivered commit is deleted with one row delete.
 *
 * Sequence numbers are gateway-wide and never repeat: the rows themselves
 * carry the numbers they used, and `meta.next_seq` is written in the same
 * transaction as any delete, so at every commit point the larger of the two is
 * above every number ever handed out. Within a commit each route's events get
 * a contiguous range, so a row stores only its first sequence number.
 *
 * Evictions (a full buffer's policy) happen in the same transaction as the
 * insert that needed the room, so a crash can never count a drop that did not
 * happen or lose room it made.
 */
export interface StoredCommit {
  /** Row id: the identity used to remove or evict the commit. */
  readonly id: number;
  readonly route: string;
  readonly priority: number;
  readonly events: readonly SequencedEvent[];
  /** Size of the events as stored, before compression: what reading and sending them takes. */
  readonly bytes: number;
}

export interface RouteUsage {
  readonly commits: number;
  readonly events: number;
  readonly bytes: number;
  /** received-at of the route's oldest buffered event, ms since epoch; null when empty */
  readonly oldestReceivedAt: number | null;
}

export type BufferStats = RouteUsage;

/** Events of one route in one commit. */
export interface CommitGroup {
  readonly route: string;
  readonly priority: number;
  readonly events: readonly RoutedEvent[];
  /** memory: kept in RAM (acknowledged without an fsync) until sent or spilled; default disk. */
  readonly durability?: 'disk' | 'memory';
}

/** Rows that already have sequence numbers (spilled from memory). */
export interface SequencedRow {
  readonly route: string;
  readonly priority: number;
  readonly firstSeq: number;
  readonly events: readonly RoutedEvent[];
}

/** A row removed without delivery, for loss accounting. */
export interface RemovedRow {
  readonly id: number;
  readonly route: string;
  readonly events: number;
  readonly bytes: number;
}

/** A row as eviction planning sees it: no body decoded. */
export interface RowInfo {
  readonly id: number;
  readonly route: string;
  readonly priority: number;
  readonly events: number;
  readonly bytes: number;
}

/** An input a transform step could not process, kept for `edgehaul inspect`. */
export interface DeadLetterRecord {
  readonly at: number;
  readonly route: string;
  /** `<index>:<kind>` of the step that failed, e.g. `0:decode` */
  readonly step: string;
  readonly reason: string;
  readonly topic: string;
  readonly clientId: string;
  /** The payload as received, cut to DEAD_LETTER_PAYLOAD_BYTES here (the Kafka copy is whole). */
  readonly payload: Buffer;
}

/** A transform step's checkpoint (open windows); null state removes it. */
export interface StateRecord {
  readonly route: string;
  readonly step: number;
  readonly state: Buffer | null;
}

/** Written in the same transaction as a commit's rows. */
export interface CommitExtras {
  readonly deadLetters?: readonly DeadLetterRecord[];
  /** How many dead letters the table keeps at most (the oldest go). */
  readonly keepDeadLetters?: number;
  readonly states?: readonly StateRecord[];
  /** QoS 1/2 publishes whose events this commit stores: their re-sends are recognised (isResend) once it is durable. */
  readonly publishes?: readonly PublishId[];
}

/** What identifies a device's PUBLISH for re-send recognition. */
export interface PublishId {
  readonly clientId: string;
  readonly packetId: number;
  /** publishDigest(topic, payload) */
  readonly digest: number;
}

/**
 * FNV-1a (32 bits) over the topic and the payload: with the client id and the
 * packet id, what tells a re-send of a committed PUBLISH from a new one.
 */
export function publishDigest(topic: string, payload: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < topic.length; i++) h = Math.imul(h ^ topic.charCodeAt(i), 0x01000193);
  h = Math.imul(h ^ 0xff, 0x01000193);
  for (let i = 0; i < payload.length; i++) h = Math.imul(h ^ payload[i]!, 0x01000193);
  return h >>> 0;
}

export const DEAD_LETTER_PAYLOAD_BYTES = 4096;

export interface BufferStore {
  /**
   * This buffer file's incarnation: 16 random hex digits drawn when the
   * database was created and stored in it. Sequence numbers restart when the
   * file is lost; the pair (incarnation, seq) never repeats.
   */
  readonly incarnation: string;
  /**
   * One transaction: removes `evict` (rows chosen by the full policy),
   * inserts one row per group, and writes the extras (dead letters, transform
   * checkpoints). Returns the evicted rows as they were and the sequence range
   * of every group.
   */
  commit(groups: readonly CommitGroup[], evict?: readonly number[], extras?: CommitExtras): { evicted: RemovedRow[]; ranges: Array<{ route: string; firstSeq: number; lastSeq: number }> };
  /**
   * True when a PUBLISH with this client id, packet id and digest was
   * committed (CommitExtras.publishes) among the client's recent publishes,
   * also before a restart: a device's re-send (DUP) of it needs no second event.
   */
  isResend(id: PublishId): boolean;
  /** The newest dead letters first. */
  recentDeadLetters(limit: number): DeadLetterRecord[];
  /** Dead letters kept for inspection. */
  deadLetterCount(): number;
  /** Every stored transform checkpoint. */
  loadStates(): Array<StateRecord & { readonly state: Buffer }>;
  /**
   * Next commits to send: highest priority first, then oldest; whole commits within the limits (at least one).
   * With `minPriority`, only rows of at least that priority (upload windows: what may go while closed).
   */
  readNext(maxEvents: number, maxBytes: number, skip?: ReadonlySet<number>, minPriority?: number): StoredCommit[];
  /** Oldest rows of a route (or of all routes below a priority), without bodies: candidates for eviction. */
  oldestRows(filter: { route: string } | { belowPriority: number }, limit: number, skip?: ReadonlySet<number>): RowInfo[];
  /** Rows of `route` whose newest event was received before `cutoffMs`. */
  expiredRows(route: string, cutoffMs: number, skip?: ReadonlySet<number>): RowInfo[];
  /** Removes rows (delivered, or expired by the caller); returns what was removed. */
  remove(ids: readonly number[]): RemovedRow[];
  /**
   * What the file holds: rows removed (delivered) count until their delete is
   * committed, so these figures agree with the file at every moment.
   */
  stats(): BufferStats;
  usage(): ReadonlyMap<string, RouteUsage>;
  /** Stored bytes of one route, or of all routes, not counting removed rows; from memory, free to call. */
  bytes(route?: string): number;
  /** Bytes of the database file and its WAL. */
  fileBytes(): number;
  /** Bytes of free pages inside the database file: room that new rows take before the file grows. */
  reusableBytes(): number;
  close(): void;
}

/** What the memory tier needs of the SQLite store besides BufferStore. */
export interface SqliteBufferStore extends BufferStore {
  /**
   * Hands out `count` sequence numbers without storing events. The persisted
   * counter is moved ahead in blocks, so this writes to disk about once per
   * SEQ_RESERVE numbers, and a crash can never lead to a number handed out twice.
   */
  allocate(count: number): number;
  /** Stores rows that already have their sequence numbers; returns their row ids in order. */
  insertSequenced(rows: readonly SequencedRow[]): number[];
  /** Scheduled upkeep: WAL checkpoint (TRUNCATE) and PRAGMA optimize. */
  maintain(): MaintenanceReport;
}

export interface MaintenanceReport {
  /** the checkpoint could not finish (a reader held the WAL); it is tried again next time */
  readonly busy: boolean;
  /** size of the WAL file before the checkpoint truncated it */
  readonly wal_bytes_before: number;
  readonly ms: number;
}

export const SEQ_RESERVE = 100_000;

/** Delivered rows are deleted at most this often, by a commit that comes along or by a transaction of their own. */
const DELETE_FLUSH_MS = 250;
/** A delete that failed (a full disk) is tried again, backing off to this. */
const DELETE_RETRY_MAX_MS = 2000;

const SCHEMA_VERSION = 3;

// Stored tuples rather than maps: the field names would otherwise be repeated per event on flash.
// Route and Kafka topic are the same for every event of a row, so they live in the row's columns.
// A fifth element 1 marks a payload that is a CBOR-encoded value (a transform's output); a sixth
// (with the fifth 0 or 1) holds the route's topic captures.
type StoredTuple = [key: string, topic: string, payload: Uint8Array, receivedAt: number, encoded?: 0 | 1, captures?: Record<string, string>];
/** Rows written by schema version 1 carried route and Kafka topic in every tuple. */
type LegacyTuple = [route: string, kafkaTopic: string, key: string, topic: string, payload: Uint8Array, receivedAt: number];

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

export function openSqliteStore(path: string, options: SqliteStoreOptions): SqliteBufferStore {
  let db: Database.Database;
  let incarnation: string;
  try {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    db = new Database(path);
    // small pages: a commit rewrites whole pages (twice in WAL mode), so a small commit on 4 KiB
    // pages writes ~16 KiB; only takes effect when the file is created
    db.pragma('page_size = 1024');
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    // after a checkpoint the WAL is cut back, so a burst does not leave a large file behind
    db.pragma('journal_size_limit = 8388608');
    migrate(db, options.firstSeq ?? 1);
    incarnation = readIncarnation(db);
    if (options.maxFileBytes !== undefined) {
      const pageSize = db.pragma('page_size', { simple: true }) as number;
      db.pragma(`max_page_count = ${Math.max(64, Math.ceil(options.maxFileBytes / pageSize))}`);
    }
  } catch (err) {
    throw new EdgehaulError('EH_ERR_STORE_OPEN', `cannot open buffer ${path}: ${(err as Error).message}`, { cause: err });
  }

  const encoder = new Encoder({ useRecords: false, tagUint8Array: false });
  const getNextSeq = db.prepare<[], { value: number }>("SELECT value FROM meta WHERE key = 'next_seq'");
  const setNextSeq = db.prepare<[number]>("UPDATE meta SET value = ? WHERE key = 'next_seq'");
  const insertRow = db.prepare<[string, string, number, number, number, number, number, Buffer]>(
    'INSERT INTO commits (route, kafka_topic, priority, first_seq, event_count, oldest_ms, newest_ms, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
  );
  const selectNext = db.prepare<[number, number, number, number], { id: number; route: string; kafka_topic: string; priority: number; first_seq: number; event_count: number; body: Buffer }>(
    `SELECT id, route, kafka_topic, priority, first_seq, event_count, body FROM commits
     WHERE (priority < ? OR (priority = ? AND id > ?)) AND priority >= ? ORDER BY priority DESC, id LIMIT 64`,
  );
  const infoColumns = 'id, route, priority, event_count AS events, length(body) AS bytes';
  const oldestOfRoute = db.prepare<[string, number, number], RowInfo>(`SELECT ${infoColumns} FROM commits WHERE route = ? AND id > ? ORDER BY id LIMIT ?`);
  const oldestBelow = db.prepare<[number, number, number, number], RowInfo>(
    `SELECT ${infoColumns} FROM commits WHERE priority < ? AND (priority > ? OR (priority = ? AND id > ?)) ORDER BY priority, id LIMIT 64`,
  );
  const expired = db.prepare<[string, number, number], RowInfo>(`SELECT ${infoColumns} FROM commits WHERE route = ? AND newest_ms < ? AND id > ? ORDER BY id LIMIT 256`);
  const deleteRow = db.prepare<[number], { route: string; events: number; bytes: number }>(
    'DELETE FROM commits WHERE id = ? RETURNING route, event_count AS events, length(body) AS bytes',
  );
  const oldestOf = db.prepare<[string, number], { id: number; oldest_ms: number }>('SELECT id, oldest_ms FROM commits WHERE route = ? AND id > ? ORDER BY id LIMIT 16');
  const sizeOf = db.prepare<[number], { route: string; events: number; bytes: number }>('SELECT route, event_count AS events, length(body) AS bytes FROM commits WHERE id = ?');
  const deleteById = db.prepare<[number]>('DELETE FROM commits WHERE id = ?');
  const insertDeadLetter = db.prepare<[number, string, string, string, string, string, Buffer]>(
    'INSERT INTO dead_letters (at, route, step, reason, topic, client_id, payload) VALUES (?, ?, ?, ?, ?, ?, ?)',
  );
  const trimDeadLetters = db.prepare<[number]>('DELETE FROM dead_letters WHERE id <= (SELECT max(id) FROM dead_letters) - ?');
  const selectDeadLetters = db.prepare<[number], { at: number; route: string; step: string; reason: string; topic: string; client_id: string; payload: Buffer }>(
    'SELECT at, route, step, reason, topic, client_id, payload FROM dead_letters ORDER BY id DESC LIMIT ?',
  );
  const countDeadLetters = db.prepare<[], { n: number }>('SELECT count(*) AS n FROM dead_letters');
  const upsertState = db.prepare<[string, number, Buffer]>('INSERT OR REPLACE INTO transform_state (route, step, state) VALUES (?, ?, ?)');
  const deleteState = db.prepare<[string, number]>('DELETE FROM transform_state WHERE route = ? AND step = ?');
  const selectStates = db.prepare<[], { route: string; step: number; state: Buffer }>('SELECT route, step, state FROM transform_state');
  const writeExtras = (extras: CommitExtras | undefined): void => {
    if (extras === undefined) return;
    const letters = extras.deadLetters ?? [];
    for (const d of letters) {
      const payload = d.payload.length > DEAD_LETTER_PAYLOAD_BYTES ? d.payload.subarray(0, DEAD_LETTER_PAYLOAD_BYTES) : d.payload;
      insertDeadLetter.run(d.at, d.route, d.step, d.reason, d.topic, d.clientId, payload);
    }
    if (letters.length > 0) trimDeadLetters.run(extras.keepDeadLetters ?? 1000);
    for (const st of extras.states ?? []) {
      if (st.state === null) deleteState.run(st.route, st.step);
      else upsertState.run(st.route, st.step, st.state);
    }
  };
  const ledger = new PublishLedger(db);
  const perRoute = db.prepare<[], { route: string; commits: number; events: number; bytes: number }>(
    'SELECT route, count(*) AS commits, sum(event_count) AS events, sum(length(body)) AS bytes FROM commits GROUP BY route',
  );

  /**
   * `meta.next_seq` is written only by transactions that delete rows (and by
   * allocate): an insert-only commit leaves the evidence in its own rows, so the
   * next number is the larger of the two. That keeps a page write out of most
   * commits.
   */
  let ceiling = getNextSeq.get()!.value;
  const maxEnd = db.prepare<[], { v: number | null }>('SELECT max(first_seq + event_count) AS v FROM commits').get()?.v ?? 0;
  let nextSeq = Math.max(ceiling, maxEnd);
  // usage is kept in memory so that the policy costs nothing on the hot path; computed from the table at open
  const usage = new Map<string, { commits: number; events: number; bytes: number }>();
  for (const r of perRoute.all()) usage.set(r.route, { commits: r.commits, events: r.events, bytes: r.bytes });
  const account = (route: string, commits: number, events: number, bytes: number): void => {
    const u = usage.get(route) ?? { commits: 0, events: 0, bytes: 0 };
    u.commits += commits;
    u.events += events;
    u.bytes += bytes;
    if (u.commits === 0) usage.delete(route);
    else usage.set(route, u);
  };

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
  const pendingDeletes = new Map<number, { route: string; events: number; bytes: number }>();
  /** removed rows still in the file, per route: stats() and usage() count them, bytes() does not */
  const pendingUsage = new Map<string, { commits: number; events: number; bytes: number }>();
  let pendingSince = 0;
  let deleteTimer: NodeJS.Timeout | null = null;
  let deleteRetryMs = DELETE_FLUSH_MS;
  const applyDeletes = (): void => {
    for (const id of pendingDeletes.keys()) deleteById.run(id);
  };
  const deletesTx = db.transaction(() => {
    applyDeletes();
    const next = Math.max(nextSeq, ceiling);
    setNextSeq.run(next);
    return next;
  });
  const deletesDone = (): void => {
    pendingDeletes.clear();
    pendingUsage.clear();
    deleteRetryMs = DELETE_FLUSH_MS;
    if (deleteTimer !== null) clearTimeout(deleteTimer);
    deleteTimer = null;
  };
  const scheduleDeletes = (ms: number): void => {
    if (deleteTimer !== null || pendingDeletes.size === 0) return;
    deleteTimer = setTimeout(flushDeletes, ms);
    deleteTimer.unref();
  };
  /** True when nothing is left to delete. */
  const flushDeletes = (): boolean => {
    if (deleteTimer !== null) clearTimeout(deleteTimer);
    deleteTimer = null;
    if (pendingDeletes.size === 0 || !db.open) return pendingDeletes.size === 0;
    try {
      ceiling = deletesTx();
      deletesDone();
      return true;
    } catch {
      // kept pending and invisible to reads; tried again (by a commit too) until the disk takes it
      deleteRetryMs = Math.min(DELETE_RETRY_MAX_MS, deleteRetryMs * 2);
      scheduleDeletes(deleteRetryMs);
      return false;
    }
  };
  const hidden = (skip?: ReadonlySet<number>) => (id: number): boolean => pendingDeletes.has(id) || (skip?.has(id) ?? false);
  const firstLive = (route: string): number | null => {
    let after = 0;
    for (;;) {
      const rows = oldestOf.all(route, after);
      if (rows.length === 0) return null;
      for (const r of rows) if (!pendingDeletes.has(r.id)) return r.oldest_ms;
      after = rows.at(-1)!.id;
    }
  };

  const removeRows = (ids: readonly number[]): RemovedRow[] => {
    const out: RemovedRow[] = [];
    for (const id of ids) {
      const row = deleteRow.get(id);
      if (row !== undefined) out.push({ id, ...row });
    }
    return out;
  };

  /** Inserts one row; the caller owns the transaction. */
  const insert = (r: SequencedRow): { id: number; bytes: number } => {
    const tuples: StoredTuple[] = r.events.map((e): StoredTuple => {
      if (e.captures !== undefined) return [e.key, e.topic, e.payload, e.receivedAt, e.encoded === true ? 1 : 0, e.captures];
      return e.encoded === true ? [e.key, e.topic, e.payload, e.receivedAt, 1] : [e.key, e.topic, e.payload, e.receivedAt];
    });
    const body = pack(encoder.encode(tuples));
    let oldest = Number.POSITIVE_INFINITY;
    let newest = 0;
    for (const e of r.events) {
      if (e.receivedAt < oldest) oldest = e.receivedAt;
      if (e.receivedAt > newest) newest = e.receivedAt;
    }
    const info = insertRow.run(r.route, r.events[0]?.kafkaTopic ?? '', r.priority, r.firstSeq, r.events.length, oldest, newest, body);
    return { id: Number(info.lastInsertRowid), bytes: body.length };
  };

  const commitTx = db.transaction((groups: readonly CommitGroup[], evict: readonly number[], withDeletes: boolean, extras: CommitExtras | undefined) => {
    if (withDeletes) applyDeletes();
    writeExtras(extras);
    if (extras?.publishes !== undefined && extras.publishes.length > 0) ledger.write(extras.publishes);
    const evicted = removeRows(evict);
    let seq = nextSeq;
    const inserted: Array<{ route: string; firstSeq: number; lastSeq: number; events: number; bytes: number }> = [];
    for (const g of groups) {
      const { bytes } = insert({ ...g, firstSeq: seq });
      inserted.push({ route: g.route, firstSeq: seq, lastSeq: seq + g.events.length - 1, events: g.events.length, bytes });
      seq += g.events.length;
    }
    // rows that go take their evidence of the numbers handed out with them: write it down
    const deleting = withDeletes || evict.length > 0;
    const newCeiling = deleting ? Math.max(seq, ceiling) : ceiling;
    if (deleting) setNextSeq.run(newCeiling);
    return { evicted, inserted, nextSeq: seq, ceiling: newCeiling };
  });

  const insertSequencedTx = db.transaction((rows: readonly SequencedRow[]) => rows.map((r) => ({ ...insert(r), route: r.route, events: r.events.length })));


  return {
    incarnation,

    allocate(count) {
      const first = nextSeq;
      if (first + count > ceiling) {
        const next = first + count + SEQ_RESERVE;
        try {
          setNextSeq.run(next);
        } catch (err) {
          throw new EdgehaulError('EH_ERR_STORE_WRITE', `cannot reserve sequence numbers: ${(err as Error).message}`, { cause: err });
        }
        ceiling = next;
      }
      nextSeq = first + count;
      return first;
    },

    insertSequenced(rows) {
      let inserted: Array<{ id: number; route: string; events: number; bytes: number }>;
      try {
        inserted = insertSequencedTx(rows);
      } catch (err) {
        throw new EdgehaulError('EH_ERR_STORE_WRITE', `buffer spill failed: ${(err as Error).message}`, { cause: err });
      }
      for (const r of inserted) account(r.route, 1, r.events, r.bytes);
      return inserted.map((r) => r.id);
    },

    commit(groups, evict = [], extras) {
      // deletes ride along at most every DELETE_FLUSH_MS: fewer transactions that touch the index and meta pages
      let withDeletes = pendingDeletes.size > 0 && Date.now() - pendingSince >= DELETE_FLUSH_MS;
      const nonEmpty = groups.filter((g) => g.events.length > 0);
      let result: ReturnType<typeof commitTx>;
      try {
        result = commitTx(nonEmpty, evict, withDeletes, extras);
      } catch (err) {
        // the deletes must not wait for inserts the disk refuses: alone they need less room, and free
        // pages the commit can then reuse, so it is tried once more
        if (pendingDeletes.size === 0 || !flushDeletes()) throw new EdgehaulError('EH_ERR_STORE_WRITE', `buffer commit failed: ${(err as Error).message}`, { cause: err });
        withDeletes = false;
        try {
          result = commitTx(nonEmpty, evict, false, extras);
        } catch (again) {
          throw new EdgehaulError('EH_ERR_STORE_WRITE', `buffer commit failed: ${(again as Error).message}`, { cause: again });
        }
      }
      nextSeq = result.nextSeq;
      ceiling = result.ceiling;
      if (extras?.publishes !== undefined) ledger.remember(extras.publishes);
      if (withDeletes) deletesDone();
      for (const r of result.evicted) account(r.route, -1, -r.events, -r.bytes);
      for (const r of result.inserted) account(r.route, 1, r.events, r.bytes);
      return { evicted: result.evicted, ranges: result.inserted.map(({ route, firstSeq, lastSeq }) => ({ route, firstSeq, lastSeq })) };
    },

    readNext(maxEvents, maxBytes, skip, minPriority = Number.MIN_SAFE_INTEGER) {
      const isHidden = hidden(skip);
      const out: StoredCommit[] = [];
      let count = 0;
      let bytes = 0;
      let cursor = { priority: Number.MAX_SAFE_INTEGER, id: 0 };
      while (count < maxEvents && bytes < maxBytes) {
        const rows = selectNext.all(cursor.priority, cursor.priority, cursor.id, minPriority);
        if (rows.length === 0) break;
        for (const row of rows) {
          cursor = { priority: row.priority, id: row.id };
          if (isHidden(row.id)) continue;
          if (count > 0 && count + row.event_count > maxEvents) return out;
          // the limit is on what the events take once decoded: a compressed row may hold ten times its size
          const raw = unpack(row.body);
          if (count > 0 && bytes + raw.length > maxBytes) return out;
          const tuples = encoder.decode(raw) as Array<StoredTuple | LegacyTuple>;
          const events = tuples.map((t, i): SequencedEvent => {
            if (t.length === 6 && t[4] instanceof Uint8Array) {
              const [route, kafkaTopic, key, topic, payload, receivedAt] = t as LegacyTuple;
              return { seq: row.first_seq + i, route, kafkaTopic, key, topic, payload: asBuffer(payload), receivedAt };
            }
            const [key, topic, payload, receivedAt, encoded, captures] = t as StoredTuple;
            const e: SequencedEvent = { seq: row.first_seq + i, route: row.route, kafkaTopic: row.kafka_topic, key, topic, payload: asBuffer(payload), receivedAt };
            if (captures !== undefined) return encoded === 1 ? { ...e, encoded: true, captures } : { ...e, captures };
            return encoded === 1 ? { ...e, encoded: true } : e;
          });
          out.push({ id: row.id, route: row.route, priority: row.priority, events, bytes: raw.length });
          count += row.event_count;
          bytes += raw.length;
        }
      }
      return out;
    },

    oldestRows(filter, limit, skip) {
      const isHidden = hidden(skip);
      const out: RowInfo[] = [];
      if ('route' in filter) {
        let after = 0;
        while (out.length < limit) {
          const rows = oldestOfRoute.all(filter.route, after, 64);
          if (rows.length === 0) break;
          for (const r of rows) if (!isHidden(r.id) && out.length < limit) out.push(r);
          after = rows.at(-1)!.id;
        }
        return out;
      }
      let cursor = { priority: Number.MIN_SAFE_INTEGER, id: 0 };
      while (out.length < limit) {
        const rows = oldestBelow.all(filter.belowPriority, cursor.priority, cursor.priority, cursor.id);
        if (rows.length === 0) break;
        for (const r of rows) if (!isHidden(r.id) && out.length < limit) out.push(r);
        cursor = { priority: rows.at(-1)!.priority, id: rows.at(-1)!.id };
      }
      return out;
    },

    expiredRows(route, cutoffMs, skip) {
      const isHidden = hidden(skip);
      return expired.all(route, cutoffMs, 0).filter((r) => !isHidden(r.id));
    },

    remove(ids) {
      const removed: RemovedRow[] = [];
      for (const id of ids) {
        if (pendingDeletes.has(id)) continue;
        const row = sizeOf.get(id);
        if (row === undefined) continue;
        if (pendingDeletes.size === 0) pendingSince = Date.now();
        pendingDeletes.set(id, row);
        account(row.route, -1, -row.events, -row.bytes);
        const p = pendingUsage.get(row.route) ?? { commits: 0, events: 0, bytes: 0 };
        p.commits++;
        p.events += row.events;
        p.bytes += row.bytes;
        pendingUsage.set(row.route, p);
        removed.push({ id, ...row });
      }
      // an idle link still gets its deletes written soon
      scheduleDeletes(DELETE_FLUSH_MS);
      return removed;
    },

    isResend(id) {
      return ledger.has(id);
    },

    recentDeadLetters(limit) {
      return selectDeadLetters.all(limit).map((r) => ({ at: r.at, route: r.route, step: r.step, reason: r.reason, topic: r.topic, clientId: r.client_id, payload: r.payload }));
    },

    loadStates() {
      return selectStates.all();
    },

    deadLetterCount() {
      return countDeadLetters.get()?.n ?? 0;
    },

    stats() {
      let commits = 0;
      let events = 0;
      let bytes = 0;
      let oldest: number | null = null;
      for (const route of usage.keys()) {
        const o = firstLive(route);
        if (o !== null && (oldest === null || o < oldest)) oldest = o;
      }
      for (const u of [...usage.values(), ...pendingUsage.values()]) {
        commits += u.commits;
        events += u.events;
        bytes += u.bytes;
      }
      return { commits, events, bytes, oldestReceivedAt: oldest };
    },

    bytes(route) {
      if (route !== undefined) return usage.get(route)?.bytes ?? 0;
      let total = 0;
      for (const u of usage.values()) total += u.bytes;
      return total;
    },

    usage() {
      const out = new Map<string, RouteUsage>();
      for (const route of new Set([...usage.keys(), ...pendingUsage.keys()])) {
        const u = usage.get(route) ?? { commits: 0, events: 0, bytes: 0 };
        const p = pendingUsage.get(route) ?? { commits: 0, events: 0, bytes: 0 };
        out.set(route, { commits: u.commits + p.commits, events: u.events + p.events, bytes: u.bytes + p.bytes, oldestReceivedAt: usage.has(route) ? firstLive(route) : null });
      }
      return out;
    },

    fileBytes() {
      const pages = db.pragma('page_count', { simple: true }) as number;
      const pageSize = db.pragma('page_size', { simple: true }) as number;
      return pages * pageSize;
    },

    reusableBytes() {
      const free = db.pragma('freelist_count', { simple: true }) as number;
      const pageSize = db.pragma('page_size', { simple: true }) as number;
      return free * pageSize;
    },

    maintain() {
      const started = Date.now();
      flushDeletes();
      let walBytes = 0;
      try {
        walBytes = statSync(`${path}-wal`).size;
      } catch {
        // no WAL file right now
      }
      const [cp] = db.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number }>;
      db.pragma('optimize');
      return { busy: (cp?.busy ?? 0) !== 0, wal_bytes_before: walBytes, ms: Date.now() - started };
    },

    close() {
      flushDeletes();
      if (db.open) db.close();
    },
  };
}

/**
 * Readings of one device repeat their field names and most of their values, so
 * a row compresses to a fraction of its size: less flash written per event and
 * more backlog in the same bound. A compressed body starts with 0x00, which no
 * plain body does (a plain body is a CBOR array, 0x80-0x9f).
 */
const COMPRESSED = 0x00;
const COMPRESS_FROM_BYTES = 256;

function pack(body: Buffer): Buffer {
  if (body.length < COMPRESS_FROM_BYTES) return body;
  // a 4 KiB window still spans dozens of readings; the default 32 KiB window and memLevel 8 cost
  // ~256 KiB of native memory per call, which the GC frees late: RSS grew by 80+ MB under a drain
  const deflated = deflateRawSync(body, { level: 1, windowBits: 12, memLevel: 5 });
  if (deflated.length + 1 >= body.length) return body;
  return Buffer.concat([Buffer.of(COMPRESSED), deflated]);
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function unpack(body: Buffer): Buffer {
  return body[0] === COMPRESSED ? inflateRawSync(body.subarray(1)) : body;
}

/** Commits whose publishes are kept for re-send recognition (a ring of rows). */
const LEDGER_COMMITS = 256;
const LEDGER_TRIM_EVERY = 32;
/** Packet ids remembered per client in memory (an MQTT client has at most 65535 in flight). */
const LEDGER_PER_CLIENT = 2048;

/**
 * Which QoS 1/2 publishes were committed, for recognising a device's re-send
 * of one whose PUBACK it never got. Each commit with publishes writes one row
 * (client ids, packet ids and digests, CBOR) in its own transaction; only the
 * newest LEDGER_COMMITS rows are kept, and they are read back at open. A
 * device re-sends what was in flight when the connection broke: the newest
 * commits of its client.
 */
class PublishLedger {
  private readonly byClient = new Map<string, Map<number, number>>();
  private readonly insert: Database.Statement<[number, Buffer]>;
  private readonly trim: Database.Statement<[number]>;
  private readonly codec = new Encoder({ useRecords: false, tagUint8Array: false });
  private next: number;

  constructor(db: Database.Database) {
    db.exec('CREATE TABLE IF NOT EXISTS recent_publishes (n INTEGER PRIMARY KEY, body BLOB NOT NULL) STRICT');
    this.insert = db.prepare('INSERT INTO recent_publishes (n, body) VALUES (?, ?)');
    this.trim = db.prepare('DELETE FROM recent_publishes WHERE n <= ?');
    let last = 0;
    for (const row of db.prepare<[], { n: number; body: Buffer }>('SELECT n, body FROM recent_publishes ORDER BY n').all()) {
      last = row.n;
      try {
        this.remember(this.unpack(row.body));
      } catch {
        // a row that does not decode only costs recognition of its re-sends
      }
    }
    this.next = last + 1;
  }

  /** Inside the commit's transaction. */
  write(publishes: readonly PublishId[]): void {
    const byClient: Record<string, number[]> = {};
    for (const p of publishes) (byClient[p.clientId] ??= []).push(p.packetId, p.digest);
    this.insert.run(this.next, this.codec.encode(Object.entries(byClient)));
    // old rows go in bulk, once every LEDGER_TRIM_EVERY commits: a delete on every commit would
    // write the table's first page each time (flash wear on a quiet gateway)
    if (this.next % LEDGER_TRIM_EVERY === 0) this.trim.run(this.next - LEDGER_COMMITS);
    this.next++;
  }

  /** After the commit is durable. */
  remember(publishes: readonly PublishId[]): void {
    for (const p of publishes) {
      let ids = this.byClient.get(p.clientId);
      if (ids === undefined) this.byClient.set(p.clientId, (ids = new Map<number, number>()));
      ids.delete(p.packetId); // a reused packet id moves to the newest end
      ids.set(p.packetId, p.digest);
      if (ids.size > LEDGER_PER_CLIENT) ids.delete(ids.keys().next().value!);
    }
  }

  has(id: PublishId): boolean {
    return this.byClient.get(id.clientId)?.get(id.packetId) === id.digest;
  }

  private unpack(body: Buffer): PublishId[] {
    const out: PublishId[] = [];
    for (const [clientId, pairs] of this.codec.decode(body) as Array<[string, number[]]>) {
      for (let i = 0; i + 1 < pairs.length; i += 2) out.push({ clientId, packetId: pairs[i]!, digest: pairs[i + 1]! });
    }
    return out;
  }
}

/**
 * The buffer's incarnation id, drawn the first time a database is opened (a
 * new file, or one written before incarnations existed) and kept in it: a
 * lost or replaced file means a new id, whatever the clock says.
 */
function readIncarnation(db: Database.Database): string {
  return db.transaction(() => {
    db.exec('CREATE TABLE IF NOT EXISTS incarnation (id TEXT NOT NULL) STRICT');
    const row = db.prepare<[], { id: string }>('SELECT id FROM incarnation LIMIT 1').get();
    if (row !== undefined) return row.id;
    const id = randomBytes(8).toString('hex');
    db.prepare<[string]>('INSERT INTO incarnation (id) VALUES (?)').run(id);
    return id;
  }).immediate();
}

/** Creates the schema, or brings an older one up to date, in one transaction. */
function migrate(db: Database.Database, firstSeq: number): void {
  db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT');
  const version = db.prepare<[], { value: number }>("SELECT value FROM meta WHERE key = 'schema_version'").get()?.value ?? 0;
  if (version > SCHEMA_VERSION) {
    throw new Error(`buffer schema version ${version} is newer than this edgehaul understands (${SCHEMA_VERSION}); upgrade edgehaul`);
  }
  if (version === SCHEMA_VERSION) return;
  db.transaction(() => {
    if (version >= 2) {
      // version 2 lacked the dead letters and transform checkpoints only
    } else if (version === 0) {
      db.exec(`
        CREATE TABLE commits (
          id INTEGER PRIMARY KEY,
          route TEXT NOT NULL,
          kafka_topic TEXT NOT NULL,
          priority INTEGER NOT NULL,
          first_seq INTEGER NOT NULL,
          event_count INTEGER NOT NULL,
          oldest_ms INTEGER NOT NULL,
          newest_ms INTEGER NOT NULL,
          body BLOB NOT NULL
        ) STRICT;
        INSERT INTO meta (key, value) VALUES ('next_seq', ${Math.floor(firstSeq)});
      `);
    } else {
      // version 1 (one row per commit, all routes): keep the rows, mark them with an empty route
      db.exec(`
        ALTER TABLE commits ADD COLUMN route TEXT NOT NULL DEFAULT '';
        ALTER TABLE commits ADD COLUMN kafka_topic TEXT NOT NULL DEFAULT '';
        ALTER TABLE commits ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE commits ADD COLUMN newest_ms INTEGER NOT NULL DEFAULT 0;
        UPDATE commits SET newest_ms = oldest_ms;
      `);
    }
    db.exec(`
      CREATE TABLE IF NOT EXISTS dead_letters (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        route TEXT NOT NULL,
        step TEXT NOT NULL,
        reason TEXT NOT NULL,
        topic TEXT NOT NULL,
        client_id TEXT NOT NULL,
        payload BLOB NOT NULL
      ) STRICT;
      CREATE TABLE IF NOT EXISTS transform_state (
        route TEXT NOT NULL,
        step INTEGER NOT NULL,
        state BLOB NOT NULL,
        PRIMARY KEY (route, step)
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS commits_by_priority ON commits (priority DESC, id);
      INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ${SCHEMA_VERSION});
    `);
  })();
}
