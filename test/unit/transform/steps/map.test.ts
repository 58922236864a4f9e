import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertConfigError, assertFails, runValue, step, working } from './fixtures.js';

describe('map step', () => {
  it('renames, removes, sets, computes and converts, in that order, on a copy', () => {
    const s = step({
      map: {
        rename: { t: 'temp' },
        remove: ['debug'],
        set: { unit: 'C', meta: { v: 1 } },
        compute: { temp_f: 'temp * 9 / 5 + 32', hot: 'temp_f > 70.0', label: 'vars.device + "/" + unit' },
        convert: { pressure: { from: 'psi', to: 'kPa', decimals: 2 }, raw: { multiply: 0.1, add: -5 } },
      },
    });
    const value = { t: 25, debug: 'x', pressure: 14.7, raw: 100 };
    const out = runValue(s, working({ value }));
    assert.deepEqual(out, {
      temp: 25,
      unit: 'C',
      meta: { v: 1 },
      temp_f: 77,
      hot: true,
      label: 'd1/C',
      pressure: 101.35,
      raw: 5,
    });
    assert.deepEqual(value, { t: 25, debug: 'x', pressure: 14.7, raw: 100 }, 'the input value is not mutated');
    assert.ok(Object.isFrozen((out as { meta: object }).meta), 'shared constants are frozen');
  });

  it('rename and remove act on the original names; a renamed field replaces one of its new name', () => {
    const s = step({ map: { rename: { t: 'temp', a: 'b', b: 'c' }, remove: ['x'] } });
    assert.deepEqual(runValue(s, working({ value: { temp: 5, t: 1, a: 'A', b: 'B', x: 0, y: 2 } })), {
      temp: 1,
      b: 'A',
      c: 'B',
      y: 2,
    });
    assert.deepEqual(runValue(s, working({ value: { temp: 5 } })), { temp: 5 }, 'no source: the field stays');
  });

  it('computed integers are numbers, not bigints', () => {
    const out = runValue(
      step({ map: { compute: { n: '1 + 2', xs: '[1, 2]', s: 'size("abc")' } } }),
      working({ value: {} }),
    );
    assert.deepEqual(out, { n: 3, xs: [1, 2], s: 3 });
  });

  it('converts temperatures and pressures exactly enough', () => {
    const s = step({
      map: { convert: { a: { from: 'C', to: 'F' }, b: { from: 'F', to: 'K' }, c: { from: 'bar', to: 'psi' } } },
    });
    const out = runValue(s, working({ value: { a: 100, b: 32, c: 1 } })) as Record<string, number>;
    assert.ok(Math.abs(out.a! - 212) < 1e-9);
    assert.ok(Math.abs(out.b! - 273.15) < 1e-9);
    assert.ok(Math.abs(out.c! - 14.5038) < 1e-4);
  });

  it('fails on a non-object value, a non-number to convert, or a compute error', () => {
    assertFails(step({ map: { remove: ['a'] } }), working({ value: 5 }), /^map: value is a number, not an object$/);
    assertFails(
      step({ map: { convert: { p: { from: 'bar', to: 'kPa' } } } }),
      working({ value: { p: 'high' } }),
      /^map convert p: a string, not a number$/,
    );
    assertFails(
      step({ map: { compute: { f: 'temp * 2' } } }),
      working({ value: {} }),
      /^map compute f: Unknown variable: temp$/,
    );
  });

  it('rejects unknown units, dimension mismatches, bad expressions and empty maps with their path', () => {
    assertConfigError(
      { map: { convert: { p: { from: 'psi', to: 'furlong' } } } },
      ['map', 'convert', 'p'],
      /unknown unit "furlong"/,
    );
    assertConfigError(
      { map: { convert: { p: { from: 'psi', to: 'C' } } } },
      ['map', 'convert', 'p'],
      /cannot convert pressure/,
    );
    assertConfigError({ map: { compute: { temp_f: 'temp * * 9' } } }, ['map', 'compute', 'temp_f'], /bad expression/);
    assertConfigError({ map: { compute: { x: 'nosuchfn(1)' } } }, ['map', 'compute', 'x'], /nosuchfn/);
    assertConfigError({ map: {} }, ['map'], /does nothing/);
    assertConfigError({ map: { rename: { a: 'b' }, typo: 1 } }, ['map']);
  });
});
