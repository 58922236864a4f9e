import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileAcl, filterWithin, substitute, topicMatches } from '../../../src/security/acl.js';

test('MQTT topic matching and filter containment', () => {
  assert.ok(topicMatches('devices/+/telemetry', 'devices/d1/telemetry'));
  assert.ok(topicMatches('devices/#', 'devices'));
  assert.ok(topicMatches('devices/#', 'devices/a/b/c'));
  assert.ok(!topicMatches('devices/+', 'devices/a/b'));
  assert.ok(!topicMatches('#', '$SYS/x'), 'wildcards do not match $ topics');
  assert.ok(filterWithin('commands/#', 'commands/d1/+'));
  assert.ok(filterWithin('commands/+/set', 'commands/d1/set'));
  assert.ok(!filterWithin('commands/+/set', 'commands/#'));
  assert.ok(!filterWithin('commands/d1/#', 'commands/+/x'));
  assert.ok(!filterWithin('a/b', 'a/b/c'));
  assert.ok(filterWithin('a/b', 'a/b'));
});

test('%u and %c are substituted; values that would change the filter shape make the rule not apply', () => {
  assert.equal(substitute('devices/%u/%c/#', { username: 'alice', clientId: 'c1' }), 'devices/alice/c1/#');
  assert.equal(substitute('devices/%u/#', { username: null, clientId: 'c1' }), null, 'anonymous has no %u');
  assert.equal(substitute('devices/%c/#', { username: 'a', clientId: '#' }), null);
  assert.equal(substitute('devices/%c/#', { username: 'a', clientId: 'x/y' }), null);
  assert.equal(substitute('devices/%c/#', { username: 'a', clientId: 'dev+1' }), null);
  assert.equal(substitute('100%%/x', { username: 'a', clientId: 'c' }), '100%/x');
});

test('rules by username and client id pattern allow publish and subscribe; everything else is denied', () => {
  const acl = compileAcl([
    { username: 'alice', publish: ['devices/%u/#'], subscribe: ['commands/%u/#'] },
    { client_id: 'sensor-*', publish: ['sensors/%c/data'] },
    { username: '*', client_id: '%u-*', publish: ['own/%c'] },
  ]);
  assert.ok(acl.enforced);
  const alice = acl.forSubject({ username: 'alice', clientId: 'a1' });
  assert.ok(alice.canPublish('devices/alice/t'));
  assert.ok(!alice.canPublish('devices/bob/t'));
  assert.ok(alice.canSubscribe('commands/alice/+'));
  assert.ok(!alice.canSubscribe('commands/#'));
  assert.ok(!alice.canPublish('sensors/a1/data'), 'client id rule does not match a1');

  const sensor = acl.forSubject({ username: null, clientId: 'sensor-7' });
  assert.ok(sensor.canPublish('sensors/sensor-7/data'), 'anonymous clients match rules without a username');
  assert.ok(!sensor.canPublish('sensors/sensor-8/data'));
  assert.ok(!sensor.canSubscribe('commands/#'));

  const bob = acl.forSubject({ username: 'bob', clientId: 'bob-1' });
  assert.ok(bob.canPublish('own/bob-1'), '%u in the client id glob');
  assert.ok(!acl.forSubject({ username: 'bob', clientId: 'alice-1' }).canPublish('own/alice-1'));
  assert.ok(!acl.forSubject({ username: null, clientId: 'x-1' }).canPublish('own/x-1'), 'username * needs a login');

  const regexChars = compileAcl([{ client_id: 'a.b*', publish: ['t'] }]);
  assert.ok(regexChars.forSubject({ username: null, clientId: 'a.bc' }).canPublish('t'));
  assert.ok(!regexChars.forSubject({ username: null, clientId: 'axbc' }).canPublish('t'), '. is literal in a glob');
});

test("without rules everything but $SYS and the gateway's own $edgehaul/ is allowed", () => {
  const open = compileAcl([]).forSubject({ username: null, clientId: 'c' });
  assert.ok(open.canPublish('any/topic'));
  assert.ok(open.canSubscribe('#'));
  assert.ok(!open.canPublish('$SYS/broker/x'));
  assert.ok(!open.canPublish('$edgehaul/health'), 'a device cannot forge health telemetry');
});
