import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Encoder } from 'cbor-x';
import { encodeBatch } from '../../../src/forward/format.js';
import { ROOT } from '../../helpers/kafka.js';

const cli = (args: string[], input?: Buffer) =>
  spawnSync(process.execPath, [join(ROOT, 'dist/src/cli/main.js'), ...args], { input, encoding: 'utf8', env: { ...process.env, STATE_DIRECTORY: tmpdir() } });

test('decode prints one JSON line per event, from a file or stdin', () => {
  const value = encodeBatch({ gatewayId: 'gw-1', incarnation: '0123456789abcdef' }, 'r', 'dev-1', [
    { seq: 7, route: 'r', kafkaTopic: 't', key: 'dev-1', topic: 'devices/dev-1/t', payload: Buffer.from('{"t":1}'), receivedAt: 1_700_000_000_000 },
    { seq: 9, route: 'r', kafkaTopic: 't', key: 'dev-1', topic: 'devices/dev-1/t', payload: Buffer.from('{"t":2}'), receivedAt: 1_700_000_000_005 },
  ]);
  const file = join(mkdtempSync(join(tmpdir(), 'edgehaul-cli-')), 'v.cbor');
  writeFileSync(file, value);
  for (const result of [cli(['decode', file]), cli(['decode'], value)]) {
    assert.equal(result.status, 0, result.stderr);
    const lines = result.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(lines.map((l) => [l.gateway, l.key, l.seq, l.payload]), [['gw-1', 'dev-1', 7, '{"t":1}'], ['gw-1', 'dev-1', 9, '{"t":2}']]);
  }
  // dead letters: transformed maps, shaped
  const deadLetter = { route: 'r', step: '0:decode', reason: 'decode json: not JSON', topic: 'devices/dev-1/t', client_id: 'd1', received_at: 1_700_000_000_009, payload: Buffer.from('{x') };
  const encoded = new Encoder({ useRecords: false, tagUint8Array: false, variableMapSize: true }).encode(deadLetter);
  const deadEvents = [11, 12].map((seq) => ({ seq, route: '$dead_letters', kafkaTopic: 'd', key: 'dev-1', topic: 'devices/dev-1/t', payload: encoded, receivedAt: 1_700_000_000_009, encoded: true }));
  const dead = cli(['decode'], encodeBatch({ gatewayId: 'gw-1', incarnation: '0123456789abcdef' }, '$dead_letters', 'dev-1', deadEvents));
  assert.equal(dead.status, 0, dead.stderr);
  const deadLines = dead.stdout.trim().split('\n').map((l) => JSON.parse(l) as { seq: number; value: unknown });
  assert.deepEqual(deadLines.map((l) => l.seq), [11, 12]);
  for (const l of deadLines) assert.deepEqual(l.value, { ...deadLetter, payload: Buffer.from('{x').toString('base64') });
  const bad = cli(['decode'], Buffer.from('not cbor at all'));
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /EH_ERR_DECODE_FORMAT/);
});

test('check-config exits 0 on a valid file and 78 naming key and line on a broken one; unknown commands exit 2', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgehaul-cli-'));
  assert.equal(cli(['check-config', join(ROOT, 'config/edgehaul.yaml')]).status, 0);
  writeFileSync(join(dir, 'bad.yaml'), 'buffer:\n  synchronous: sometimes\n');
  const bad = cli(['check-config', join(dir, 'bad.yaml')]);
  assert.equal(bad.status, 78);
  assert.match(bad.stderr, /line 2: buffer\.synchronous: .*\[EH_ERR_CONFIG_INVALID\]/);
  assert.equal(cli(['frobnicate']).status, 2);
});

test('check-config reports every problem on its own line with its YAML line: syntax, several schema errors, a missing file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgehaul-cli-'));
  writeFileSync(join(dir, 'syntax.yaml'), 'kafka:\n  brokers: ["a:1"\nlog:\n  level: info\n');
  const syntax = cli(['check-config', join(dir, 'syntax.yaml')]);
  assert.equal(syntax.status, 78);
  assert.match(syntax.stderr, /syntax\.yaml: line \d+: .*\[EH_ERR_CONFIG_YAML\]/);

  writeFileSync(join(dir, 'many.yaml'), [
    'reload:',
    '  watch: sometimes',
    'kafka:',
    '  linger_ms: -1',
    'log:',
    '  levle: debug',
    '',
  ].join('\n'));
  const many = cli(['check-config', join(dir, 'many.yaml')]);
  assert.equal(many.status, 78);
  const lines = many.stderr.trim().split('\n');
  assert.equal(lines.length, 3, many.stderr);
  assert.ok(lines.some((l) => /line 2: reload\.watch: /.test(l)), many.stderr);
  assert.ok(lines.some((l) => /line 4: kafka\.linger_ms: /.test(l)), many.stderr);
  assert.ok(lines.some((l) => /line 6: log: unknown key "levle"/.test(l)), many.stderr);

  const missing = cli(['check-config', join(dir, 'absent.yaml')]);
  assert.equal(missing.status, 78);
  assert.match(missing.stderr, /ENOENT.*\[EH_ERR_CONFIG_READ\]/);
});
