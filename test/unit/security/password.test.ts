import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from '../../../src/config/load.js';
import { hashPassword, parseHash, verifyPassword } from '../../../src/security/password.js';

test('a password hash is scrypt$N$r$p$salt$hash, salted, and verifies only its password', async () => {
  const a = await hashPassword('correct horse', { N: 1024, r: 8, p: 1 });
  const b = await hashPassword('correct horse', { N: 1024, r: 8, p: 1 });
  assert.match(a, /^scrypt\$1024\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
  assert.notEqual(a, b, 'a fresh salt each time');
  const parsed = parseHash(a)!;
  assert.equal(await verifyPassword('correct horse', parsed), true);
  assert.equal(await verifyPassword(Buffer.from('correct horse'), parsed), true, 'MQTT passwords arrive as bytes');
  assert.equal(await verifyPassword('correct hors', parsed), false);
  assert.equal(await verifyPassword('', parsed), false);
  // the default parameters
  assert.match(await hashPassword('x'), /^scrypt\$16384\$8\$1\$/);
});

test('hashes with unbounded or malformed parameters are refused by check-config', () => {
  const salt = Buffer.alloc(16, 1).toString('base64url');
  const hash = Buffer.alloc(32, 2).toString('base64url');
  assert.ok(parseHash(`scrypt$16384$8$1$${salt}$${hash}`));
  assert.equal(parseHash(`scrypt$16385$8$1$${salt}$${hash}`), null, 'N not a power of two');
  assert.equal(parseHash(`scrypt$4194304$8$1$${salt}$${hash}`), null, 'N too large');
  assert.equal(parseHash(`scrypt$1048576$16$1$${salt}$${hash}`), null, 'too much memory');
  assert.equal(parseHash(`bcrypt$10$${salt}$${hash}`), null);
  assert.equal(parseHash('hunter2'), null, 'a plain password is not a hash');
  assert.throws(
    () =>
      parseConfig(
        'ingest:\n  embedded:\n    auth:\n      users:\n        - { username: a, password_hash: hunter2 }\n',
        't.yaml',
      ),
    /line 5: ingest\.embedded\.auth\.users\[0\]\.password_hash: not a password hash/,
  );
  const ok = parseConfig(
    `ingest:\n  embedded:\n    auth:\n      users:\n        - { username: a, password_hash: "scrypt$16384$8$1$${salt}$${hash}" }\n`,
    't.yaml',
  );
  assert.equal(ok.ingest.embedded.auth.users.length, 1);
});

test('security settings are checked together: TLS needs cert and key, one listener at least, no duplicate users', () => {
  assert.throws(
    () => parseConfig('ingest:\n  embedded:\n    tls: { enabled: true }\n', 't.yaml'),
    /needs cert and key/,
  );
  assert.throws(() => parseConfig('ingest:\n  embedded:\n    plain_tcp: false\n', 't.yaml'), /no listener left/);
  assert.throws(
    () => parseConfig('ingest:\n  embedded:\n    auth:\n      users: [{ username: a }, { username: a }]\n', 't.yaml'),
    /duplicate user "a"/,
  );
  assert.throws(
    () => parseConfig('ingest:\n  embedded:\n    auth:\n      acl: [{ publish: ["a/#/b"] }]\n', 't.yaml'),
    /"#" only last/,
  );
  assert.throws(
    () => parseConfig('kafka:\n  sasl: { mechanism: scram-sha-1, username: u, password: { env: P } }\n', 't.yaml'),
    /kafka\.sasl\.mechanism/,
  );
  assert.throws(
    () => parseConfig('kafka:\n  tls: { enabled: true, cert: { file: c.pem } }\n', 't.yaml'),
    /both cert and key/,
  );
  const ok = parseConfig(
    'kafka:\n  tls: { enabled: true }\n  sasl: { mechanism: scram-sha-512, username: u, password: { env: P } }\n',
    't.yaml',
  );
  assert.equal(ok.kafka.sasl?.mechanism, 'scram-sha-512');
});
