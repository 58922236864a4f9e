import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BasicAuth, isLoopbackHost } from '../../../src/security/basic-auth.js';
import { hashPassword } from '../../../src/security/password.js';

test('loopback is 127.0.0.0/8, ::1 and localhost; the wildcards and every other address are beyond it', () => {
  for (const h of [
    '127.0.0.1',
    '127.0.0.2',
    '127.255.255.254',
    '::1',
    '[::1]',
    '0:0:0:0:0:0:0:1',
    '::ffff:127.0.0.1',
    'localhost',
    'LOCALHOST',
  ])
    assert.equal(isLoopbackHost(h), true, h);
  for (const h of [
    '0.0.0.0',
    '::',
    '10.0.0.5',
    '192.168.1.20',
    '128.0.0.1',
    '::2',
    '::ffff:10.0.0.1',
    'gateway.local',
    'localhost.example',
  ])
    assert.equal(isLoopbackHost(h), false, h);
});

const basic = (userPass: string): string => `Basic ${Buffer.from(userPass, 'utf8').toString('base64')}`;

test('HTTP Basic against scrypt hashes: the right password passes; missing, malformed, wrong and unknown do not', async () => {
  const hash = await hashPassword('s3cret: with colon', { N: 1024, r: 8, p: 1 });
  const auth = new BasicAuth([{ username: 'tech', password_hash: hash }]);
  await auth.prepare();
  assert.deepEqual(await auth.check(basic('tech:s3cret: with colon')), { ok: true, username: 'tech' });
  assert.deepEqual(await auth.check(undefined), { ok: false, why: 'missing' });
  assert.deepEqual(await auth.check(''), { ok: false, why: 'missing' });
  assert.deepEqual(await auth.check('Bearer abc'), { ok: false, why: 'malformed' });
  assert.deepEqual(await auth.check(basic('no-colon')), { ok: false, why: 'malformed' });
  assert.deepEqual(await auth.check(basic(':empty-user')), { ok: false, why: 'malformed' });
  assert.deepEqual(await auth.check(basic('tech:wrong')), { ok: false, why: 'wrong', username: 'tech' });
  assert.deepEqual(await auth.check(basic('nobody:s3cret: with colon')), {
    ok: false,
    why: 'wrong',
    username: 'nobody',
  });
  // remembered: the same header passes again (from memory), a wrong one is still refused
  assert.equal((await auth.check(basic('tech:s3cret: with colon'))).ok, true);
  assert.equal((await auth.check(basic('tech:wrong'))).ok, false);
});
