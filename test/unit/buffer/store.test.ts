import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { RoutedEvent } from '../../../src/core/event.js';
import { openSqliteStore } from '../../../src/buffer/store.js';
import { GroupCommitWriter } from '../../../src/buffer/writer.js';

const ev = (key: string, n: number): RoutedEvent => ({ route: 'r', kafkaTopic: 't', key, topic: `d/${key}`, payload: Buffer.from(`{"n":${n}}`), receivedAt: 1000 + n });
const tempDb = (): string => join(mkdtempSync(join(tmpdir(), 'edgehaul-store-')), 'b.db');

test('sequence numbers never repeat, across deletes and reopen', () => {
  const path = tempDb();
  let store = openSqliteStore(path, { synchronous: 'full' });
  assert.deepEqual(store.append([ev('a', 1), ev('b', 2)]), { firstSeq: 1, lastSeq: 2 });
  assert.deepEqual(store.append([ev('a', 3)]), { firstSeq: 3, lastSeq: 3 });
  store.remove(store.readOldest(100).map((c) => c.id));
  assert.equal(store.stats().events, 0);
  store.close();
  store = openSqliteStore(path, { synchronous: 'full' });
  assert.deepEqual(store.append([ev('a', 4)]), { firstSeq: 4, lastSeq: 4 });
  store.close();
});

test('a reopened store holds what was committed, oldest first, with its sequence numbers', () => {
  const path = tempDb();
  const store = openSqliteStore(path, { synchronous: 'normal' });
  store.append([ev('a', 1), ev('b', 2)]);
  store.append([ev('a', 3)]);
  store.close();
  const again = openSqliteStore(path, { synchronous: 'normal' });
  const commits = again.readOldest(100);
  assert.deepEqual(commits.flatMap((c) => c.events.map((e) => [e.seq, e.key, e.payload.toString(), e.receivedAt])), [
    [1, 'a', '{"n":1}', 1001], [2, 'b', '{"n":2}', 1002], [3, 'a', '{"n":3}', 1003],
  ]);
  const stats = again.stats();
  assert.equal(stats.events, 3);
  assert.equal(stats.commits, 2);
  assert.equal(stats.oldestReceivedAt, 1001);
  again.close();
});

test('readOldest returns whole commits up to the event limit, and pages after an id', () => {
  const store = openSqliteStore(tempDb(), { synchronous: 'normal' });
  for (let i = 0; i < 5; i++) store.append([ev('a', 2 * i), ev('a', 2 * i + 1)]);
  assert.equal(store.readOldest(3).length, 1);
  assert.equal(store.readOldest(4).length, 2);
  assert.equal(store.readOldest(1).length, 1, 'at least one commit even if larger than the limit');
  const first = store.readOldest(4);
  assert.deepEqual(store.readOldest(100, first.at(-1)!.id).map((c) => c.events[0]!.seq), [5, 7, 9]);
  store.close();
});

test('the group-commit writer settles every publish after one transaction, and failures are not acknowledged', async () => {
  const store = openSqliteStore(tempDb(), { synchronous: 'normal' });
  const reports: number[] = [];
  const writer = new GroupCommitWriter(store, { maxWaitMs: 0, maxEvents: 1000, maxBytes: 1 << 20 }, (r) => reports.push(r.events), () => undefined);
  const settled = await Promise.all([1, 2, 3].map((n) => new Promise<Error | null>((resolve) => writer.submit([ev('a', n)], resolve))));
  assert.deepEqual(settled, [null, null, null]);
  assert.deepEqual(reports, [3], 'one commit for the three publishes');
  assert.equal(store.stats().events, 3);

  const errors: number[] = [];
  const failing = new GroupCommitWriter({ ...store, append: () => { throw new Error('disk full'); } }, { maxWaitMs: 1, maxEvents: 1000, maxBytes: 1 << 20 }, () => undefined, (_e, n) => errors.push(n));
  const results = await Promise.all([1, 2].map((n) => new Promise<Error | null>((resolve) => failing.submit([ev('b', n)], resolve))));
  assert.ok(results.every((r) => r instanceof Error && r.message === 'disk full'));
  assert.deepEqual(errors, [2]);
  store.close();
});

test('the writer commits at once when max_events are waiting', () => {
  const store = openSqliteStore(tempDb(), { synchronous: 'normal' });
  const reports: number[] = [];
  const writer = new GroupCommitWriter(store, { maxWaitMs: 10_000, maxEvents: 2, maxBytes: 1 << 20 }, (r) => reports.push(r.events), () => undefined);
  writer.submit([ev('a', 1)], () => undefined);
  assert.deepEqual(reports, []);
  writer.submit([ev('a', 2)], () => undefined);
  assert.deepEqual(reports, [2]);
  store.close();
});

test('the writer commits at once when max_bytes of payload are waiting, and readOldest honours a byte bound', () => {
  const store = openSqliteStore(tempDb(), { synchronous: 'normal' });
  const reports: number[] = [];
  const writer = new GroupCommitWriter(store, { maxWaitMs: 10_000, maxEvents: 1000, maxBytes: 2048 }, (r) => reports.push(r.events), () => undefined);
  const big = (n: number): RoutedEvent => ({ ...ev('a', n), payload: Buffer.alloc(1000, n) });
  writer.submit([big(1)], () => undefined);
  writer.submit([big(2)], () => undefined);
  assert.deepEqual(reports, []);
  writer.submit([big(3)], () => undefined);
  assert.deepEqual(reports, [3]);
  store.append([big(4)]);
  store.append([big(5)]);
  assert.equal(store.readOldest(100, 0, 1500).length, 1, 'only the first commit fits');
  assert.equal(store.readOldest(100, 0, 100).length, 1, 'at least one commit');
  assert.equal(store.readOldest(100, 0, 10_000).length, 3);
  store.close();
});
