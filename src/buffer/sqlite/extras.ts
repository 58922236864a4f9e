import type Database from 'better-sqlite3';
import type { CommitExtras, DeadLetterRecord, StateRecord } from '../store.js';

export const DEAD_LETTER_PAYLOAD_BYTES = 4096;

/** The dead letters and transform checkpoints written with a commit. */
export class ExtrasTables {
  private readonly insertDeadLetter: Database.Statement<[number, string, string, string, string, string, Buffer]>;
  private readonly trimDeadLetters: Database.Statement<[number]>;
  private readonly selectDeadLetters: Database.Statement<
    [number],
    { at: number; route: string; step: string; reason: string; topic: string; client_id: string; payload: Buffer }
  >;
  private readonly countDeadLetters: Database.Statement<[], { n: number }>;
  private readonly upsertState: Database.Statement<[string, number, Buffer]>;
  private readonly deleteState: Database.Statement<[string, number]>;
  private readonly selectStates: Database.Statement<[], { route: string; step: number; state: Buffer }>;

  constructor(db: Database.Database) {
    this.insertDeadLetter = db.prepare(
      'INSERT INTO dead_letters (at, route, step, reason, topic, client_id, payload) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    this.trimDeadLetters = db.prepare('DELETE FROM dead_letters WHERE id <= (SELECT max(id) FROM dead_letters) - ?');
    this.selectDeadLetters = db.prepare(
      'SELECT at, route, step, reason, topic, client_id, payload FROM dead_letters ORDER BY id DESC LIMIT ?',
    );
    this.countDeadLetters = db.prepare('SELECT count(*) AS n FROM dead_letters');
    this.upsertState = db.prepare('INSERT OR REPLACE INTO transform_state (route, step, state) VALUES (?, ?, ?)');
    this.deleteState = db.prepare('DELETE FROM transform_state WHERE route = ? AND step = ?');
    this.selectStates = db.prepare('SELECT route, step, state FROM transform_state');
  }

  /** The caller owns the transaction. */
  write(extras: CommitExtras | undefined): void {
    if (extras === undefined) return;
    const letters = extras.deadLetters ?? [];
    for (const d of letters) {
      const payload =
        d.payload.length > DEAD_LETTER_PAYLOAD_BYTES ? d.payload.subarray(0, DEAD_LETTER_PAYLOAD_BYTES) : d.payload;
      this.insertDeadLetter.run(d.at, d.route, d.step, d.reason, d.topic, d.clientId, payload);
    }
    if (letters.length > 0) this.trimDeadLetters.run(extras.keepDeadLetters ?? 1000);
    for (const st of extras.states ?? []) {
      if (st.state === null) this.deleteState.run(st.route, st.step);
      else this.upsertState.run(st.route, st.step, st.state);
    }
  }

  recentDeadLetters(limit: number): DeadLetterRecord[] {
    return this.selectDeadLetters.all(limit).map((r) => ({
      at: r.at,
      route: r.route,
      step: r.step,
      reason: r.reason,
      topic: r.topic,
      clientId: r.client_id,
      payload: r.payload,
    }));
  }

  deadLetterCount(): number {
    return this.countDeadLetters.get()?.n ?? 0;
  }

  loadStates(): Array<StateRecord & { readonly state: Buffer }> {
    return this.selectStates.all();
  }
}
