import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { RoutedEvent } from '../../../src/core/event.js';
import { BUDGET_BURST_MS, DEFAULT_COMMIT_BYTES, FlashPacer } from '../../../src/buffer/pacer.js';
import type { BufferLimits } from '../../../src/buffer/policy.js';
import { openSqliteStore } from '../../../src/buffer/store.js';
import { GroupCommitWriter, type CommitReport } from '../../../src/buffer/writer.js';

const DAY = 86_400_000;

test('the bucket starts with a burst, is drained by what was written and refills at the budget rate', () => {
  const clock = { now: 0, written: 0 };
  // 10 bytes a ms: the burst is ten seconds of it, 100 kB
  const p = new FlashPacer(
    { bytesPerDay: 10 * DAY, maxWaitMs: 1000 },
    () => clock.written,
    () => clock.now,
  );
  assert.equal(p.balance, 10 * BUDGET_BURST_MS);
  assert.equal(p.delayMs(), 0);
  clock.written += 10 * BUDGET_BURST_MS; // the burst is spent (by anything the process wrote)
  // no commit measured yet: one is assumed to cost DEFAULT_COMMIT_BYTES
  assert.equal(p.delayMs(), Math.ceil(DEFAULT_COMMIT_BYTES / 10));
  clock.now += 1000;
  assert.equal(p.delayMs(), Math.ceil((DEFAULT_COMMIT_BYTES - 10_000) / 10));
  // a commit that writes 2000 bytes teaches the estimate
  const before = p.start();
  clock.written += 2000;
  p.committed(before);
  assert.equal(p.bytesPerCommit, 2000);
  assert.equal(p.balance, 8000);
  assert.equal(p.delayMs(), 0);
  clock.written += 9000;
  assert.equal(p.delayMs(), 300, '1000 bytes in debt, 2000 needed: 300 ms at 10 B/ms');
  // the estimate is a moving average
  const b2 = p.start();
  clock.written += 7000;
  p.committed(b2);
  assert.equal(p.bytesPerCommit, 2000 + 0.2 * 5000);
});

test('a larger budget refills faster; the bucket never holds more than its burst', () => {
  const clock = { now: 0, written: 0 };
  const p = new FlashPacer(
    { bytesPerDay: 10 * DAY, maxWaitMs: 1000 },
    () => clock.written,
    () => clock.now,
  );
  clock.now += 1e9;
  assert.equal(p.balance, 10 * BUDGET_BURST_MS);
  clock.written += 10 * BUDGET_BURST_MS + 1000;
  assert.equal(p.delayMs(), Math.ceil((DEFAULT_COMMIT_BYTES + 1000) / 10));
  p.reconfigure({ bytesPerDay: 100 * DAY, maxWaitMs: 500 });
  assert.equal(p.maxWaitMs, 500);
  assert.equal(p.delayMs(), Math.ceil((DEFAULT_COMMIT_BYTES + 1000) / 100));
});

test('a tiny budget still lets two commits through at once', () => {
  const p = new FlashPacer(
    { bytesPerDay: 1000, maxWaitMs: 1000 },
    () => 0,
    () => 0,
  );
  assert.equal(p.balance, 2 * DEFAULT_COMMIT_BYTES);
});

const ev = (n: number): RoutedEvent => ({
  route: 'r',
  kafkaTopic: 't',
  key: 'k',
  topic: 'd/k',
  payload: Buffer.alloc(100, n % 256),
  receivedAt: 1000 + n,
});
const roomy: BufferLimits = {
  totalBytes: 1 << 30,
  routes: new Map([['r', { priority: 0, whenFull: 'block', maxBytes: null }]]),
};

/** A real store whose "bytes written" are counted by the test: 8 KiB per commit. */
function paced(maxWaitMs: number, maxEvents = 1000) {
  const store = openSqliteStore(join(mkdtempSync(join(tmpdir(), 'edgehaul-pacer-')), 'b.db'), {
    synchronous: 'normal',
  });
  const io = { written: 0 };
  const commit = store.commit.bind(store);
  store.commit = (...args) => {
    io.written += 8192;
    return commit(...args);
  };
  // 8 KiB a second: the burst is spent by the first commits, then one commit a second
  const pacer = new FlashPacer({ bytesPerDay: 8192 * 86_400, maxWaitMs }, () => io.written);
  const commits: CommitReport[] = [];
  const writer = new GroupCommitWriter(
    store,
    { maxWaitMs: 0, maxEvents, maxBytes: 1 << 20, pacer },
    () => roomy,
    () => new Set(),
    { onCommit: (r) => commits.push(r), onError: () => undefined, onFull: () => undefined },
  );
  /** resolves with the time from submit to settle, and whether the event was in the store by then */
  const submit = (n: number): Promise<{ ms: number; stored: boolean; err: Error | null }> => {
    const t0 = performance.now();
    return new Promise((resolve) =>
      writer.submit([ev(n)], (err) => {
        const stored = store.readNext(1e9, 1e12).some((c) => c.events.some((e) => e.receivedAt === 1000 + n));
        resolve({ ms: performance.now() - t0, stored, err });
      }),
    );
  };
  const drain = async (): Promise<void> => {
    // spend the burst: commits without pacing until the pacer asks for a wait
    for (let i = 0; pacer.delayMs() === 0 && i < 100; i++) await submit(10_000 + i);
    assert.ok(pacer.delayMs() > 0, 'the burst is spent');
  };
  return { store, writer, pacer, commits, submit, drain };
}

test('a paced commit waits for the budget, at most max wait, carries what came meanwhile, and settles only after it', async () => {
  const h = paced(150);
  await h.drain();
  const before = h.commits.length;
  const results = await Promise.all([1, 2, 3].map((n) => h.submit(n)));
  for (const r of results) {
    assert.equal(r.err, null);
    assert.ok(r.stored, 'settled only once its event is in the store');
    assert.ok(r.ms >= 140, `waited for the budget: ${r.ms} ms`);
    assert.ok(r.ms < 1000, `bounded by max wait (150 ms), not the budget's 1 s: ${r.ms} ms`);
  }
  const after = h.commits.slice(before);
  assert.deepEqual(
    after.map((c) => [c.events, c.messages]),
    [[3, 3]],
    'one commit for all three',
  );
  assert.ok(after[0]!.pacedMs! >= 140);
  h.store.close();
});

test('a commit forced by max_events does not wait for the budget', async () => {
  const h = paced(5000, 4);
  await h.drain();
  const t0 = performance.now();
  const results = await Promise.all([1, 2, 3, 4].map((n) => h.submit(n)));
  assert.ok(
    results.every((r) => r.err === null && r.stored),
    'all stored before settled',
  );
  assert.ok(performance.now() - t0 < 2000, 'not held for the 5 s max wait');
  assert.equal(h.commits.at(-1)!.events, 4);
  h.store.close();
});

test('flush() (shutdown) commits a paced batch at once', async () => {
  const h = paced(5000);
  await h.drain();
  const commitsBefore = h.commits.length;
  const pending = h.submit(1);
  await new Promise((r) => setImmediate(r));
  assert.equal(h.commits.length, commitsBefore, 'held by the budget');
  h.writer.flush();
  const r = await pending;
  assert.ok(r.stored && r.err === null);
  assert.equal(h.commits.length, commitsBefore + 1);
  assert.ok(r.ms < 2000);
  h.store.close();
});
