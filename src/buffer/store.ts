import type { DeadLetterRecord, RoutedEvent, SequencedEvent, StateRecord } from '../core/event.js';

/**
 * What the buffer stores and how it is asked: the BufferStore interface and
 * its records. Two implementations: the SQLite file (./sqlite/, composed in
 * sqlite/store.ts) and TieredStore (./tiered.ts), which keeps
 * `durability: memory` routes in RAM in front of it. test/unit/buffer/contract.ts
 * holds the behaviour both share.
 *
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
  /** A row of aggregates (when_full: downsample): their bucket length, ms; 0 or absent: events as they came. */
  readonly bucketMs?: number;
}

// declared in core/ (transform/ writes them, the buffer stores them); re-exported for the buffer's users
export type { DeadLetterRecord, StateRecord } from '../core/event.js';

/** Written in the same transaction as a commit's rows. */
export interface CommitExtras {
  readonly deadLetters?: readonly DeadLetterRecord[];
  /** How many dead letters the table keeps at most (the oldest go). */
  readonly keepDeadLetters?: number;
  readonly states?: readonly StateRecord[];
  /** QoS 1/2 publishes whose events this commit stores: their re-sends are recognised (isResend) once it is durable. */
  readonly publishes?: readonly PublishId[];
  /** Rows replaced by their aggregates (when_full: downsample), removed and inserted in the same transaction. */
  readonly condense?: readonly Condensation[];
}

/** Rows of one route replaced by rows of aggregates (policy.ts). */
export interface Condensation {
  readonly remove: readonly number[];
  readonly rows: readonly CondensedRow[];
}

/**
 * A row of aggregates: it takes the id of one of the rows it replaces, so it
 * is read (sent) where they were, and its events keep their own sequence numbers.
 */
export interface CondensedRow {
  readonly id: number;
  readonly route: string;
  readonly priority: number;
  readonly events: readonly SequencedEvent[];
  /** the length of the aggregates' time buckets, ms */
  readonly bucketMs: number;
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
  commit(
    groups: readonly CommitGroup[],
    evict?: readonly number[],
    extras?: CommitExtras,
  ): { evicted: RemovedRow[]; ranges: Array<{ route: string; firstSeq: number; lastSeq: number }> };
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
  /** These rows with their events (those that exist and are not removed), in id order: what downsampling reads. */
  readRows(ids: readonly number[]): StoredCommit[];
  /** Stored bytes a row of aggregates with these events would take. */
  condensedBytes(events: readonly SequencedEvent[]): number;
  /** Oldest rows of a route (or of all routes below a priority), without bodies: candidates for eviction. */
  oldestRows(
    filter: { route: string } | { belowPriority: number },
    limit: number,
    skip?: ReadonlySet<number>,
  ): RowInfo[];
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
  /**
   * Publishes whose events went to memory routes only: recognised as re-sends
   * from now on, in memory (their events do not outlive the process either).
   */
  rememberPublishes(publishes: readonly PublishId[]): void;
  /** Stores rows that already have their sequence numbers; returns their row ids in order. */
  insertSequenced(rows: readonly SequencedRow[]): number[];
  /**
   * How long delivered rows wait for a commit to carry their delete before
   * they get a transaction (and an fsync) of their own; longer under a flash
   * budget, whose paced commits come less often.
   */
  setDeleteDelay(ms: number): void;
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

export { DEAD_LETTER_PAYLOAD_BYTES } from './sqlite/extras.js';
export { SEQ_RESERVE } from './sqlite/ledger.js';
export { openSqliteStore, type SqliteStoreOptions } from './sqlite/store.js';
