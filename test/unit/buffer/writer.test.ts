import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { RoutedEvent } from '../../../src/core/event.js';
import { storedSize, type BufferLimits, type FullPolicy } from '../../../src/buffer/policy.js';
import { openSqliteStore, type BufferStore } from '../../../src/buffer/store.js';
import { GroupCommitWriter, type CommitReport, type GroupCommitOptions } from '../../../src/buffer/writer.js';
import { waitFor } from '../../support/poll.js';

const tempDb = (): string => join(mkdtempSync(join(tmpdir(), 'edgehaul-writer-')), 'b.db');
const ev = (route: string, n: number, bytes = 100): RoutedEvent => ({
  route,
  kafkaTopic: 't',
  key: 'k',
  topic: 'd/k',
  payload: Buffer.alloc(bytes, n % 256),
  receivedAt: 1000 + n,
});
const EVENT = storedSize(ev('r', 0));

function harness(
  limits: BufferLimits,
  options: GroupCommitOptions = { maxWaitMs: 0, maxEvents: 1000, maxBytes: 1 << 20 },
) {
  const store = openSqliteStore(tempDb(), { synchronous: 'normal' });
  const commits: CommitReport[] = [];
  const errors: number[] = [];
  const lost: Array<[string, number, string]> = [];
  const writer = new GroupCommitWriter(
    store,
    options,
    () => limits,
    () => new Set(),
    {
      onCommit: (r) => commits.push(r),
      onError: (_e, n) => errors.push(n),
      onFull: (route, n, how) => lost.push([route, n, how]),
    },
  );
  const submit = (events: RoutedEvent[]): Promise<Error | null> =>
    new Promise((resolve) => writer.submit(events, resolve));
  const payloads = (s: BufferStore, route: string): number[] =>
    s
      .readNext(1e9, 1e12)
      .filter((c) => c.route === route)
      .flatMap((c) => c.events.map((e) => e.payload[0]!));
  return { store, writer, commits, errors, lost, submit, payloads };
}

const roomy: BufferLimits = {
  totalBytes: 1 << 30,
  routes: new Map([['r', { priority: 0, whenFull: 'block', maxBytes: null }]]),
};
const routeBound = (whenFull: FullPolicy, events: number): BufferLimits => ({
  totalBytes: 1 << 30,
  routes: new Map([['r', { priority: 0, whenFull, maxBytes: events * EVENT + 10 }]]),
});

test('every publish is settled after one transaction', async () => {
  const h = harness(roomy);
  const settled = await Promise.all([1, 2, 3].map((n) => h.submit([ev('r', n)])));
  assert.deepEqual(settled, [null, null, null]);
  assert.deepEqual(
    h.commits.map((c) => [c.events, c.messages]),
    [[3, 3]],
  );
  h.store.close();
});

test('a failed commit acknowledges nothing', async () => {
  const h = harness(roomy);
  h.store.close(); // every write now fails
  const results = await Promise.all([1, 2].map((n) => h.submit([ev('r', n)])));
  assert.ok(results.every((r) => r instanceof Error));
  assert.deepEqual(h.errors, [2]);
});

test('the writer commits at once at max_events or max_bytes', () => {
  const h = harness(roomy, { maxWaitMs: 10_000, maxEvents: 2, maxBytes: 250 });
  h.writer.submit([ev('r', 1)], () => undefined);
  assert.equal(h.commits.length, 0);
  h.writer.submit([ev('r', 2)], () => undefined);
  assert.equal(h.commits.length, 1, 'two events');
  h.writer.submit([ev('r', 3, 300)], () => undefined);
  assert.equal(h.commits.length, 2, '300 payload bytes');
  h.store.close();
});

test('drop_oldest evicts exactly the oldest rows it needs, and counts them', async () => {
  const h = harness(routeBound('drop_oldest', 3));
  for (let n = 1; n <= 3; n++) assert.equal(await h.submit([ev('r', n)]), null);
  assert.equal(await h.submit([ev('r', 4)]), null);
  assert.equal(await h.submit([ev('r', 5)]), null);
  assert.deepEqual(h.payloads(h.store, 'r'), [3, 4, 5]);
  assert.deepEqual(h.lost, [
    ['r', 1, 'evicted_oldest'],
    ['r', 1, 'evicted_oldest'],
  ]);
  h.store.close();
});

test('drop_newest keeps what is stored and counts the new events it drops (they are still acknowledged)', async () => {
  const h = harness(routeBound('drop_newest', 2));
  for (let n = 1; n <= 4; n++) assert.equal(await h.submit([ev('r', n)]), null);
  assert.deepEqual(h.payloads(h.store, 'r'), [1, 2]);
  assert.deepEqual(h.lost, [
    ['r', 1, 'dropped_newest'],
    ['r', 1, 'dropped_newest'],
  ]);
  h.store.close();
});

test('block holds acknowledgements until room is made, then releases them in order', async () => {
  const h = harness(routeBound('block', 2));
  assert.equal(await h.submit([ev('r', 1)]), null);
  assert.equal(await h.submit([ev('r', 2)]), null);
  const order: number[] = [];
  const held = [3, 4].map((n) =>
    h.submit([ev('r', n)]).then((err) => {
      order.push(n);
      return err;
    }),
  );
  await waitFor('the writer to hold both', () => h.writer.blockedMessages === 2, 2000);
  assert.deepEqual(order, [], 'nothing acknowledged while full');
  // delivery removes the oldest commit: room for one more
  h.store.remove([h.store.readNext(1, 1e9)[0]!.id]);
  h.writer.kick();
  await waitFor('one release', () => order.length === 1, 2000);
  assert.deepEqual(order, [3]);
  assert.equal(h.writer.blockedMessages, 1, 'message 4 waits behind, not beside, message 3');
  h.store.remove([h.store.readNext(1, 1e9)[0]!.id]);
  h.writer.kick();
  assert.deepEqual(await Promise.all(held), [null, null]);
  assert.deepEqual(order, [3, 4]);
  assert.deepEqual(h.payloads(h.store, 'r'), [3, 4]);
  assert.deepEqual(h.lost, []);
  h.store.close();
});

test('a higher-priority route evicts lower-priority data before its own policy applies', async () => {
  const limits: BufferLimits = {
    totalBytes: 3 * EVENT + 10,
    routes: new Map([
      ['telemetry', { priority: 0, whenFull: 'block', maxBytes: null }],
      ['alarms', { priority: 10, whenFull: 'block', maxBytes: null }],
    ]),
  };
  const h = harness(limits);
  for (let n = 1; n <= 3; n++) assert.equal(await h.submit([ev('telemetry', n)]), null);
  assert.equal(await h.submit([ev('alarms', 7)]), null, 'the alarm is stored, not held');
  assert.deepEqual(h.payloads(h.store, 'alarms'), [7]);
  assert.deepEqual(h.payloads(h.store, 'telemetry'), [2, 3]);
  assert.deepEqual(h.lost, [['telemetry', 1, 'evicted_oldest']]);
  // telemetry cannot evict alarms: it is held
  const held = h.submit([ev('telemetry', 4)]);
  await waitFor('held', () => h.writer.blockedMessages === 1, 2000);
  h.writer.releaseBlocked(new Error('shutdown'));
  assert.match(String(await held), /shutdown/);
  h.store.close();
});

test('an event larger than its bound can never fit: dropped and counted, never held forever', async () => {
  const h = harness(routeBound('block', 1));
  assert.equal(await h.submit([ev('r', 1, 5000)]), null);
  assert.deepEqual(h.lost, [['r', 1, 'dropped_newest']]);
  assert.equal(h.writer.blockedMessages, 0);
  h.store.close();
});

test('with maxMessages (client mode), the commit does not wait once every connection has a message waiting, but yields to the event loop first', async () => {
  const h = harness(roomy, { maxWaitMs: 10_000, maxEvents: 1000, maxBytes: 1 << 20, maxMessages: 2 });
  const first = h.submit([ev('r', 1)]);
  assert.equal(h.commits.length, 0);
  const second = h.submit([ev('r', 2)]);
  assert.equal(
    h.commits.length,
    0,
    'not inside submit: a settle callback that submits again must not chain commits without a yield',
  );
  const timerRan = new Promise<boolean>((resolve) => setImmediate(() => resolve(true)));
  assert.deepEqual(await Promise.all([first, second]), [null, null]);
  assert.equal(h.commits.length, 1);
  assert.equal(await timerRan, true);
  h.store.close();
});

test('once min_events wait, the commit does not wait max_wait_ms', async () => {
  const h = harness(roomy, { maxWaitMs: 60_000, maxEvents: 1000, maxBytes: 1 << 20, minEvents: 3 });
  const settled = Promise.all([1, 2, 3].map((n) => h.submit([ev('r', n)])));
  assert.equal(h.commits.length, 0, 'not synchronously: the rest of the socket read joins the commit');
  assert.deepEqual(await settled, [null, null, null]);
  assert.deepEqual(
    h.commits.map((c) => c.events),
    [3],
  );
  h.store.close();
});

test('a message that only fed transform state or became a dead letter is acknowledged by the commit that stores it, with the checkpoints', async () => {
  const store = openSqliteStore(tempDb(), { synchronous: 'normal' });
  let pendingState: Array<{ route: string; step: number; state: Buffer | null }> = [
    { route: 'win', step: 2, state: Buffer.from('open') },
  ];
  const lostAgain: number[] = [];
  const writer = new GroupCommitWriter(
    store,
    { maxWaitMs: 0, maxEvents: 1000, maxBytes: 1 << 20 },
    () => roomy,
    () => new Set(),
    {
      onCommit: () => undefined,
      onError: () => undefined,
      onFull: () => undefined,
      checkpoints: () => {
        const out = pendingState;
        pendingState = [];
        return out;
      },
      checkpointsLost: (s) => lostAgain.push(s.length),
    },
  );
  const dead = {
    at: 5,
    route: 'r',
    step: '0:decode',
    reason: 'decode json: not JSON',
    topic: 't',
    clientId: 'c',
    payload: Buffer.from('x'),
  };
  const settled = await Promise.all([
    new Promise((resolve) => writer.submit([], resolve)),
    new Promise((resolve) => writer.submit([], resolve, [dead])),
  ]);
  assert.deepEqual(settled, [null, null]);
  assert.deepEqual(
    store.loadStates().map((s) => [s.route, s.step, s.state.toString()]),
    [['win', 2, 'open']],
  );
  assert.deepEqual(
    store.recentDeadLetters(10).map((d) => d.reason),
    ['decode json: not JSON'],
  );

  // a failed commit hands its checkpoints back and acknowledges nothing
  pendingState = [{ route: 'win', step: 2, state: Buffer.from('closed') }];
  store.close();
  const failed = await new Promise((resolve) => writer.submit([], resolve));
  assert.ok(failed instanceof Error);
  assert.deepEqual(lostAgain, [1]);
});

test('the filesystem bound (diskBytes) applies like the total bound, but an event above it is held, not dropped as one that can never fit; holding is reported', async () => {
  const held: Array<[string[], number]> = [];
  let limits: BufferLimits = {
    totalBytes: 1 << 30,
    diskBytes: 2 * EVENT + 10,
    routes: new Map([['r', { priority: 0, whenFull: 'block', maxBytes: null }]]),
  };
  const store = openSqliteStore(tempDb(), { synchronous: 'normal' });
  const writer = new GroupCommitWriter(
    store,
    { maxWaitMs: 0, maxEvents: 1000, maxBytes: 1 << 20 },
    () => limits,
    () => new Set(),
    {
      onCommit: () => undefined,
      onError: () => undefined,
      onFull: () => assert.fail('nothing is dropped'),
      onHeld: (routes, messages) => held.push([[...routes], messages]),
    },
  );
  const submit = (events: RoutedEvent[]): Promise<Error | null> =>
    new Promise((resolve) => writer.submit(events, resolve));
  assert.equal(await submit([ev('r', 1)]), null);
  assert.equal(await submit([ev('r', 2)]), null);
  const third = submit([ev('r', 3)]);
  // a big one above the whole disk bound waits too (the disk may free up), behind the third
  const big = submit([ev('r', 4, 5000)]);
  await waitFor('both held', () => writer.blockedMessages === 2, 2000);
  assert.deepEqual(held.at(-1), [['r'], 2]);
  // the filesystem has room again
  limits = { ...limits, diskBytes: 1 << 20 };
  writer.kick();
  assert.deepEqual(await Promise.all([third, big]), [null, null]);
  assert.equal(store.stats().events, 4);
  store.close();
});
