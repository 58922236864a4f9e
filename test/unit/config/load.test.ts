import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { inspect } from 'node:util';
import { effectiveSecrets } from '../../../src/config/diff.js';
import {
  ConfigError,
  deepFreeze,
  parseConfig,
  resolveSecrets,
  resolveStatePath,
  type LoadedConfig,
} from '../../../src/config/load.js';
import { Secrets } from '../../../src/config/resolved.js';
import { readSecret } from '../../../src/config/secrets.js';
import { ROOT } from '../../support/kafka.js';

function problems(yaml: string): ConfigError['problems'] {
  try {
    parseConfig(yaml, 'test.yaml');
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
  assert.fail('config was accepted');
}

test('the shipped config is valid and equals the built-in defaults (but for anonymous MQTT, on for a first test)', () => {
  const shipped = parseConfig(readFileSync(join(ROOT, 'config/edgehaul.yaml'), 'utf8'), 'edgehaul.yaml');
  const defaults = parseConfig('', 'empty.yaml');
  // the one documented difference: the built-in default refuses anonymous clients
  assert.equal(defaults.ingest.embedded.auth.allow_anonymous, false);
  assert.equal(shipped.ingest.embedded.auth.allow_anonymous, true);
  assert.deepEqual(shipped, {
    ...defaults,
    ingest: {
      ...defaults.ingest,
      embedded: { ...defaults.ingest.embedded, auth: { ...defaults.ingest.embedded.auth, allow_anonymous: true } },
    },
  });
  assert.equal(shipped.ingest.embedded.port, 1883);
  assert.equal(shipped.buffer.synchronous, 'full');
});

test('an unknown key is an error naming the key and its line', () => {
  const [p, ...more] = problems('kafka:\n  brokers: ["h:1"]\n  compresion: gzip\n');
  assert.equal(more.length, 0);
  assert.equal(p!.key, 'kafka');
  assert.equal(p!.line, 3);
  assert.match(p!.message, /unknown key "compresion"/);
});

test('a wrong type names the key path and line', () => {
  const [p] = problems('ingest:\n  embedded:\n    port: "eighteen"\n');
  assert.equal(p!.key, 'ingest.embedded.port');
  assert.equal(p!.line, 3);
});

test('route errors name the route', () => {
  const yaml =
    'routes:\n  - name: a\n    match: x/#\n    topic: t\n  - name: b\n    match: "dev/+id/#"\n    topic: t\n    key: "{device}"\n';
  const [p] = problems(yaml);
  assert.equal(p!.key, 'routes[1]');
  assert.equal(p!.line, 5);
  assert.match(p!.message, /route "b": key uses \{device\}/);
  assert.match(problems('routes:\n  - { name: a, match: "a/#/b", topic: t }\n')[0]!.message, /route "a".*last level/);
  assert.match(problems('routes:\n  - { name: a, match: "#", topic: "no spaces" }\n')[0]!.key, /routes\[0\]\.topic/);
  assert.match(
    problems('routes:\n  - { name: a, match: "#", topic: t }\n  - { name: a, match: "#", topic: u }\n')[0]!.message,
    /duplicate route name/,
  );
});

test('YAML syntax errors carry the line', () => {
  const [p] = problems('a: 1\nb: [\n');
  assert.equal(typeof p!.line, 'number');
  assert.throws(
    () => parseConfig('a: 1\na: 2\n', 'dup.yaml'),
    (err: unknown) => err instanceof ConfigError && err.code === 'EH_ERR_CONFIG_YAML',
  );
});

test('secrets come from env or files, and a missing one is a clear error', () => {
  assert.equal(readSecret({ env: 'EH_TEST_PW' }, { EH_TEST_PW: 's3cret' }), 's3cret');
  assert.throws(() => readSecret({ env: 'EH_TEST_NOPE' }, {}), /EH_TEST_NOPE is not set/);
  assert.throws(
    () => readSecret({ file: 'nope' }, { CREDENTIALS_DIRECTORY: '/nonexistent' }),
    /cannot be read: ENOENT/,
  );
  assert.match(problems('ingest:\n  client:\n    password: { env: A, file: b }\n')[0]!.message, /exactly one/);
});

function loadedFrom(yaml: string): LoadedConfig {
  return { config: deepFreeze(parseConfig(yaml, 't.yaml')), file: 't.yaml', gatewayId: 'gw', bufferPath: 'b.db' };
}

const WITH_SECRETS = `
ingest:
  mode: client
  client: { password: { env: EH_TEST_MQTT_PW }, tls: { enabled: true, ca: { file: ca.pem } } }
kafka:
  tls: { enabled: false, ca: { file: unused.pem } }
  sasl: { mechanism: plain, username: gw, password: { value: inline-kafka-pw } }
`;

test('resolveSecrets reads each used secret once into a map beside the config, which stays as written', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'edgehaul-secrets-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'ca.pem'), 'ca-pem-text\n');
  const loaded = loadedFrom(WITH_SECRETS);
  const resolved = resolveSecrets(loaded, { EH_TEST_MQTT_PW: 'env-mqtt-pw', CREDENTIALS_DIRECTORY: dir });
  assert.deepEqual(resolved.secrets.keys().sort(), [
    'ingest.client.password',
    'ingest.client.tls.ca',
    'kafka.sasl.password',
  ]);
  assert.equal(resolved.secrets.get('ingest.client.password'), 'env-mqtt-pw');
  assert.equal(resolved.secrets.get('ingest.client.tls.ca'), 'ca-pem-text');
  assert.equal(resolved.secrets.get('kafka.sasl.password'), 'inline-kafka-pw');
  // kafka.tls is off: its file is neither read nor required
  assert.equal(resolved.secrets.get('kafka.tls.ca'), undefined);
  assert.equal(resolved.config, loaded.config, 'the config as written, secret specs and all');
  assert.deepEqual(resolved.config.ingest.client.password, { env: 'EH_TEST_MQTT_PW' });

  // check-config by hand: { env } secrets are the service's, skipped; the others still checked
  const byHand = resolveSecrets(loaded, { CREDENTIALS_DIRECTORY: dir }, { envToo: false });
  assert.deepEqual(byHand.secrets.keys().sort(), ['ingest.client.tls.ca', 'kafka.sasl.password']);

  // every missing one listed by key, naming the variable or the file, never a value
  let err: unknown;
  try {
    resolveSecrets(loaded, { CREDENTIALS_DIRECTORY: join(dir, 'elsewhere') });
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ConfigError && err.code === 'EH_ERR_CONFIG_SECRET', String(err));
  assert.deepEqual(
    err.problems.map((p) => p.key),
    ['ingest.client.password', 'ingest.client.tls.ca'],
  );
  assert.match(err.message, /EH_TEST_MQTT_PW is not set/);
  assert.match(err.message, /elsewhere\/ca\.pem cannot be read: ENOENT/);
});

test('resolved secrets print as their keys only: JSON, util.inspect, String, a spread', () => {
  const secrets = new Secrets([
    ['kafka.sasl.password', 'inline-kafka-pw'],
    ['kafka.tls.key', 'PEM-KEY-TEXT'],
  ]);
  const resolved = { ...loadedFrom(''), secrets };
  for (const shown of [
    JSON.stringify(resolved),
    JSON.stringify({ ...secrets }),
    inspect(resolved, { depth: 10, showHidden: true }),
    String(secrets),
    `${secrets.keys().join()}`,
  ]) {
    assert.doesNotMatch(shown, /inline-kafka-pw|PEM-KEY-TEXT/, shown);
  }
  assert.match(JSON.stringify(resolved), /"kafka\.sasl\.password":"\[redacted\]"/);
  assert.match(inspect(secrets), /kafka\.sasl\.password, kafka\.tls\.key/);
  assert.equal(secrets.require('kafka.tls.key'), 'PEM-KEY-TEXT');
  assert.throws(
    () => secrets.require('kafka.tls.ca'),
    (e: Error & { code?: string }) => e.code === 'EH_ERR_CONFIG_SECRET' && !/PEM-KEY/.test(e.message),
  );
});

test('after a reload the live settings run with the new secrets, restart-only ones keep the running ones', () => {
  const running = new Secrets([
    ['kafka.sasl.password', 'old-kafka'],
    ['ingest.embedded.tls.key', 'old-listener-key'],
  ]);
  const next = new Secrets([
    ['kafka.sasl.password', 'new-kafka'],
    ['kafka.tls.ca', 'new-ca'],
    ['ingest.embedded.tls.key', 'new-listener-key'],
    ['ingest.client.password', 'new-client'],
  ]);
  const effective = effectiveSecrets(running, next);
  assert.deepEqual(effective.keys().sort(), ['ingest.embedded.tls.key', 'kafka.sasl.password', 'kafka.tls.ca']);
  assert.equal(effective.get('kafka.sasl.password'), 'new-kafka');
  assert.equal(effective.get('kafka.tls.ca'), 'new-ca');
  assert.equal(effective.get('ingest.embedded.tls.key'), 'old-listener-key');
});

test('relative buffer paths resolve against STATE_DIRECTORY', () => {
  assert.equal(resolveStatePath('buffer.db', { STATE_DIRECTORY: '/var/lib/edgehaul' }), '/var/lib/edgehaul/buffer.db');
  assert.equal(resolveStatePath('/data/b.db', { STATE_DIRECTORY: '/var/lib/edgehaul' }), '/data/b.db');
});

test('client mode: shared subscriptions and topics-with-connections are rejected', () => {
  assert.match(problems('ingest:\n  client:\n    topics: ["$share/g/devices/#"]\n')[0]!.message, /out of order/);
  assert.match(
    problems('ingest:\n  client:\n    topics: ["a/#"]\n    connections: [["b/#"]]\n')[0]!.message,
    /either topics/,
  );
  assert.match(problems('ingest:\n  client:\n    connections: [["a/#/b"]]\n')[0]!.message, /last level/);
  const ok = parseConfig(
    'ingest:\n  mode: client\n  client:\n    connections: [["site/a/#"], ["site/b/#"]]\n',
    't.yaml',
  );
  assert.equal(ok.ingest.client.connections.length, 2);
});

test('a payload limit that Kafka requests could not carry is rejected', () => {
  assert.match(problems('ingest:\n  max_payload_bytes: 2000000\n')[0]!.message, /kafka.max_send_bytes/);
});

test('transform steps: a bad expression, a type error and an unknown step are rejected naming route, step, key and line', () => {
  const steps = (extra: string): string => `routes:
  - name: telemetry
    match: "site/+site/dev/+device/telemetry"
    topic: plant.telemetry
    steps:
      - decode: json
${extra}`;
  const problems = (text: string): string[] => {
    try {
      parseConfig(text, 'edgehaul.yaml');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      return err.problems.map((p) => `${p.line}: ${p.key}: ${p.message}`);
    }
    return [];
  };
  const [syntax] = problems(steps('      - filter: "temp > 20 &&"\n'));
  assert.match(syntax!, /^7: routes\[0\]\.steps\[1\]\.filter: route "telemetry" step 2: bad expression/);
  const [typed] = problems(steps('      - map:\n          compute:\n            x: "1 + \'a\'"\n'));
  assert.match(typed!, /^9: routes\[0\]\.steps\[1\]\.map\.compute\.x: route "telemetry" step 2: .*int \+ string/);
  const unknown = problems(steps('      - explode: {}\n'));
  assert.ok(
    unknown.some((p) => /^7: routes\[0\]\.steps\[1\]: unknown key "explode"/.test(p)),
    unknown.join('\n'),
  );
  assert.deepEqual(problems(steps('      - filter: "temp > 20"\n')), [], 'a good one passes');
});

test('when_full downsample: bucket_secs defaults to 60, is bounded, and needs durability disk', () => {
  const ok = parseConfig('routes:\n  - { name: a, match: "#", topic: t, when_full: downsample }\n', 'ok.yaml');
  assert.equal(ok.routes[0]!.when_full, 'downsample');
  assert.equal(ok.routes[0]!.downsample.bucket_secs, 60);
  const set = parseConfig(
    'routes:\n  - { name: a, match: "#", topic: t, when_full: downsample, downsample: { bucket_secs: 5 } }\n',
    'set.yaml',
  );
  assert.equal(set.routes[0]!.downsample.bucket_secs, 5);
  assert.match(
    problems('routes:\n  - { name: a, match: "#", topic: t, downsample: { bucket_secs: 0 } }\n')[0]!.key,
    /routes\[0\]\.downsample\.bucket_secs/,
  );
  const [p] = problems('routes:\n  - { name: a, match: "#", topic: t, when_full: downsample, durability: memory }\n');
  assert.match(p!.key, /routes\[0\]/);
  assert.match(p!.message, /downsample needs durability: disk/);
});

test('http.host beyond loopback without http.auth.users: EH_ERR_CONFIG_HTTP_OPEN, naming the key and line', () => {
  const yaml = 'http:\n  host: 0.0.0.0\n';
  assert.throws(
    () => parseConfig(yaml, 'open.yaml'),
    (err: ConfigError) =>
      err.code === 'EH_ERR_CONFIG_HTTP_OPEN' && err.problems[0]?.key === 'http.host' && err.problems[0]?.line === 2,
  );
  assert.equal(parseConfig('http:\n  host: 127.0.0.2\n', 'lo.yaml').http.host, '127.0.0.2');
  assert.equal(parseConfig('http:\n  enabled: false\n  host: 0.0.0.0\n', 'off.yaml').http.enabled, false);
  const hash = 'scrypt$16384$8$1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g';
  const withUser = parseConfig(
    `http:\n  host: 0.0.0.0\n  auth:\n    users:\n      - { username: tech, password_hash: "${hash}" }\n`,
    'u.yaml',
  );
  assert.equal(withUser.http.auth.users.length, 1);
  assert.throws(
    () => parseConfig('http:\n  tls:\n    enabled: true\n', 'tls.yaml'),
    (err: ConfigError) => err.code === 'EH_ERR_CONFIG_INVALID' && /cert and key/.test(err.message),
  );
  assert.throws(
    () => parseConfig(`http:\n  auth:\n    users:\n      - { username: "a:b", password_hash: "${hash}" }\n`, 'c.yaml'),
    (err: ConfigError) => err.code === 'EH_ERR_CONFIG_INVALID' && /cannot hold ":"/.test(err.message),
  );
});
