import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertConfigError, assertFails, runValue, step, working, T0 } from './fixtures.js';

describe('enrich step', () => {
  it('adds gateway id, site, tags, captures and the receive time on a copy', () => {
    const s = step({
      enrich: {
        gateway: true,
        site: 'plant-7',
        tags: { line: '3', shift: 2 },
        captures: ['device'],
        received_at: true,
      },
    });
    const value = { temp: 1 };
    assert.deepEqual(runValue(s, working({ value })), {
      temp: 1,
      gateway: 'gw-test',
      site: 'plant-7',
      line: '3',
      shift: 2,
      device: 'd1',
      received_at: T0,
    });
    assert.deepEqual(value, { temp: 1 });
    const iso = step({ enrich: { received_at: 'iso', gateway: 'gw', captures: true } });
    assert.deepEqual(runValue(iso, working({ value: {} })), {
      gw: 'gw-test',
      site: 's1',
      device: 'd1',
      received_at: new Date(T0).toISOString(),
    });
  });

  it('device_time: keeps a sane device timestamp as the event time', () => {
    const s = step({ enrich: { device_time: { field: 'ts', max_skew_secs: 300 } } });
    for (const ts of [T0 - 60_000, (T0 - 60_000) / 1000, new Date(T0 - 60_000).toISOString()]) {
      const ev = working({ value: { ts } });
      s.run(ev, T0);
      assert.equal(ev.eventTime, T0 - 60_000, `ts ${String(ts)}`);
      assert.equal((ev.value as Record<string, unknown>).device_time_rejected, undefined);
    }
  });

  it('device_time: rejects a skewed or malformed timestamp, flags it and uses the receive time', () => {
    const s = step({ enrich: { device_time: { field: 'ts', max_skew_secs: 300, max_age_secs: 3600 } } });
    for (const ts of [T0 + 301_000, T0 - 3_601_000, 'yesterday', '5', true, 0]) {
      const ev = working({ value: { ts }, eventTime: 1 });
      s.run(ev, T0);
      assert.equal(ev.eventTime, T0, `ts ${String(ts)}`);
      assert.equal((ev.value as Record<string, unknown>).device_time_rejected, true);
    }
    const ok = working({ value: { ts: T0 - 3_000_000 } });
    s.run(ok, T0);
    assert.equal(ok.eventTime, T0 - 3_000_000, 'within max_age_secs');
    const missing = working({ value: {} });
    s.run(missing, T0);
    assert.deepEqual(missing.value, {}, 'no timestamp: nothing to reject');
    const noFlag = step({ enrich: { device_time: { field: 'ts', flag: false } } });
    assert.deepEqual(runValue(noFlag, working({ value: { ts: 'x' } })), { ts: 'x' });
  });

  it('fails on a non-object value; rejects an empty or unknown config', () => {
    assertFails(step({ enrich: { site: 'a' } }), working({ value: 'x' }), /^enrich: value is a string/);
    assertConfigError({ enrich: {} }, ['enrich'], /does nothing/);
    assertConfigError({ enrich: { location: 'x' } }, ['enrich']);
    assertConfigError({ enrich: { device_time: { field: 'ts', unit: 'us' } } }, ['enrich', 'device_time', 'unit']);
  });
});
