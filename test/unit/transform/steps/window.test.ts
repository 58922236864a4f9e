import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encode, decode } from 'cbor-x';
import fc from 'fast-check';
import { DROPPED, type Step, type Working } from '../../../../src/transform/step.js';
import { assertConfigError, step, working } from './fixtures.js';

const START = Date.UTC(2026, 0, 1, 12, 0, 0);
const ALL = ['count', 'min', 'max', 'mean', 'sum', 'first', 'last'];

interface Agg {
  key: string;
  count: number;
  window_start: number;
  window_end: number;
  closed_early?: boolean;
  fields: Record<string, Record<string, number | null>>;
}

describe('window step', () => {
  it('absorbs events and emits aggregates when the period ends, without a further event', () => {
    const s = step({ window: { secs: 60, fields: ['temp', 'hum'], aggregates: ALL, keep: ['site'] } });
    assert.equal(s.nextDue!(), null);
    assert.equal(
      s.run(working({ value: { temp: 20, hum: 40, site: 'a' }, eventTime: START + 1000 }), START + 1000),
      DROPPED,
    );
    assert.equal(s.run(working({ value: { temp: 22, site: 'b' }, eventTime: START + 2000 }), START + 2000), DROPPED);
    assert.equal(s.run(working({ value: { temp: 21 }, eventTime: START + 3000 }), START + 3000), DROPPED);
    assert.equal(s.nextDue!(), START + 60_000);
    assert.deepEqual(s.tick!(START + 59_999), []);
    const [out, ...rest] = s.tick!(START + 60_000);
    assert.equal(rest.length, 0);
    assert.deepEqual(out!.value, {
      site: 'b',
      key: 'd1',
      window_start: START,
      window_end: START + 60_000,
      first_event_time: START + 1000,
      last_event_time: START + 3000,
      count: 3,
      fields: {
        temp: { count: 3, min: 20, max: 22, mean: 21, sum: 63, first: 20, last: 21 },
        hum: { count: 1, min: 40, max: 40, mean: 40, sum: 40, first: 40, last: 40 },
      },
    });
    assert.equal(out!.kafkaTopic, 'telemetry');
    assert.equal(out!.key, 'd1');
    assert.equal(out!.eventTime, START);
    assert.equal(s.nextDue!(), null);
    assert.deepEqual(s.tick!(START + 120_000), [], 'an empty period emits nothing');
  });

  it("per key; an event in a later period closes the key's open window for the next tick", () => {
    const s = step({ window: { secs: 10, by: '{device}', fields: ['v'], aggregates: ['sum'] } });
    s.run(working({ value: { v: 1 }, vars: { device: 'a' } }), START);
    s.run(working({ value: { v: 2 }, vars: { device: 'b' } }), START + 5000);
    s.run(working({ value: { v: 3 }, vars: { device: 'a' } }), START + 12_000);
    assert.equal(s.nextDue!(), START + 10_000, 'a closed window is due');
    const out = s.tick!(START + 12_000).map((w) => w.value as Agg);
    assert.deepEqual(
      out.map((v) => [v.key, v.fields.v]),
      [
        ['a', { sum: 1 }],
        ['b', { sum: 2 }],
      ],
    );
    assert.deepEqual(
      s.tick!(START + 20_000).map((w) => (w.value as Agg).fields.v),
      [{ sum: 3 }],
    );
  });

  it('a field without samples: count 0, sum 0, others null', () => {
    const s = step({ window: { secs: 1, fields: ['v'], aggregates: ALL } });
    s.run(working({ value: { v: 'n/a' } }), START);
    assert.deepEqual((s.tick!(START + 1000)[0]!.value as Agg).fields.v, {
      count: 0,
      min: null,
      max: null,
      mean: null,
      sum: 0,
      first: null,
      last: null,
    });
  });

  it('beyond max_keys the oldest window is closed early and flagged', () => {
    const s = step({ window: { secs: 60, by: '{n}', fields: ['v'], max_keys: 2 } });
    for (const n of [1, 2, 3]) s.run(working({ value: { v: n, n } }), START);
    const early = s.tick!(START + 1);
    assert.equal(early.length, 1);
    assert.equal((early[0]!.value as Record<string, unknown>).closed_early, true);
    assert.equal((early[0]!.value as Record<string, unknown>).key, '1');
  });

  it('checkpoint: null while unchanged; restore brings open and closed windows back', () => {
    const config = { window: { secs: 60, fields: ['v'], aggregates: ['count', 'sum'] } };
    const a = step(config);
    assert.equal(a.checkpoint!(), null);
    a.run(working({ value: { v: 5 }, key: 'k1' }), START);
    a.run(working({ value: { v: 7 }, key: 'k2' }), START);
    a.run(working({ value: { v: 1 }, key: 'k1' }), START + 61_000);
    const snap: unknown = decode(encode(a.checkpoint!()));
    assert.equal(a.checkpoint!(), null, 'unchanged since the last call');
    const b = step(config);
    b.restore!(snap);
    b.run(working({ value: { v: 2 }, key: 'k1' }), START + 62_000);
    const first = b.tick!(START + 62_000).map((w) => w.value as Agg);
    assert.deepEqual(
      first.map((v) => [v.key, v.fields.v]),
      [
        ['k1', { count: 1, sum: 5 }],
        ['k2', { count: 1, sum: 7 }],
      ],
    );
    const second = b.tick!(START + 120_000).map((w) => w.value as Agg);
    assert.deepEqual(
      second.map((v) => [v.key, v.fields.v]),
      [['k1', { count: 2, sum: 3 }]],
    );
    const snapAfterTick = b.checkpoint!();
    assert.notEqual(snapAfterTick, null, 'emitting windows changes the state');
    const d = step(config);
    d.restore!(decode(encode(snapAfterTick)));
    assert.equal(d.nextDue!(), null, 'windows already emitted are not in the next checkpoint');
    const c = step(config);
    c.restore!({ garbage: true });
    assert.equal(c.nextDue!(), null, 'an unreadable snapshot restores nothing');
  });

  it('rejects keep fields that clash with the output, and bad aggregates', () => {
    assertConfigError({ window: { secs: 60, fields: ['v'], keep: ['fields'] } }, ['window', 'keep', 0], /clashes/);
    assertConfigError({ window: { secs: 60, fields: ['v'], aggregates: ['median'] } }, ['window', 'aggregates', 0]);
    assertConfigError({ window: { secs: 0, fields: ['v'] } }, ['window', 'secs']);
  });

  it('property: aggregates equal a reference computation, with tick-driven closes and a checkpoint -> restore in the middle', () => {
    const periodMs = 10_000;
    const events = fc.array(
      fc.record({
        key: fc.constantFrom('a', 'b', 'c'),
        v: fc.option(fc.double({ min: -1000, max: 1000, noNaN: true }), { nil: null, freq: 8 }),
        gapMs: fc.integer({ min: 0, max: 7_000 }),
        tickAfter: fc.boolean(),
      }),
      { maxLength: 120 },
    );
    fc.assert(
      fc.property(events, fc.nat({ max: 120 }), (evs, restartAt) => {
        const config = { window: { secs: periodMs / 1000, by: '{k}', fields: ['v'], aggregates: ALL } };
        let s: Step = step(config);
        const emitted: Agg[] = [];
        const collect = (ws: Working[]): void => void emitted.push(...ws.map((w) => w.value as Agg));
        // reference: (key, window start) -> values and count
        const ref = new Map<string, { key: string; start: number; count: number; vs: number[] }>();
        let now = START;
        let lastSnap: unknown = null;
        evs.forEach((e, i) => {
          if (i === restartAt) {
            // a crash: the new instance starts from the last checkpoint (taken after every event, as the pipeline does at each commit)
            const snap: unknown = decode(encode(s.checkpoint!() ?? lastSnap));
            s = step(config);
            s.restore!(snap);
          }
          now += e.gapMs;
          const start = Math.floor(now / periodMs) * periodMs;
          const id = `${e.key}@${start}`;
          const r = ref.get(id) ?? { key: e.key, start, count: 0, vs: [] };
          r.count++;
          // the step counts -0 as 0 (its CBOR checkpoints cannot carry -0)
          if (e.v !== null) r.vs.push(e.v === 0 ? 0 : e.v);
          ref.set(id, r);
          assert.equal(
            s.run(working({ value: e.v === null ? { other: 1 } : { v: e.v }, vars: { k: e.key } }), now),
            DROPPED,
          );
          lastSnap = s.checkpoint!() ?? lastSnap;
          if (e.tickAfter) collect(s.tick!(now));
        });
        collect(s.tick!(now + 10 * periodMs));
        assert.equal(s.nextDue!(), null);

        const got = new Map(emitted.map((w) => [`${String(w.key)}@${String(w.window_start)}`, w]));
        assert.equal(got.size, emitted.length, 'each window is emitted once');
        assert.deepEqual([...got.keys()].sort(), [...ref.keys()].sort());
        for (const [id, r] of ref) {
          const w = got.get(id)!;
          assert.equal(w.count, r.count, id);
          assert.equal(w.window_end, r.start + periodMs);
          const n = r.vs.length;
          const sum = r.vs.reduce((a, b) => a + b, 0);
          const expected =
            n === 0
              ? { count: 0, min: null, max: null, mean: null, sum: 0, first: null, last: null }
              : {
                  count: n,
                  min: Math.min(...r.vs),
                  max: Math.max(...r.vs),
                  mean: sum / n,
                  sum,
                  first: r.vs[0],
                  last: r.vs[n - 1],
                };
          assert.deepEqual(w.fields.v, expected, id);
        }
      }),
      { numRuns: 150 },
    );
  });
});
