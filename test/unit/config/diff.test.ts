import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { APPLY, applyMode, changed, diffConfig, effectiveConfig } from '../../../src/config/diff.js';
import { loadConfig, parseConfig } from '../../../src/config/load.js';
import type { Config } from '../../../src/config/schema.js';

const base = parseConfig('', 'base.yaml');
const withYaml = (yaml: string): Config => parseConfig(yaml, 'next.yaml');

/** Every leaf key of a config, arrays as one key. */
function leafKeys(value: unknown, path: string[] = []): string[] {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    return Object.entries(value).flatMap(([k, v]) => leafKeys(v, [...path, k]));
  }
  return [path.join('.')];
}

test('every setting of the default config is classified in the apply table, not by the restart fallback', () => {
  for (const key of leafKeys(base)) {
    const parts = key.split('.');
    const listed = parts.some((_, n) => APPLY[parts.slice(0, n + 1).join('.')] !== undefined);
    assert.ok(listed, `${key} is not in APPLY`);
  }
});

test('listener, buffer file and identity need a restart; routes, kafka, limits, commits, TTLs and log level are live', () => {
  for (const key of [
    'ingest.embedded.port',
    'ingest.embedded.host',
    'ingest.mode',
    'ingest.client.url',
    'buffer.path',
    'buffer.synchronous',
    'gateway.id',
  ]) {
    assert.equal(applyMode(key), 'restart', key);
  }
  for (const key of [
    'routes',
    'kafka.linger_ms',
    'kafka.brokers',
    'ingest.max_payload_bytes',
    'buffer.commit.max_wait_ms',
    'buffer.flash_budget_bytes_per_day',
    'buffer.flash_budget_max_wait_ms',
    'health.flash_endurance_bytes',
    'health.flash_min_days',
    'buffer.ttl_secs',
    'log.level',
    'log.stats_interval_secs',
    'reload.watch',
  ]) {
    assert.equal(applyMode(key), 'live', key);
  }
  assert.equal(applyMode('something.new'), 'restart', 'an unknown key is never claimed to be live');
});

test('boot is the diff from nothing: every section changes', () => {
  const diff = diffConfig(null, base);
  assert.deepEqual(diff.changes.map((c) => c.key).sort(), Object.keys(base).sort());
  assert.ok(changed(diff, 'kafka.linger_ms'));
  assert.ok(changed(diff, 'buffer.commit'));
});

test('an equal config is no change', () => {
  assert.deepEqual(diffConfig(base, withYaml('log:\n  level: info\n')).changes, []);
});

test('changes are named by leaf key; arrays change as a whole', () => {
  const next = withYaml(
    [
      'kafka:\n  linger_ms: 5\n  brokers: ["a:1", "b:2"]',
      'ingest:\n  embedded:\n    port: 1999',
      'log:\n  level: debug',
      'routes:\n  - name: r\n    match: "x/#"\n    topic: t',
    ].join('\n') + '\n',
  );
  const diff = diffConfig(base, next);
  assert.deepEqual(diff.changes.map((c) => [c.key, c.live]).sort(), [
    ['ingest.embedded.port', false],
    ['kafka.brokers', true],
    ['kafka.linger_ms', true],
    ['log.level', true],
    ['routes', true],
  ]);
  assert.ok(changed(diff, 'kafka'));
  assert.ok(!changed(diff, 'buffer'));
});

test('the effective config takes live changes and keeps the running value of restart-only ones', () => {
  const next = withYaml('ingest:\n  embedded:\n    port: 1999\nbuffer:\n  path: other.db\nkafka:\n  linger_ms: 7\n');
  const effective = effectiveConfig(diffConfig(base, next));
  assert.equal(effective.ingest.embedded.port, base.ingest.embedded.port);
  assert.equal(effective.buffer.path, base.buffer.path);
  assert.equal(effective.kafka.linger_ms, 7);
  // a second reload of the same file still reports the pending restart-only keys
  assert.deepEqual(
    diffConfig(effective, next)
      .changes.map((c) => c.key)
      .sort(),
    ['buffer.path', 'ingest.embedded.port'],
  );
});

test('a secret change is reported by key name only', () => {
  const a = withYaml('ingest:\n  client:\n    password:\n      value: old-secret\n');
  const b = withYaml('ingest:\n  client:\n    password:\n      value: new-secret\n');
  const diff = diffConfig(a, b);
  assert.deepEqual(
    diff.changes.map((c) => c.key),
    ['ingest.client.password.value'],
  );
  assert.doesNotMatch(JSON.stringify(diff.changes), /secret/);
});

test('the loaded config is frozen all the way down', () => {
  const file = join(mkdtempSync(join(tmpdir(), 'edgehaul-diff-')), 'c.yaml');
  writeFileSync(file, 'routes:\n  - name: r\n    match: ["a/#"]\n    topic: t\n');
  const { config } = loadConfig(file);
  assert.ok(Object.isFrozen(config));
  assert.ok(Object.isFrozen(config.kafka.retry));
  assert.ok(Object.isFrozen(config.routes));
  assert.ok(Object.isFrozen(config.routes[0]!.match));
  assert.throws(() => {
    (config.kafka as { linger_ms: number }).linger_ms = 1;
  }, TypeError);
});
