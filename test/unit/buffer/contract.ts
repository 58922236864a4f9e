import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { RoutedEvent } from '../../../src/core/event.js';
import type { BufferStore } from '../../../src/buffer/store.js';

export interface ContractOptions {
  /**
   * How the groups are committed (CommitGroup.durability). `disk`: what was
   * committed survives a reopen, and removed rows count in stats() and usage()
   * until their delete is committed. `memory`: nothing survives a reopen but
   * the sequence numbers' uniqueness, and a removal is at once.
   */
  readonly durability: 'disk' | 'memory';
}

/**
 * The behaviour every BufferStore implementation shares, run once per
 * implementation: `open` opens (or reopens) the store kept at `path`, a real
 * SQLite file in a fresh temporary directory.
 */
export function storeContract(
  name: string,
  open: (path: string) => BufferStore,
  options: ContractOptions = { durability: 'disk' },
): void {
  const durable = options.durability === 'disk';
  const tempDb = (): string => join(mkdtempSync(join(tmpdir(), 'edgehaul-contract-')), 'b.db');
  const ev = (key: string, n: number, route = 'r'): RoutedEvent => ({
    route,
    kafkaTopic: 't',
    key,
    topic: `d/${key}`,
    payload: Buffer.from(`{"n":${n}}`),
    receivedAt: 1000 + n,
  });
  const group = (route: string, priority: number, events: RoutedEvent[]) => ({
    route,
    priority,
    events,
    durability: options.durability,
  });
  const put = (store: BufferStore, events: RoutedEvent[], route = 'r', priority = 0) =>
    store.commit([group(route, priority, events)]).ranges[0]!;

  describe(`BufferStore contract: ${name}`, () => {
    test('sequence numbers never repeat, across deletes and reopen', () => {
      const path = tempDb();
      let store = open(path);
      assert.deepEqual(put(store, [ev('a', 1), ev('b', 2)]), { route: 'r', firstSeq: 1, lastSeq: 2 });
      assert.deepEqual(put(store, [ev('a', 3)]), { route: 'r', firstSeq: 3, lastSeq: 3 });
      store.remove(store.readNext(100, 1e9).map((c) => c.id));
      assert.equal(store.bytes(), 0, 'removed rows leave the bound at once');
      if (durable)
        assert.equal(store.stats().events, 3, 'and count as what the file holds until their delete is committed');
      else assert.equal(store.stats().events, 0, 'memory rows go at once');
      store.close();
      store = open(path);
      assert.equal(store.stats().events, 0);
      const next = put(store, [ev('a', 4)]);
      if (durable) assert.deepEqual(next, { route: 'r', firstSeq: 4, lastSeq: 4 });
      else assert.ok(next.firstSeq > 3, `seq ${next.firstSeq} handed out again`);
      store.close();
    });

    test('one commit stores one row per route, each with a contiguous sequence range', () => {
      const store = open(tempDb());
      const { ranges } = store.commit([
        group('a', 0, [ev('k', 1, 'a'), ev('k', 2, 'a')]),
        group('b', 5, [ev('k', 3, 'b')]),
      ]);
      assert.deepEqual(ranges, [
        { route: 'a', firstSeq: 1, lastSeq: 2 },
        { route: 'b', firstSeq: 3, lastSeq: 3 },
      ]);
      assert.deepEqual(
        [...store.usage()].map(([r, u]) => [r, u.commits, u.events]),
        [
          ['a', 1, 2],
          ['b', 1, 1],
        ],
      );
      assert.equal(store.bytes(), store.bytes('a') + store.bytes('b'));
      store.close();
    });

    test(`reads give what was committed, highest priority first then oldest, with its sequence numbers; a reopen ${durable ? 'keeps' : 'loses'} it`, () => {
      const path = tempDb();
      const store = open(path);
      put(store, [ev('a', 1), ev('b', 2)]);
      put(store, [ev('a', 3)]);
      put(store, [ev('x', 4, 'alarm')], 'alarm', 9);
      const check = (s: BufferStore): void => {
        const commits = s.readNext(100, 1e9);
        assert.deepEqual(
          commits.flatMap((c) => c.events.map((e) => [e.seq, e.key, e.payload.toString(), e.receivedAt])),
          [
            [4, 'x', '{"n":4}', 1004],
            [1, 'a', '{"n":1}', 1001],
            [2, 'b', '{"n":2}', 1002],
            [3, 'a', '{"n":3}', 1003],
          ],
        );
        const stats = s.stats();
        assert.equal(stats.events, 4);
        assert.equal(stats.commits, 3);
        assert.equal(stats.oldestReceivedAt, 1001);
      };
      check(store);
      store.close();
      const again = open(path);
      if (durable) check(again);
      else
        assert.deepEqual(
          [again.readNext(100, 1e9), again.stats().events, again.stats().oldestReceivedAt],
          [[], 0, null],
        );
      again.close();
    });

    test('readNext returns whole commits within the event and byte limits, and skips rows in flight', () => {
      const store = open(tempDb());
      for (let i = 0; i < 5; i++) put(store, [ev('a', 2 * i), ev('a', 2 * i + 1)]);
      assert.equal(store.readNext(3, 1e9).length, 1);
      assert.equal(store.readNext(4, 1e9).length, 2);
      assert.equal(store.readNext(1, 1e9).length, 1, 'at least one commit even if larger than the limit');
      const first = store.readNext(100, 1e9);
      assert.equal(store.readNext(100, first[0]!.bytes + 1).length, 1, 'byte limit');
      assert.deepEqual(
        store.readNext(100, 1e9, new Set([first[0]!.id, first[1]!.id])).map((c) => c.events[0]!.seq),
        [5, 7, 9],
      );
      store.close();
    });

    test('readNext with a priority floor reads only rows at or above it (upload windows)', () => {
      const store = open(tempDb());
      put(store, [ev('t', 1, 'telemetry')], 'telemetry', 0);
      put(store, [ev('a', 2, 'alarms')], 'alarms', 10);
      put(store, [ev('t', 3, 'telemetry')], 'telemetry', 0);
      assert.deepEqual(
        store.readNext(100, 1e9, undefined, 10).map((c) => c.route),
        ['alarms'],
      );
      assert.deepEqual(store.readNext(100, 1e9, undefined, 11), []);
      assert.deepEqual(
        store.readNext(100, 1e9).map((c) => c.route),
        ['alarms', 'telemetry', 'telemetry'],
      );
      store.close();
    });

    test('evictions happen in the commit that needed the room and are reported as they were', () => {
      const store = open(tempDb());
      put(store, [ev('a', 1), ev('a', 2)], 'low', 0);
      put(store, [ev('a', 3)], 'low', 0);
      const victims = store.oldestRows({ belowPriority: 5 }, 1, new Set());
      assert.equal(victims.length, 1);
      const { evicted } = store.commit(
        [group('high', 5, [ev('x', 9, 'high')])],
        victims.map((v) => v.id),
      );
      assert.deepEqual(
        evicted.map((e) => [e.route, e.events]),
        [['low', 2]],
      );
      assert.equal(store.usage().get('low')!.events, 1);
      assert.equal(store.usage().get('high')!.events, 1);
      assert.deepEqual(
        store.expiredRows('low', 2000, new Set()).map((r) => r.events),
        [1],
      );
      assert.deepEqual(store.expiredRows('low', 1003, new Set()), [], 'newest event not older than the cutoff');
      store.close();
    });

    test('delivered rows vanish from reads and eviction candidates at once, and removing twice counts once', () => {
      const store = open(tempDb());
      put(store, [ev('a', 1)]);
      put(store, [ev('a', 2)]);
      const first = store.readNext(1, 1e9)[0]!;
      assert.deepEqual(
        store.remove([first.id]).map((r) => r.events),
        [1],
      );
      assert.deepEqual(store.remove([first.id]), [], 'removing twice counts once');
      assert.deepEqual(
        store.readNext(10, 1e9).map((c) => c.events[0]!.seq),
        [2],
      );
      assert.deepEqual(
        store.oldestRows({ route: 'r' }, 10, new Set()).map((r) => r.events),
        [1],
        'not an eviction candidate either',
      );
      assert.equal(store.bytes(), store.bytes('r'));
      assert.equal(store.stats().oldestReceivedAt, 1002, 'the oldest event waiting is the second');
      store.close();
    });

    test('accounting: stats(), usage() and bytes() follow commits, evictions and removals', () => {
      const store = open(tempDb());
      store.commit([group('a', 0, [ev('k', 1, 'a'), ev('k', 2, 'a')]), group('b', 0, [ev('k', 3, 'b')])]);
      put(store, [ev('k', 4, 'a')], 'a');
      const sum = (s: BufferStore) =>
        [...s.usage().values()].reduce(
          (t, u) => ({ commits: t.commits + u.commits, events: t.events + u.events, bytes: t.bytes + u.bytes }),
          { commits: 0, events: 0, bytes: 0 },
        );
      assert.deepEqual(
        [store.usage().get('a')!.commits, store.usage().get('a')!.events, store.usage().get('b')!.events],
        [2, 3, 1],
      );
      assert.deepEqual(sum(store), {
        commits: store.stats().commits,
        events: store.stats().events,
        bytes: store.stats().bytes,
      });
      assert.deepEqual([store.stats().commits, store.stats().events, store.stats().oldestReceivedAt], [3, 4, 1001]);
      assert.equal(store.bytes(), store.stats().bytes);
      assert.equal(store.bytes('a'), store.usage().get('a')!.bytes);
      assert.ok(store.bytes('a') > 0 && store.bytes('b') > 0);

      const bRow = store.oldestRows({ route: 'b' }, 10, new Set()).map((r) => r.id);
      store.commit([group('c', 0, [ev('k', 5, 'c')])], bRow);
      assert.equal(store.usage().has('b'), false, 'an evicted route leaves usage() at once');
      assert.equal(store.bytes('b'), 0);
      assert.deepEqual([store.stats().commits, store.stats().events], [3, 4]);
      assert.equal(store.bytes(), store.bytes('a') + store.bytes('c'));

      const cBytes = store.bytes('c');
      store.remove(store.oldestRows({ route: 'a' }, 10, new Set()).map((r) => r.id));
      assert.equal(store.bytes('a'), 0, 'removed rows leave the bound at once');
      assert.equal(store.bytes(), cBytes);
      if (durable) {
        const a = store.usage().get('a')!;
        assert.deepEqual(
          [a.commits, a.events, a.oldestReceivedAt],
          [2, 3, null],
          'removed rows count as what the file holds, none waits',
        );
        assert.deepEqual([store.stats().commits, store.stats().events], [3, 4]);
      } else {
        assert.equal(store.usage().has('a'), false);
        assert.deepEqual([store.stats().commits, store.stats().events, store.stats().bytes], [1, 1, cBytes]);
      }
      assert.equal(store.stats().oldestReceivedAt, 1005);
      store.close();
    });

    test('captures are stored with their events and read back; events without them stay without', () => {
      const store = open(tempDb());
      const withCaps: RoutedEvent = { ...ev('a', 1), captures: { site: 's1', device: 'a' } };
      const encoded: RoutedEvent = { ...ev('a', 2), encoded: true, captures: { device: 'a' } };
      put(store, [withCaps, encoded, ev('b', 3)]);
      const events = store.readNext(10, 1 << 20).flatMap((c) => c.events);
      assert.deepEqual(
        events.map((e) => [e.captures, e.encoded]),
        [
          [{ site: 's1', device: 'a' }, undefined],
          [{ device: 'a' }, true],
          [undefined, undefined],
        ],
      );
      store.close();
    });

    test('a buffer file has one incarnation for its life: kept across reopen, new for a new file', () => {
      const path = tempDb();
      const first = open(path);
      assert.match(first.incarnation, /^[0-9a-f]{16}$/);
      const inc = first.incarnation;
      first.close();
      const again = open(path);
      assert.equal(again.incarnation, inc);
      again.close();
      const other = open(tempDb());
      assert.notEqual(other.incarnation, inc);
      other.close();
    });
  });
}
