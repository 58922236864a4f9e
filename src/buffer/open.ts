import { existsSync, renameSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { Logger } from '../core/log.js';
import { openSqliteStore, type SqliteBufferStore, type SqliteStoreOptions } from './store.js';

export interface OpenedBuffer {
  readonly store: SqliteBufferStore;
  /** Where a damaged database was moved, when it was. */
  readonly quarantined: { path: string; reason: string; events: number | null } | null;
}

/**
 * Opens the buffer, checking an existing file first. A file SQLite cannot
 * read, or whose quick_check fails, is moved aside (kept for a person to look
 * at, never deleted) and a fresh buffer is started, so a damaged SD card
 * sector does not turn into a crash loop. Sequence numbers of a buffer made
 * after a quarantine start above the old ones (see seedSequence), so they
 * still never repeat.
 */
export function openBuffer(
  path: string,
  options: SqliteStoreOptions,
  log: Logger,
  now: () => number = Date.now,
): OpenedBuffer {
  const problem = existsSync(path) ? checkDatabase(path) : null;
  if (problem === null) return { store: openSqliteStore(path, options), quarantined: null };

  const aside = `${path}.damaged-${new Date(now()).toISOString().replace(/[:.]/g, '-')}`;
  for (const suffix of ['', '-wal', '-shm']) {
    if (existsSync(path + suffix)) renameSync(path + suffix, aside + suffix);
  }
  log.error(
    {
      code: 'EH_ERR_STORE_DAMAGED',
      buffer: path,
      moved_to: aside,
      reason: problem.reason,
      lost_events: problem.events,
      next_seq: problem.nextSeq,
    },
    'buffer database is damaged: moved aside, starting with an empty buffer',
  );
  const store = openSqliteStore(path, { ...options, firstSeq: Math.max(problem.nextSeq ?? 0, seedSequence(now())) });
  return { store, quarantined: { path: aside, reason: problem.reason, events: problem.events } };
}

/**
 * A sequence start that is above anything a lost buffer could have handed
 * out: microseconds since the epoch. A gateway would need 40,000 events/s for
 * over a thousand years to reach it from 1, and it stays below 2^53.
 */
export function seedSequence(nowMs: number): number {
  return nowMs * 1000;
}

interface Problem {
  readonly reason: string;
  readonly events: number | null;
  readonly nextSeq: number | null;
}

function checkDatabase(path: string): Problem | null {
  let db: Database.Database | null = null;
  try {
    db = new Database(path, { fileMustExist: true });
    const rows = db.pragma('quick_check') as Array<{ quick_check: string }>;
    const verdict = rows.map((r) => r.quick_check).join('; ');
    if (verdict === 'ok') return null;
    return { reason: `quick_check: ${verdict.slice(0, 300)}`, ...salvageCounts(db) };
  } catch (err) {
    return { reason: (err as Error).message, ...(db !== null ? salvageCounts(db) : { events: null, nextSeq: null }) };
  } finally {
    try {
      db?.close();
    } catch {
      // a handle on a damaged file may refuse to close cleanly; the file is moved aside anyway
    }
  }
}

/** What can still be read of a damaged buffer, for the loss count and the sequence floor. */
function salvageCounts(db: Database.Database): { events: number | null; nextSeq: number | null } {
  const read = <T>(sql: string): T | null => {
    try {
      return (db.prepare(sql).get() as { v: T } | undefined)?.v ?? null;
    } catch {
      return null;
    }
  };
  return {
    events: read<number>('SELECT sum(event_count) AS v FROM commits'),
    nextSeq: read<number>("SELECT value AS v FROM meta WHERE key = 'next_seq'"),
  };
}
