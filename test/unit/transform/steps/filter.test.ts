import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DROPPED } from '../../../../src/transform/step.js';
import { assertConfigError, assertFails, step, working, T0 } from './fixtures.js';

describe('filter step', () => {
  it('keeps events for which the condition holds', () => {
    const s = step({ filter: "temp > -40 && status != 'test'" });
    const keep = working({ value: { temp: 21.5, status: 'ok' } });
    assert.equal(s.run(keep, T0), keep);
    assert.equal(s.run(working({ value: { temp: -50, status: 'ok' } }), T0), DROPPED);
    assert.equal(s.run(working({ value: { temp: 20, status: 'test' } }), T0), DROPPED);
  });

  it('drop: drops events for which the condition holds', () => {
    const s = step({ filter: { drop: 'status == "test"' } });
    assert.equal(s.run(working({ value: { status: 'test' } }), T0), DROPPED);
    assert.notEqual(s.run(working({ value: { status: 'ok' } }), T0), DROPPED);
  });

  it('sees vars, received_at, event_time and the whole value as event', () => {
    const s = step({
      filter: 'vars.device == "d1" && received_at > 0 && event_time == received_at && has(event.temp)',
    });
    assert.notEqual(s.run(working({ value: { temp: 1 } }), T0), DROPPED);
    assert.equal(s.run(working({ value: { hum: 1 } }), T0), DROPPED);
    assert.equal(s.run(working({ value: { temp: 1 }, vars: { device: 'd2' } }), T0), DROPPED);
  });

  it('mixes JSON numbers (doubles) with integer literals', () => {
    const s = step({ filter: 'temp * 9 / 5 + 32 > 100 && count == 3' });
    assert.notEqual(s.run(working({ value: { temp: 40, count: 3 } }), T0), DROPPED);
    assert.equal(s.run(working({ value: { temp: 30, count: 3 } }), T0), DROPPED);
  });

  it('an event the condition cannot be evaluated on follows on_error', () => {
    assertFails(step({ filter: 'temp > 5' }), working({ value: { hum: 1 } }), /^filter: Unknown variable: temp/);
    assertFails(step({ filter: 'temp > 5' }), working({ value: { temp: 'warm' } }), /^filter: no such overload/);
    assert.equal(step({ filter: { keep: 'temp > 5', on_error: 'drop' } }).run(working({ value: {} }), T0), DROPPED);
    assert.notEqual(step({ filter: { keep: 'temp > 5', on_error: 'keep' } }).run(working({ value: {} }), T0), DROPPED);
  });

  it('cannot reach inherited properties or functions', () => {
    assertFails(step({ filter: 'constructor != null' }), working({ value: {} }), /^filter: /);
    assertFails(step({ filter: 'event.constructor != null' }), working({ value: {} }), /^filter: No such key/);
  });

  it('rejects bad expressions, unknown functions and non-conditions at compile time', () => {
    assertConfigError({ filter: 'temp >' }, ['filter'], /bad expression/);
    assertConfigError({ filter: 'exec("rm -rf /")' }, ['filter'], /bad expression.*exec/);
    assertConfigError({ filter: '1 + "a" > 0' }, ['filter'], /bad expression/);
    assertConfigError({ filter: '"a" + "b"' }, ['filter'], /must be a condition \(bool\), it gives string/);
  });

  it('rejects both keep and drop, or neither', () => {
    assertConfigError({ filter: { keep: 'a', drop: 'b' } }, ['filter'], /exactly one/);
    assertConfigError({ filter: {} }, ['filter'], /exactly one/);
    assertConfigError({ filter: { drop: '1 + 2' } }, ['filter', 'drop'], /must be a condition/);
  });
});
