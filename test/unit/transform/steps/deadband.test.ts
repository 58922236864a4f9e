import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DROPPED } from '../../../../src/transform/step.js';
import { assertConfigError, step, working, T0 } from './fixtures.js';

const forwarded = (s: ReturnType<typeof step>, value: unknown, now: number, key = 'd1'): boolean =>
  s.run(working({ value, key }), now) !== DROPPED;

describe('deadband step', () => {
  it('forwards the first value, then only moves beyond the band from the last forwarded value', () => {
    const s = step({ deadband: { field: 'temp', abs: 0.5 } });
    assert.equal(forwarded(s, { temp: 20 }, T0), true);
    assert.equal(forwarded(s, { temp: 20.4 }, T0 + 1), false);
    assert.equal(forwarded(s, { temp: 20.5 }, T0 + 2), false, 'exactly the band is inside');
    assert.equal(forwarded(s, { temp: 19.6 }, T0 + 3), false);
    assert.equal(forwarded(s, { temp: 20.51 }, T0 + 4), true);
    assert.equal(forwarded(s, { temp: 20.9 }, T0 + 5), false, 'compared with the last forwarded value, 20.51');
  });

  it('a slow drift gets through', () => {
    const s = step({ deadband: { field: 'temp', abs: 1 } });
    let sent = 0;
    for (let i = 0; i <= 100; i++) if (forwarded(s, { temp: 20 + i * 0.1 }, T0 + i)) sent++;
    assert.ok(sent >= 9 && sent <= 11, `${sent} forwarded for a 10-degree drift with a 1-degree band`);
  });

  it('percent band, and with abs too the wider band wins', () => {
    const pct = step({ deadband: { field: 'p', percent: 10 } });
    assert.equal(forwarded(pct, { p: 100 }, T0), true);
    assert.equal(forwarded(pct, { p: 109 }, T0), false);
    assert.equal(forwarded(pct, { p: 111 }, T0), true);
    const both = step({ deadband: { field: 'p', percent: 10, abs: 5 } });
    assert.equal(forwarded(both, { p: 10 }, T0), true);
    assert.equal(forwarded(both, { p: 14 }, T0), false, 'abs 5 is wider than 10% of 10');
    assert.equal(forwarded(both, { p: 15.5 }, T0), true);
  });

  it('per key, by a template or the partition key', () => {
    const s = step({ deadband: { field: 'temp', abs: 1, by: '{device}' } });
    assert.equal(s.run(working({ value: { temp: 1 }, vars: { device: 'a' } }), T0) !== DROPPED, true);
    assert.equal(s.run(working({ value: { temp: 1 }, vars: { device: 'b' } }), T0) !== DROPPED, true);
    assert.equal(s.run(working({ value: { temp: 1.5 }, vars: { device: 'a' } }), T0), DROPPED);
    const byKey = step({ deadband: { field: 'temp', abs: 1 } });
    assert.equal(forwarded(byKey, { temp: 1 }, T0, 'k1'), true);
    assert.equal(forwarded(byKey, { temp: 1 }, T0, 'k2'), true);
    assert.equal(forwarded(byKey, { temp: 1 }, T0, 'k1'), false);
  });

  it('several fields: forwarded when any moved', () => {
    const s = step({ deadband: { fields: ['t', 'h'], abs: 1 } });
    assert.equal(forwarded(s, { t: 1, h: 50 }, T0), true);
    assert.equal(forwarded(s, { t: 1.5, h: 50.5 }, T0), false);
    assert.equal(forwarded(s, { t: 1.5, h: 52 }, T0), true);
  });

  it('passes events without a numeric field; forgets the least recently forwarded key beyond max_keys', () => {
    const s = step({ deadband: { field: 'temp', abs: 1, max_keys: 2 } });
    assert.equal(forwarded(s, { hum: 1 }, T0), true);
    assert.equal(forwarded(s, 'text', T0), true);
    assert.equal(forwarded(s, { temp: 1 }, T0, 'a'), true);
    assert.equal(forwarded(s, { temp: 1 }, T0, 'b'), true);
    assert.equal(forwarded(s, { temp: 1 }, T0, 'c'), true);
    assert.equal(forwarded(s, { temp: 1 }, T0, 'a'), true, 'a was forgotten: forwarded again');
    assert.equal(forwarded(s, { temp: 1 }, T0, 'c'), false);
  });

  it('rejects configs without a field or a band', () => {
    assertConfigError({ deadband: { abs: 1 } }, ['deadband'], /field/);
    assertConfigError({ deadband: { field: 't' } }, ['deadband'], /band/);
    assertConfigError({ deadband: { field: 't', abs: -1 } }, ['deadband', 'abs']);
    assertConfigError({ deadband: { field: 't', abs: 1, by: '{x' } }, ['deadband', 'by'], /unbalanced/);
  });

  it('property: never forwards a change inside the band; always forwards after max silence', () => {
    const readings = fc.array(
      fc.record({
        key: fc.constantFrom('a', 'b', 'c'),
        delta: fc.double({ min: -3, max: 3, noNaN: true }),
        gapMs: fc.integer({ min: 0, max: 40_000 }),
      }),
      { maxLength: 200 },
    );
    const config = fc.record({
      abs: fc.double({ min: 0, max: 2, noNaN: true }),
      percent: fc.double({ min: 0, max: 20, noNaN: true }),
      silenceSecs: fc.integer({ min: 1, max: 120 }),
    });
    fc.assert(
      fc.property(config, readings, (cfg, rs) => {
        const s = step({
          deadband: { field: 'v', abs: cfg.abs, percent: cfg.percent, max_silence_secs: cfg.silenceSecs },
        });
        const level = new Map<string, number>();
        const last = new Map<string, { v: number; at: number }>();
        let now = T0;
        for (const r of rs) {
          now += r.gapMs;
          const v = (level.get(r.key) ?? 20) + r.delta;
          level.set(r.key, v);
          const out = forwarded(s, { v }, now, r.key);
          const prev = last.get(r.key);
          if (prev === undefined) {
            assert.equal(out, true, 'the first value of a key is forwarded');
          } else {
            const band = Math.max(cfg.abs, (cfg.percent / 100) * Math.abs(prev.v));
            const silent = now - prev.at >= cfg.silenceSecs * 1000;
            const moved = Math.abs(v - prev.v) > band;
            assert.equal(out, silent || moved, `v ${v} last ${prev.v} band ${band} silent ${silent}`);
          }
          if (out) last.set(r.key, { v, at: now });
        }
      }),
      { numRuns: 100 },
    );
  });
});
