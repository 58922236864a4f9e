import assert from 'node:assert/strict';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { RoutedEvent } from '../../../src/core/event.js';
import { openSqliteStore, publishDigest, SEQ_RESERVE } from '../../../src/buffer/store.js';
import { TieredStore } from '../../../src/buffer/tiered.js';
import { storeContract } from './contract.js';

const tempDb = (): string => join(mkdtempSync(join(tmpdir(), 'edgehaul-tier-')), 'b.db');
const ev = (route: string, n: number): RoutedEvent => ({
  route,
  kafkaTopic: 't',
  key: 'k',
  topic: 'd/k',
  payload: Buffer.from(String(n)),
  receivedAt: 1000 + n,
});
const mem = (route: string, ...ns: number[]) => ({
  route,
  priority: 0,
  durability: 'memory' as const,
  events: ns.map((n) => ev(route, n)),
});
const disk = (route: string, ...ns: number[]) => ({
  route,
  priority: 0,
  durability: 'disk' as const,
  events: ns.map((n) => ev(route, n)),
});

storeContract('TieredStore, memory routes', (path) => new TieredStore(openSqliteStore(path, { synchronous: 'full' })), {
  durability: 'memory',
});
storeContract('TieredStore, disk routes', (path) => new TieredStore(openSqliteStore(path, { synchronous: 'full' })), {
  durability: 'disk',
});

const payloads = (commits: ReturnType<TieredStore['readNext']>): string[] =>
  commits.flatMap((c) => c.events.map((e) => `${e.seq}:${e.payload.toString()}`));

test('memory commits touch no table, and their sequence numbers survive a crash without repeating', () => {
  const path = tempDb();
  const sqlite = openSqliteStore(path, { synchronous: 'full' });
  const store = new TieredStore(sqlite);
  const a = store.commit([mem('m', 1, 2)]).ranges[0]!;
  const b = store.commit([mem('m', 3)]).ranges[0]!;
  assert.deepEqual([a.firstSeq, a.lastSeq, b.firstSeq], [1, 2, 3]);
  assert.equal(sqlite.stats().commits, 0, 'nothing stored on disk');
  assert.equal(store.stats().events, 3);
  store.close(); // a crash: memory rows are gone, by definition of the mode
  const after = new TieredStore(openSqliteStore(path, { synchronous: 'full' }));
  const next = after.commit([disk('d', 9)]).ranges[0]!.firstSeq;
  assert.ok(next > 3, `seq ${next} handed out again`);
  assert.ok(next <= 3 + SEQ_RESERVE + 1);
  after.close();
});

test('within a priority, disk rows are read before memory rows; higher priority first', () => {
  const store = new TieredStore(openSqliteStore(tempDb(), { synchronous: 'normal' }));
  store.commit([mem('m', 1)]);
  store.commit([disk('d', 2)]);
  store.commit([{ ...mem('alarm', 3), priority: 5 }]);
  assert.deepEqual(payloads(store.readNext(100, 1e9)), ['3:3', '2:2', '1:1']);
  store.close();
});

test('rows that wait too long or exceed the memory bound spill to disk, oldest first, with their sequence numbers', () => {
  let now = 10_000;
  const sqlite = openSqliteStore(tempDb(), { synchronous: 'normal' });
  const store = new TieredStore(sqlite, () => now);
  store.commit([mem('m', 1)]);
  now += 1000;
  store.commit([mem('m', 2)]);
  store.commit([mem('m', 3)]);
  assert.equal(store.spill({ afterMs: 5000, maxBytes: 1e9 }), 0, 'young and within bounds: stays in memory');
  now += 4500; // the first row is now 5.5 s old
  assert.equal(store.spill({ afterMs: 5000, maxBytes: 1e9 }), 1);
  assert.equal(sqlite.stats().events, 1);
  const oneRow = store.bytes('m') / 2;
  assert.equal(store.spill({ afterMs: 1e9, maxBytes: oneRow }), 1, 'over the byte bound: the oldest goes');
  assert.deepEqual(payloads(store.readNext(100, 1e9)), ['1:1', '2:2', '3:3'], 'order and numbers unchanged');
  assert.equal(store.stats().events, 3);
  assert.equal(store.spillAll(), 1);
  assert.equal(sqlite.stats().events, 3);
  store.close();
});

test('rows being sent are not spilled, and removing delivered rows works in both tiers', () => {
  const store = new TieredStore(openSqliteStore(tempDb(), { synchronous: 'normal' }));
  store.commit([mem('m', 1), disk('d', 2)]);
  const sending = store.readNext(100, 1e9);
  assert.equal(store.spill({ afterMs: -1, maxBytes: 0 }, new Set(sending.map((c) => c.id))), 0);
  const removed = store.remove(sending.map((c) => c.id));
  assert.deepEqual(removed.map((r) => r.route).sort(), ['d', 'm']);
  assert.equal(store.bytes(), 0);
  assert.equal(store.stats().events, 1, 'the disk row counts until its delete is committed');
  store.close();
});

test('the full policy sees memory rows: eviction candidates include them after disk rows', () => {
  const store = new TieredStore(openSqliteStore(tempDb(), { synchronous: 'normal' }));
  store.commit([mem('m', 1)]);
  store.commit([disk('m', 2)]);
  const rows = store.oldestRows({ route: 'm' }, 10, new Set());
  assert.equal(rows.length, 2);
  assert.ok(rows[0]!.id > 0 && rows[1]!.id < 0);
  store.close();
});

test('a publish committed only to memory routes is recognised as a re-send while the daemon runs, without a disk write', () => {
  const path = tempDb();
  const store = new TieredStore(openSqliteStore(path, { synchronous: 'full' }));
  const id = { clientId: 'dev-1', packetId: 7, digest: publishDigest('d/k', Buffer.from('1')) };
  assert.equal(store.isResend(id), false);
  store.commit([mem('m', 0)]); // the first sequence numbers: one write of the reserved block (allocate)
  const walBefore = statSync(`${path}-wal`, { throwIfNoEntry: false })?.size ?? 0;
  store.commit([mem('m', 1)], [], { publishes: [id] });
  assert.equal(store.isResend(id), true, 'a DUP re-send of it would otherwise become a second event');
  assert.equal(
    statSync(`${path}-wal`, { throwIfNoEntry: false })?.size ?? 0,
    walBefore,
    'memory routes write nothing to flash',
  );
  store.close();
});
