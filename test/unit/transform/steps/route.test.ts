import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertConfigError, assertFails, step, working, T0 } from './fixtures.js';
import type { Working } from '../../../../src/transform/step.js';

describe('route step', () => {
  it('sets topic, key and priority from templates over vars and value fields', () => {
    const s = step({ route: { topic: 'alarms.{site}.{kind}', key: '{device}-{n}', priority: 10 } });
    const ev = s.run(working({ value: { kind: 'temp', n: 4, site: 'ignored' } }), T0) as Working;
    assert.equal(ev.kafkaTopic, 'alarms.s1.temp', 'vars win over value fields');
    assert.equal(ev.key, 'd1-4');
    assert.equal(ev.priority, 10);
  });

  it('priority from an expression, rounded and clamped', () => {
    const s = step({ route: { priority: 'temp > 80 ? 10 : 0' } });
    assert.equal((s.run(working({ value: { temp: 90 } }), T0) as Working).priority, 10);
    assert.equal((s.run(working({ value: { temp: 20 } }), T0) as Working).priority, 0);
    assert.equal(
      (step({ route: { priority: 'level * 1000' } }).run(working({ value: { level: 7.5 } }), T0) as Working).priority,
      1000,
    );
    assertFails(s, working({ value: {} }), /^route priority: Unknown variable: temp$/);
  });

  it('fails when a rendered topic is not a valid Kafka topic', () => {
    assertFails(
      step({ route: { topic: 'a.{kind}' } }),
      working({ value: { kind: 'x/y' } }),
      /^route: topic "a.x\/y" is not a valid Kafka topic name$/,
    );
  });

  it('rejects bad topics, templates and priority expressions with their path', () => {
    assertConfigError({ route: { topic: 'bad topic' } }, ['route', 'topic'], /not a valid Kafka topic/);
    assertConfigError({ route: { key: '{a b}' } }, ['route', 'key'], /not a field name/);
    assertConfigError({ route: { priority: '"high"' } }, ['route', 'priority'], /must give a number/);
    assertConfigError({ route: { priority: 5000 } }, ['route', 'priority']);
    assertConfigError({ route: {} }, ['route'], /does nothing/);
  });
});
