import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { SqliteStoreOptions } from './store.js';

export const SCHEMA_VERSION = 4;

/**
 * Opens (or creates) the buffer file with its pragmas and brings the schema
 * up to date. Errors are the caller's to wrap (EH_ERR_STORE_OPEN).
 */
export function openDatabase(path: string, options: SqliteStoreOptions): Database.Database {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  // small pages: a commit rewrites whole pages (twice in WAL mode), so a small commit on 4 KiB
  // pages writes ~16 KiB; only takes effect when the file is created
  db.pragma('page_size = 1024');
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
  // after a checkpoint the WAL is cut back, so a burst does not leave a large file behind
  db.pragma('journal_size_limit = 8388608');
  migrate(db, options.firstSeq ?? 1);
  return db;
}

/** Hard cap on the file (SQLite max_page_count): an insert beyond it fails. */
export function capFileSize(db: Database.Database, maxFileBytes: number | undefined): void {
  if (maxFileBytes === undefined) return;
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  db.pragma(`max_page_count = ${Math.max(64, Math.ceil(maxFileBytes / pageSize))}`);
}

/** Creates the schema, or brings an older one up to date, in one transaction. */
function migrate(db: Database.Database, firstSeq: number): void {
  db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT');
  const version =
    db.prepare<[], { value: number }>("SELECT value FROM meta WHERE key = 'schema_version'").get()?.value ?? 0;
  if (version > SCHEMA_VERSION) {
    throw new Error(
      `buffer schema version ${version} is newer than this edgehaul understands (${SCHEMA_VERSION}); upgrade edgehaul`,
    );
  }
  if (version === SCHEMA_VERSION) return;
  db.transaction(() => {
    if (version >= 2) {
      // version 2 lacked the dead letters and transform checkpoints, version 3 the bucket_ms column
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
          body BLOB NOT NULL,
          bucket_ms INTEGER NOT NULL DEFAULT 0
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
    // a row of aggregates (when_full: downsample) holds the length of its time buckets; 0: events as they came.
    // Version 4 also keeps an older edgehaul from reading such rows (their events carry their own seqs).
    const columns = db.pragma('table_info(commits)') as Array<{ name: string }>;
    if (!columns.some((c) => c.name === 'bucket_ms'))
      db.exec('ALTER TABLE commits ADD COLUMN bucket_ms INTEGER NOT NULL DEFAULT 0');
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
