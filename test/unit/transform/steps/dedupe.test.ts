import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DROPPED } from '../../../../src/transform/step.js';
import { assertConfigError, assertFails, step, working, T0 } from './fixtures.js';

describe('dedupe step', () => {
  it('drops a repeated id within the window, per key', () => {
    const s = step({ dedupe: { id: 'msg_id', window_secs: 60 } });
    const run = (id: unknown, now: number, key = 'd1'): boolean =>
      s.run(working({ value: { msg_id: id }, key }), now) !== DROPPED;
    assert.equal(run(1, T0), true);
    assert.equal(run(1, T0 + 59_999), false);
    assert.equal(run('1', T0 + 1), true, 'the string "1" is another id than the number 1');
    assert.equal(run(1, T0 + 1, 'd2'), true, 'another key');
    assert.equal(run(1, T0 + 60_000), true, 'the window ended');
    assert.equal(run(1, T0 + 60_001), false, 'a new window from the last forwarded one');
  });

  it('content: identical payloads are repeats', () => {
    const s = step({ dedupe: { content: true, window_secs: 10, by: '{device}' } });
    assert.notEqual(s.run(working({ payload: '{"a":1}' }), T0), DROPPED);
    assert.equal(s.run(working({ payload: '{"a":1}' }), T0 + 1), DROPPED);
    assert.notEqual(s.run(working({ payload: '{"a":2}' }), T0 + 2), DROPPED);
    assert.notEqual(s.run(working({ payload: '{"a":1}', vars: { device: 'other' } }), T0 + 3), DROPPED);
  });

  it('memory is bounded by max_entries: the oldest are forgotten', () => {
    const s = step({ dedupe: { id: 'id', window_secs: 3600, max_entries: 100 } });
    for (let i = 0; i < 1000; i++) s.run(working({ value: { id: i } }), T0 + i);
    assert.notEqual(s.run(working({ value: { id: 0 } }), T0 + 1000), DROPPED, 'forgotten');
    assert.equal(s.run(working({ value: { id: 999 } }), T0 + 1001), DROPPED, 'still remembered');
  });

  it('an event without the id fails, or passes with missing_id: pass', () => {
    assertFails(
      step({ dedupe: { id: 'id', window_secs: 1 } }),
      working({ value: {} }),
      /^dedupe: id field id is missing$/,
    );
    assertFails(
      step({ dedupe: { id: 'id', window_secs: 1 } }),
      working({ value: { id: {} } }),
      /^dedupe: id field id is an object$/,
    );
    assert.notEqual(
      step({ dedupe: { id: 'id', window_secs: 1, missing_id: 'pass' } }).run(working({ value: {} }), T0),
      DROPPED,
    );
  });

  it('rejects configs with both or neither of id and content', () => {
    assertConfigError({ dedupe: { window_secs: 1 } }, ['dedupe'], /exactly one/);
    assertConfigError({ dedupe: { id: 'a', content: true, window_secs: 1 } }, ['dedupe'], /exactly one/);
    assertConfigError({ dedupe: { id: 'a' } }, ['dedupe', 'window_secs']);
  });
});
