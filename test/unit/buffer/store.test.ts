import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import type { RoutedEvent } from '../../../src/core/event.js';
import { openBuffer, seedSequence } from '../../../src/buffer/open.js';
import { openSqliteStore, publishDigest, type BufferStore } from '../../../src/buffer/store.js';
import { waitFor } from '../../support/poll.js';
import { storeContract } from './contract.js';

const ev = (key: string, n: number, route = 'r'): RoutedEvent => ({
  route,
  kafkaTopic: 't',
  key,
  topic: `d/${key}`,
  payload: Buffer.from(`{"n":${n}}`),
  receivedAt: 1000 + n,
});
const tempDb = (): string => join(mkdtempSync(join(tmpdir(), 'edgehaul-store-')), 'b.db');
const put = (store: BufferStore, events: RoutedEvent[], route = 'r', priority = 0) =>
  store.commit([{ route, priority, events }]).ranges[0]!;

storeContract('SQLite store', (path) => openSqliteStore(path, { synchronous: 'full' }));

test('a damaged database is moved aside, a fresh one starts, and sequence numbers still never repeat', () => {
  const path = tempDb();
  const store = openSqliteStore(path, { synchronous: 'full' });
  put(store, [ev('a', 1)]);
  store.close();
  writeFileSync(path, Buffer.concat([Buffer.from('SQLite format 3\u0000'), Buffer.alloc(4096, 0xee)]));
  const now = 1_800_000_000_000;
  const opened = openBuffer(path, { synchronous: 'full' }, pino({ level: 'silent' }), () => now);
  assert.ok(opened.quarantined !== null);
  assert.match(opened.quarantined.path, /b\.db\.damaged-/);
  assert.equal(opened.store.stats().events, 0);
  assert.equal(put(opened.store, [ev('a', 2)]).firstSeq, seedSequence(now));
  opened.store.close();
  const reopened = openBuffer(path, { synchronous: 'full' }, pino({ level: 'silent' }));
  assert.equal(reopened.quarantined, null, 'the fresh database is healthy');
  reopened.store.close();
});

test('max_page_count refuses a write that would grow the file past its cap', () => {
  const store = openSqliteStore(tempDb(), { synchronous: 'normal', maxFileBytes: 600_000 });
  assert.throws(
    () => {
      // random bytes: stored bodies are compressed, so a repetitive payload would not fill anything
      for (let i = 0; i < 100; i++)
        store.commit([{ route: 'r', priority: 0, events: [{ ...ev('a', i), payload: randomBytes(20_000) }] }]);
    },
    (err: unknown) => (err as { code?: string }).code === 'EH_ERR_STORE_WRITE',
  );
  assert.ok(store.fileBytes() <= 600_000 + 4096);
  store.close();
});

test('repetitive rows are stored compressed and read back exactly; incompressible ones as they are', () => {
  const store = openSqliteStore(tempDb(), { synchronous: 'normal' });
  const readings = Array.from({ length: 200 }, (_, i) => ({
    ...ev('dev-1', i),
    payload: Buffer.from(JSON.stringify({ device: 'dev-1', n: i, temp: 21.5, hum: 40.1 })),
  }));
  put(store, readings);
  const noise = { ...ev('dev-2', 0), payload: randomBytes(2000) };
  put(store, [noise]);
  const raw = readings.reduce((n, e) => n + e.payload.length, 0);
  assert.ok(store.bytes() - 2000 < raw / 3, `${store.bytes()} B stored for ${raw} B of readings and 2000 B of noise`);
  const [a, b] = store.readNext(1000, 1e9);
  assert.ok(a!.bytes > raw, 'read sizes are what the events take decoded');
  assert.deepEqual(
    a!.events.map((e) => e.payload.toString()),
    readings.map((e) => e.payload.toString()),
  );
  assert.ok(b!.bytes > 2000);
  assert.deepEqual(b!.events[0]!.payload, noise.payload);
  store.close();
});

test('a version 1 buffer (one row per commit, route in every event) is migrated and still read', async () => {
  const path = tempDb();
  const { default: Database } = await import('better-sqlite3');
  const { Encoder } = await import('cbor-x');
  const v1 = new Database(path);
  v1.exec(`CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT;
    CREATE TABLE commits (id INTEGER PRIMARY KEY AUTOINCREMENT, first_seq INTEGER NOT NULL, event_count INTEGER NOT NULL, oldest_ms INTEGER NOT NULL, body BLOB NOT NULL) STRICT;
    INSERT INTO meta VALUES ('schema_version', 1), ('next_seq', 8);`);
  const body = new Encoder({ useRecords: false, tagUint8Array: false }).encode([
    ['r', 'kt', 'k1', 'd/k1', Buffer.from('a'), 1001],
    ['r2', 'kt2', 'k2', 'd/k2', Buffer.from('b'), 1002],
  ]);
  v1.prepare('INSERT INTO commits (first_seq, event_count, oldest_ms, body) VALUES (6, 2, 1001, ?)').run(body);
  v1.close();
  const store = openSqliteStore(path, { synchronous: 'normal' });
  assert.deepEqual(
    store
      .readNext(10, 1e9)
      .flatMap((c) => c.events.map((e) => [e.seq, e.route, e.kafkaTopic, e.key, e.payload.toString()])),
    [
      [6, 'r', 'kt', 'k1', 'a'],
      [7, 'r2', 'kt2', 'k2', 'b'],
    ],
  );
  assert.equal(put(store, [ev('k', 1)]).firstSeq, 8);
  store.close();
});

test('delivered rows are deleted in batches, by a later commit or on their own when idle', async () => {
  const path = tempDb();
  const { default: Database } = await import('better-sqlite3');
  const rowsOnDisk = (): number => {
    const peek = new Database(path, { readonly: true });
    try {
      return (peek.prepare('SELECT count(*) AS n FROM commits').get() as { n: number }).n;
    } finally {
      peek.close();
    }
  };
  const store = openSqliteStore(path, { synchronous: 'full' });
  put(store, [ev('a', 1)]);
  put(store, [ev('a', 2)]);
  const first = store.readNext(1, 1e9)[0]!;
  // vanishing from reads and candidates at once is in the contract; here: what the file holds
  assert.deepEqual(
    store.remove([first.id]).map((r) => r.events),
    [1],
  );
  assert.equal(store.stats().events, 2, 'stats say what the file holds: the row is still there');
  assert.equal(rowsOnDisk(), 2, 'not deleted yet');
  await waitFor('the batched delete', () => rowsOnDisk() === 1, 5000);
  assert.equal(store.stats().events, 1);
  store.remove([store.readNext(1, 1e9)[0]!.id]);
  // a commit after the batching interval carries the pending delete
  await waitFor(
    'a commit to carry the delete',
    () => {
      put(store, [ev('a', 3)]);
      return rowsOnDisk() <= 2 && store.readNext(100, 1e9).every((c) => c.events[0]!.seq >= 3);
    },
    5000,
  );
  store.close();
});

test('insert-only commits leave next_seq to the rows: a reopen continues above them', () => {
  const path = tempDb();
  const store = openSqliteStore(path, { synchronous: 'full' });
  for (let i = 0; i < 5; i++) put(store, [ev('a', i), ev('a', i + 100)]);
  store.close();
  const again = openSqliteStore(path, { synchronous: 'full' });
  assert.equal(put(again, [ev('a', 9)]).firstSeq, 11);
  // deleting everything, then reopening: meta carries the number
  again.remove(again.readNext(100, 1e9).map((c) => c.id));
  again.close();
  const third = openSqliteStore(path, { synchronous: 'full' });
  assert.equal(third.stats().events, 0);
  assert.equal(put(third, [ev('a', 10)]).firstSeq, 12);
  third.close();
});

test('maintain() checkpoints the WAL and changes no data (the priority floor is in the contract)', () => {
  const store = openSqliteStore(tempDb(), { synchronous: 'full' });
  put(store, [ev('t', 1, 'telemetry')], 'telemetry', 0);
  put(store, [ev('a', 2, 'alarms')], 'alarms', 10);
  put(store, [ev('t', 3, 'telemetry')], 'telemetry', 0);
  const report = store.maintain();
  assert.equal(report.busy, false);
  assert.ok(report.wal_bytes_before > 0, 'the commits were in the WAL');
  assert.ok(
    store.maintain().wal_bytes_before < report.wal_bytes_before,
    'truncated by the checkpoint (optimize may write a little again)',
  );
  assert.equal(store.stats().events, 3, 'maintenance changes no data');
  store.close();
});

test('a commit the file cannot take does not hold back the deletes: they are written alone, and the commit then reuses their pages', () => {
  // max_page_count stands in for a full disk here (the tmpfs integration test has the real one)
  const store = openSqliteStore(tempDb(), { synchronous: 'normal', maxFileBytes: 65_536 });
  const big = (n: number): RoutedEvent => ({ ...ev('a', n), payload: randomBytes(2000) });
  let stored = 0;
  for (;;) {
    try {
      put(store, [big(stored)]);
      stored++;
    } catch (err) {
      assert.equal((err as { code?: string }).code, 'EH_ERR_STORE_WRITE');
      break;
    }
  }
  assert.ok(stored > 5, `${stored} rows before the file was full`);
  assert.throws(() => put(store, [big(stored)]), /buffer commit failed/, 'still full');
  const delivered = store.readNext(1000, 1e9);
  store.remove(delivered.map((c) => c.id));
  assert.equal(store.stats().events, stored, 'counted until deleted');
  // at once, not only after the delete interval: the failed insert makes the deletes go alone first
  const range = put(store, [big(stored)]);
  assert.equal(range.firstSeq, stored + 1);
  assert.equal(store.stats().events, 1, 'the deletes are in the file');
  store.close();
});

test('committed publishes are recognised as re-sends, also after reopening; a new payload under the same packet id is not', () => {
  const path = tempDb();
  let store = openSqliteStore(path, { synchronous: 'full' });
  const a = { clientId: 'dev-1', packetId: 7, digest: publishDigest('d/dev-1', Buffer.from('{"n":1}')) };
  assert.equal(store.isResend(a), false);
  store.commit([{ route: 'r', priority: 0, events: [ev('dev-1', 1)] }], [], { publishes: [a] });
  assert.equal(store.isResend(a), true);
  assert.equal(
    store.isResend({ ...a, digest: publishDigest('d/dev-1', Buffer.from('{"n":2}')) }),
    false,
    'same packet id, other payload',
  );
  assert.equal(store.isResend({ ...a, clientId: 'dev-2' }), false, 'another client');
  store.close();
  store = openSqliteStore(path, { synchronous: 'full' });
  assert.equal(store.isResend(a), true, 'the ledger is read back at open');
  // the packet id used again for another message replaces the first
  const b = { ...a, digest: publishDigest('d/dev-1', Buffer.from('{"n":3}')) };
  store.commit([{ route: 'r', priority: 0, events: [ev('dev-1', 3)] }], [], { publishes: [b] });
  assert.deepEqual([store.isResend(a), store.isResend(b)], [false, true]);
  // only the newest commits' publishes are kept on disk
  for (let i = 0; i < 300; i++)
    store.commit([{ route: 'r', priority: 0, events: [ev('dev-2', i)] }], [], {
      publishes: [{ clientId: 'dev-2', packetId: i + 1, digest: i }],
    });
  store.close();
  store = openSqliteStore(path, { synchronous: 'full' });
  assert.equal(store.isResend(b), false, 'trimmed after 256 commits');
  assert.equal(store.isResend({ clientId: 'dev-2', packetId: 300, digest: 299 }), true);
  store.close();
});
