import type Database from 'better-sqlite3';
import { Encoder } from 'cbor-x';
import type { PublishId } from '../store.js';

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
export class PublishLedger {
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
    for (const row of db
      .prepare<[], { n: number; body: Buffer }>('SELECT n, body FROM recent_publishes ORDER BY n')
      .all()) {
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
