import { randomBytes } from 'node:crypto';
import type Database from 'better-sqlite3';
import { EdgehaulError } from '../../core/errors.js';

export const SEQ_RESERVE = 100_000;

/**
 * Gateway-wide sequence numbers that never repeat. `meta.next_seq` (the
 * ceiling) is written only by transactions that delete rows, and by
 * allocate(): an insert-only commit leaves the evidence in its own rows, so
 * the next number is the larger of the two. That keeps a page write out of
 * most commits.
 */
export class SequenceLedger {
  private readonly setNextSeq: Database.Statement<[number]>;
  private nextSeq: number;
  private ceiling: number;

  constructor(db: Database.Database) {
    this.setNextSeq = db.prepare<[number]>("UPDATE meta SET value = ? WHERE key = 'next_seq'");
    this.ceiling = db.prepare<[], { value: number }>("SELECT value FROM meta WHERE key = 'next_seq'").get()!.value;
    const maxEnd =
      db.prepare<[], { v: number | null }>('SELECT max(first_seq + event_count) AS v FROM commits').get()?.v ?? 0;
    this.nextSeq = Math.max(this.ceiling, maxEnd);
  }

  /** The next number a commit hands out. */
  get next(): number {
    return this.nextSeq;
  }

  /**
   * Inside a transaction that deletes rows: they take their evidence of the
   * numbers handed out with them, so the ceiling is written down, at least
   * `atLeast`. Returns the ceiling to settle() once the transaction committed.
   */
  persist(atLeast: number): number {
    const ceiling = Math.max(atLeast, this.ceiling);
    this.setNextSeq.run(ceiling);
    return ceiling;
  }

  /** The current ceiling: what a transaction that writes nothing down settles with. */
  get persisted(): number {
    return this.ceiling;
  }

  /** After a transaction committed: the numbers it used and the ceiling it wrote. */
  settle(next: number, ceiling: number): void {
    this.nextSeq = next;
    this.ceiling = ceiling;
  }

  /**
   * Hands out `count` numbers without storing events. The persisted counter
   * is moved ahead in blocks of SEQ_RESERVE, so a crash can never lead to a
   * number handed out twice.
   */
  allocate(count: number): number {
    const first = this.nextSeq;
    if (first + count > this.ceiling) {
      const next = first + count + SEQ_RESERVE;
      try {
        this.setNextSeq.run(next);
      } catch (err) {
        throw new EdgehaulError('EH_ERR_STORE_WRITE', `cannot reserve sequence numbers: ${(err as Error).message}`, {
          cause: err,
        });
      }
      this.ceiling = next;
    }
    this.nextSeq = first + count;
    return first;
  }
}

/**
 * The buffer's incarnation id, drawn the first time a database is opened (a
 * new file, or one written before incarnations existed) and kept in it: a
 * lost or replaced file means a new id, whatever the clock says.
 */
export function readIncarnation(db: Database.Database): string {
  return db
    .transaction(() => {
      db.exec('CREATE TABLE IF NOT EXISTS incarnation (id TEXT NOT NULL) STRICT');
      const row = db.prepare<[], { id: string }>('SELECT id FROM incarnation LIMIT 1').get();
      if (row !== undefined) return row.id;
      const id = randomBytes(8).toString('hex');
      db.prepare<[string]>('INSERT INTO incarnation (id) VALUES (?)').run(id);
      return id;
    })
    .immediate();
}
