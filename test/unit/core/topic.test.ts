import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileTopicPattern } from '../../../src/core/topic.js';

test('named captures bind single levels and the rest', () => {
  const p = compileTopicPattern('site/+site/dev/+device/#rest');
  assert.equal(p.mqttFilter, 'site/+/dev/+/#');
  assert.deepEqual(p.match('site/s1/dev/d7/telemetry/temp'), { site: 's1', device: 'd7', rest: 'telemetry/temp' });
  assert.deepEqual(p.match('site/s1/dev/d7'), { site: 's1', device: 'd7', rest: '' });
  assert.equal(p.match('site/s1/other/d7/x'), null);
  assert.equal(p.match('site/s1'), null);
});

test('plain wildcards follow MQTT matching', () => {
  const cases: Array<[string, string, boolean]> = [
    ['a/+/c', 'a/b/c', true],
    ['a/+/c', 'a/b/c/d', false],
    ['a/+/c', 'a//c', true],
    ['a/#', 'a', true],
    ['a/#', 'a/b/c', true],
    ['#', 'anything/at/all', true],
    ['#', '$SYS/broker/uptime', false],
    ['+/x', '$SYS/x', false],
    ['$SYS/#', '$SYS/broker', true],
    ['a/b', 'a/b', true],
    ['a/b', 'a/b/', false],
  ];
  for (const [filter, topic, expected] of cases) {
    assert.equal(compileTopicPattern(filter).match(topic) !== null, expected, `${filter} vs ${topic}`);
  }
});

test('malformed filters are rejected with a reason', () => {
  assert.throws(() => compileTopicPattern('a/#/b'), /must be the last level/);
  assert.throws(() => compileTopicPattern('a/b+/c'), /whole level/);
  assert.throws(() => compileTopicPattern('+x/+x'), /repeats/);
  assert.throws(() => compileTopicPattern('+1abc'), /capture name/);
  assert.throws(() => compileTopicPattern(''), /empty/);
});
