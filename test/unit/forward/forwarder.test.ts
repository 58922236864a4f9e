import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import type { RoutedEvent } from '../../../src/core/event.js';
import { openSqliteStore } from '../../../src/buffer/store.js';
import { decodeBatch } from '../../../src/forward/format.js';
import { checkConfirmations, Forwarder } from '../../../src/forward/forwarder.js';
import type { Confirmation, OutRecord, RecordSink } from '../../../src/forward/sink.js';
import { Stats } from '../../../src/ops/stats.js';
import { waitFor } from '../../support/poll.js';

const ev = (key: string, n: number): RoutedEvent => ({
  route: 'r',
  kafkaTopic: 't',
  key,
  topic: `d/${key}`,
  payload: Buffer.from(String(n)),
  receivedAt: 1000 + n,
});
const silent = pino({ level: 'silent' });
const options = {
  gatewayId: 'gw',
  maxEventsPerRecord: 2,
  maxEventsPerSend: 100,
  maxSendBytes: 1 << 20,
  maxBytesPerSec: 0,
  lingerMs: 0,
  retryInitialMs: 5,
  retryMaxMs: 20,
};

/** A sink that fails the first `failures` sends, then records what it accepts. */
class FakeSink implements RecordSink {
  accepted: OutRecord[] = [];
  attempts = 0;
  constructor(private failures: number) {}
  async connect(): Promise<void> {}
  async send(records: readonly OutRecord[]): Promise<Confirmation[]> {
    this.attempts++;
    if (this.failures-- > 0) throw new Error('broker unreachable');
    this.accepted.push(...records);
    return records.map((_, i) => ({ partition: 0, offset: String(this.accepted.length - records.length + i) }));
  }
  async close(): Promise<void> {}
}

test('events leave the buffer only after the sink accepted them, retried after failures, in per-key order', async () => {
  const store = openSqliteStore(join(mkdtempSync(join(tmpdir(), 'edgehaul-fwd-')), 'b.db'), { synchronous: 'normal' });
  store.commit([{ route: 'r', priority: 0, events: [ev('a', 1), ev('b', 2), ev('a', 3)] }]);
  store.commit([{ route: 'r', priority: 0, events: [ev('a', 4), ev('a', 5)] }]);
  const sink = new FakeSink(3);
  const stats = new Stats();
  const fwd = new Forwarder(store, sink, options, stats, silent);
  fwd.start();
  await waitFor('delivery', () => store.stats().events === 0, 5000);
  assert.equal(sink.attempts, 4);
  assert.equal(stats.send_errors_total, 3);
  assert.equal(stats.sent_events_total, 5);
  const byKey = new Map<string, number[]>();
  for (const r of sink.accepted) {
    const b = decodeBatch(r.value);
    assert.equal(r.key, b.key);
    assert.ok(b.events.length <= 2, 'max_events_per_record holds');
    byKey.set(b.key, [...(byKey.get(b.key) ?? []), ...b.events.map((e) => Number(e.payload.toString()))]);
  }
  assert.deepEqual(byKey.get('a'), [1, 3, 4, 5]);
  assert.deepEqual(byKey.get('b'), [2]);
  assert.equal(await fwd.stop(Date.now() + 1000), 0);
  store.close();
});

/**
 * kafkajs' failure on a leader change (its issue #1303): the send resolves, but
 * the records of some partitions got no response. Each returned entry stands
 * for one record; null means no partition and offset came back for it.
 */
class PartialSink implements RecordSink {
  accepted: OutRecord[] = [];
  sends = 0;
  constructor(
    private readonly partialSends: number,
    private readonly unconfirmed: (r: OutRecord, i: number) => boolean,
  ) {}
  async connect(): Promise<void> {}
  async send(records: readonly OutRecord[]): Promise<Array<Confirmation | null>> {
    this.sends++;
    const partial = this.sends <= this.partialSends;
    return records.map((r, i) => {
      if (partial && this.unconfirmed(r, i)) return null;
      this.accepted.push(r);
      return { partition: 0, offset: String(this.accepted.length - 1) };
    });
  }
  async close(): Promise<void> {}
}

test('a send that resolves without a confirmation for every record keeps the rows, counts and logs it, degrades health, and sends again', async () => {
  const store = openSqliteStore(join(mkdtempSync(join(tmpdir(), 'edgehaul-fwd-')), 'b.db'), { synchronous: 'normal' });
  store.commit([{ route: 'r', priority: 0, events: [ev('a', 1), ev('b', 2), ev('a', 3), ev('c', 4)] }]);
  // key b's record gets no confirmation in the first send; the send itself resolves
  const sink = new PartialSink(1, (r) => r.key === 'b');
  const stats = new Stats();
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l) as Record<string, unknown>) });
  const fwd = new Forwarder(store, sink, options, stats, log);
  fwd.start();
  await waitFor('delivery', () => store.stats().events === 0, 5000);
  assert.equal(sink.sends, 2, 'the partially confirmed send is retried as a whole');
  assert.equal(stats.upstream_unconfirmed_records_total, 1);
  assert.equal(stats.upstream_reordered_records_total, 0);
  assert.ok(stats.upstream_unconfirmed_at > 0);
  assert.equal(stats.send_errors_total, 1);
  assert.equal(stats.sent_events_total, 4, 'counted once, when all were confirmed');
  const line = lines.find((l) => l.code === 'EH_ERR_UPSTREAM_UNCONFIRMED');
  assert.ok(line !== undefined, 'logged with its code');
  assert.equal(line.records, 1);
  const delivered = sink.accepted.flatMap((r) => decodeBatch(r.value).events.map((e) => Number(e.payload.toString())));
  assert.deepEqual(
    [...new Set(delivered)].sort(),
    [1, 2, 3, 4],
    'every event delivered (the retry duplicates a and c, with the same sequence numbers)',
  );
  assert.equal(await fwd.stop(Date.now() + 1000), 0);
  store.close();
});

test('checkConfirmations: a missing or malformed confirmation is a failure; a confirmed record after an unconfirmed one of its key is counted as reordered', () => {
  const r = (key: string): OutRecord => ({ topic: 't', key, value: Buffer.alloc(1), headers: {} });
  const ok = (offset: string): Confirmation => ({ partition: 1, offset });
  assert.equal(checkConfirmations([r('a'), r('b')], [ok('0'), ok('7')]), null);
  assert.deepEqual(
    checkConfirmations([r('a'), r('b')], [ok('0')]),
    { records: 1, reordered: 0 },
    'fewer confirmations than records',
  );
  assert.deepEqual(checkConfirmations([r('a')], [{ partition: -1, offset: '3' }]), { records: 1, reordered: 0 });
  assert.deepEqual(
    checkConfirmations([r('a')], [ok('-1')]),
    { records: 1, reordered: 0 },
    'an offset of -1 is no evidence of a write',
  );
  assert.deepEqual(checkConfirmations([r('a'), r('b'), r('a')], [null, ok('1'), ok('2')]), {
    records: 1,
    reordered: 1,
  });
});

test('higher-priority commits are sent before an older lower-priority backlog', async () => {
  const store = openSqliteStore(join(mkdtempSync(join(tmpdir(), 'edgehaul-fwd-')), 'b.db'), { synchronous: 'normal' });
  const alarm = (n: number): RoutedEvent => ({ ...ev('x', n), route: 'alarms' });
  store.commit([{ route: 'r', priority: 0, events: [ev('a', 1), ev('a', 2)] }]);
  store.commit([{ route: 'r', priority: 0, events: [ev('a', 3)] }]);
  store.commit([{ route: 'alarms', priority: 10, events: [alarm(4)] }]);
  const sink = new FakeSink(0);
  const fwd = new Forwarder(store, sink, { ...options, maxEventsPerSend: 1 }, new Stats(), silent);
  fwd.start();
  await waitFor('delivery', () => store.stats().events === 0, 5000);
  assert.deepEqual(
    sink.accepted.map((r) => decodeBatch(r.value).route),
    ['alarms', 'r', 'r'],
  );
  await fwd.stop(Date.now() + 1000);
  store.close();
});

test('an upload cap holds the forwarder to about max_bytes_per_sec', async () => {
  const store = openSqliteStore(join(mkdtempSync(join(tmpdir(), 'edgehaul-fwd-')), 'b.db'), { synchronous: 'normal' });
  for (let i = 0; i < 6; i++)
    store.commit([{ route: 'r', priority: 0, events: [{ ...ev('a', i), payload: Buffer.alloc(10_000, i) }] }]);
  const sink = new FakeSink(0);
  // 20 kB/s with a 20 kB burst: six 10 kB records need at least (60 - 20) / 20 = 2 s
  const fwd = new Forwarder(
    store,
    sink,
    { ...options, maxEventsPerSend: 1, maxSendBytes: 20_000, maxBytesPerSec: 20_000 },
    new Stats(),
    silent,
  );
  const started = Date.now();
  fwd.start();
  await waitFor('delivery', () => store.stats().events === 0, 10_000);
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 1800, `took ${elapsed} ms`);
  await fwd.stop(Date.now() + 1000);
  store.close();
});

test('stop() with the sink down returns by the deadline and keeps the events', async () => {
  const store = openSqliteStore(join(mkdtempSync(join(tmpdir(), 'edgehaul-fwd-')), 'b.db'), { synchronous: 'normal' });
  const sink = new FakeSink(Number.POSITIVE_INFINITY);
  const fwd = new Forwarder(
    store,
    sink,
    { ...options, retryInitialMs: 10_000, retryMaxMs: 10_000 },
    new Stats(),
    silent,
  );
  fwd.start();
  store.commit([{ route: 'r', priority: 0, events: [ev('a', 1)] }]);
  fwd.notify();
  await waitFor('a failed attempt', () => sink.attempts > 0, 5000);
  const started = Date.now();
  assert.equal(await fwd.stop(Date.now() + 500), 1);
  assert.ok(Date.now() - started < 2000, 'stop is not held by the backoff');
  store.close();
});

test('records and requests stay under max_send_bytes, in order, so Kafka never refuses a batch as too large', () => {
  const store = openSqliteStore(join(mkdtempSync(join(tmpdir(), 'edgehaul-fwd-')), 'b.db'), { synchronous: 'normal' });
  const fwd = new Forwarder(
    store,
    new FakeSink(0),
    { ...options, maxEventsPerRecord: 1000, maxSendBytes: 20_000 },
    new Stats(),
    silent,
  );
  const events = Array.from({ length: 100 }, (_, i) => ({
    ...ev(i % 2 === 0 ? 'a' : 'b', i),
    seq: i + 1,
    payload: Buffer.alloc(900, i),
  }));
  const records = fwd.toRecords([{ id: 1, route: 'r', priority: 0, events, bytes: 0 }]);
  const requests = fwd.toRequests(records);
  for (const r of records) assert.ok(r.value.length <= 20_000, `record of ${r.value.length} B`);
  for (const q of requests) assert.ok(q.reduce((n, r) => n + r.value.length, 0) <= 20_000);
  const seqs = requests.flat().flatMap((r) => decodeBatch(r.value).events.map((e) => e.seq));
  assert.deepEqual(
    [...seqs].sort((x, y) => x - y),
    events.map((e) => e.seq),
    'every event once',
  );
  for (const key of ['a', 'b']) {
    const ofKey = requests
      .flat()
      .filter((r) => r.key === key)
      .flatMap((r) => decodeBatch(r.value).events.map((e) => e.seq));
    assert.deepEqual(
      ofKey,
      [...ofKey].sort((x, y) => x - y),
      `key ${key} in order`,
    );
  }
  store.close();
});

/** A sink whose sends wait until `release()`: a batch in flight at a chosen moment. */
class GatedSink implements RecordSink {
  accepted: OutRecord[] = [];
  inFlight = 0;
  closed = false;
  private gate: (() => void) | null = null;
  async connect(): Promise<void> {}
  async send(records: readonly OutRecord[]): Promise<Confirmation[]> {
    this.inFlight++;
    await new Promise<void>((resolve) => (this.gate = resolve));
    this.inFlight--;
    this.accepted.push(...records);
    return records.map((_, i) => ({ partition: 0, offset: String(this.accepted.length - records.length + i) }));
  }
  release(): void {
    this.gate?.();
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

test('pause (a Kafka reconfiguration) lets the batch in flight finish and leaves the rest for the next forwarder: nothing twice, nothing reordered', async () => {
  const store = openSqliteStore(join(mkdtempSync(join(tmpdir(), 'edgehaul-fwd-')), 'b.db'), { synchronous: 'normal' });
  for (let i = 1; i <= 4; i++) store.commit([{ route: 'r', priority: 0, events: [ev('a', i)] }]);
  const first = new GatedSink();
  const old = new Forwarder(store, first, { ...options, maxEventsPerSend: 1 }, new Stats(), silent);
  old.start();
  await waitFor('a send in flight', () => first.inFlight === 1, 5000);
  const paused = old.pause();
  first.release();
  await paused;
  assert.ok(first.closed, 'the old sink is closed');
  assert.deepEqual(
    first.accepted.flatMap((r) => decodeBatch(r.value).events.map((e) => Number(e.payload.toString()))),
    [1],
  );
  await waitFor('the acknowledged batch to leave the buffer file', () => store.stats().events === 3, 5000);

  const second = new FakeSink(0);
  const next = new Forwarder(store, second, options, new Stats(), silent);
  next.start();
  await waitFor('delivery', () => store.stats().events === 0, 5000);
  assert.deepEqual(
    second.accepted.flatMap((r) => decodeBatch(r.value).events.map((e) => Number(e.payload.toString()))),
    [2, 3, 4],
  );
  await next.stop(Date.now() + 1000);
  store.close();
});

test('a store that fails under the forwarder (read or delete) is counted and retried; the loop lives on and delivers everything once', async () => {
  const store = openSqliteStore(join(mkdtempSync(join(tmpdir(), 'edgehaul-fwd-')), 'b.db'), { synchronous: 'normal' });
  store.commit([{ route: 'r', priority: 0, events: [ev('a', 1), ev('a', 2)] }]);
  store.commit([{ route: 'r', priority: 0, events: [ev('a', 3)] }]);
  let readFailures = 2;
  let removeFailures = 1;
  const failing: typeof store = Object.create(store) as typeof store;
  failing.readNext = (...args) => {
    if (readFailures-- > 0) throw new Error('SQLITE_IOERR: disk I/O error');
    return store.readNext(...args);
  };
  failing.remove = (ids) => {
    if (removeFailures-- > 0) throw new Error('SQLITE_IOERR: disk I/O error');
    return store.remove(ids);
  };
  const sink = new FakeSink(0);
  const stats = new Stats();
  const fwd = new Forwarder(failing, sink, options, stats, silent);
  fwd.start();
  await waitFor('delivery', () => store.stats().events === 0, 5000);
  assert.equal(stats.store_read_errors_total, 3);
  // the send whose delete failed is sent again with the same sequence numbers: duplicates a consumer drops
  const seen = sink.accepted.flatMap((r) => decodeBatch(r.value).events.map((e) => `${e.seq}:${e.payload.toString()}`));
  assert.deepEqual([...new Set(seen)], ['1:1', '2:2', '3:3']);
  assert.equal(await fwd.stop(Date.now() + 1000), 0);
  store.close();
});
