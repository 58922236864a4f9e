import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Encoder } from 'cbor-x';
import { DEFAULT_HTTP, runStatus } from '../../../src/cli/status.js';
import { parseConfig } from '../../../src/config/load.js';
import { encodeBatch } from '../../../src/forward/format.js';
import { ROOT } from '../../support/kafka.js';

const cli = (args: string[], input?: Buffer) =>
  spawnSync(process.execPath, [join(ROOT, 'dist/src/cli/main.js'), ...args], {
    input,
    encoding: 'utf8',
    env: { ...process.env, STATE_DIRECTORY: tmpdir() },
  });

test('decode prints one JSON line per event, from a file or stdin', () => {
  const value = encodeBatch({ gatewayId: 'gw-1', incarnation: '0123456789abcdef' }, 'r', 'dev-1', [
    {
      seq: 7,
      route: 'r',
      kafkaTopic: 't',
      key: 'dev-1',
      topic: 'devices/dev-1/t',
      payload: Buffer.from('{"t":1}'),
      receivedAt: 1_700_000_000_000,
    },
    {
      seq: 9,
      route: 'r',
      kafkaTopic: 't',
      key: 'dev-1',
      topic: 'devices/dev-1/t',
      payload: Buffer.from('{"t":2}'),
      receivedAt: 1_700_000_000_005,
    },
  ]);
  const file = join(mkdtempSync(join(tmpdir(), 'edgehaul-cli-')), 'v.cbor');
  writeFileSync(file, value);
  for (const result of [cli(['decode', file]), cli(['decode'], value)]) {
    assert.equal(result.status, 0, result.stderr);
    const lines = result.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(
      lines.map((l) => [l.gateway, l.key, l.seq, l.payload]),
      [
        ['gw-1', 'dev-1', 7, '{"t":1}'],
        ['gw-1', 'dev-1', 9, '{"t":2}'],
      ],
    );
  }
  // dead letters: transformed maps, shaped
  const deadLetter = {
    route: 'r',
    step: '0:decode',
    reason: 'decode json: not JSON',
    topic: 'devices/dev-1/t',
    client_id: 'd1',
    received_at: 1_700_000_000_009,
    payload: Buffer.from('{x'),
  };
  const encoded = new Encoder({ useRecords: false, tagUint8Array: false, variableMapSize: true }).encode(deadLetter);
  const deadEvents = [11, 12].map((seq) => ({
    seq,
    route: '$dead_letters',
    kafkaTopic: 'd',
    key: 'dev-1',
    topic: 'devices/dev-1/t',
    payload: encoded,
    receivedAt: 1_700_000_000_009,
    encoded: true,
  }));
  const dead = cli(
    ['decode'],
    encodeBatch({ gatewayId: 'gw-1', incarnation: '0123456789abcdef' }, '$dead_letters', 'dev-1', deadEvents),
  );
  assert.equal(dead.status, 0, dead.stderr);
  const deadLines = dead.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { seq: number; value: unknown });
  assert.deepEqual(
    deadLines.map((l) => l.seq),
    [11, 12],
  );
  for (const l of deadLines)
    assert.deepEqual(l.value, { ...deadLetter, payload: Buffer.from('{x').toString('base64') });
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

  writeFileSync(
    join(dir, 'many.yaml'),
    ['reload:', '  watch: sometimes', 'kafka:', '  linger_ms: -1', 'log:', '  levle: debug', ''].join('\n'),
  );
  const many = cli(['check-config', join(dir, 'many.yaml')]);
  assert.equal(many.status, 78);
  const lines = many.stderr.trim().split('\n');
  assert.equal(lines.length, 3, many.stderr);
  assert.ok(
    lines.some((l) => /line 2: reload\.watch: /.test(l)),
    many.stderr,
  );
  assert.ok(
    lines.some((l) => /line 4: kafka\.linger_ms: /.test(l)),
    many.stderr,
  );
  assert.ok(
    lines.some((l) => /line 6: log: unknown key "levle"/.test(l)),
    many.stderr,
  );

  const missing = cli(['check-config', join(dir, 'absent.yaml')]);
  assert.equal(missing.status, 78);
  assert.match(missing.stderr, /ENOENT.*\[EH_ERR_CONFIG_READ\]/);
});

test('check-config reports the buffer path the service uses and resolves secret files as the service will', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'edgehaul-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const withoutSystemd = (args: string[]) => {
    const env = { ...process.env };
    delete env.STATE_DIRECTORY;
    delete env.CREDENTIALS_DIRECTORY;
    return spawnSync(process.execPath, [join(ROOT, 'dist/src/cli/main.js'), ...args], {
      encoding: 'utf8',
      env,
      cwd: dir,
    });
  };
  // by hand (no $STATE_DIRECTORY): the unit's /var/lib/edgehaul, not the caller's working directory
  const byHand = withoutSystemd(['check-config', join(ROOT, 'config/edgehaul.yaml')]);
  assert.equal(byHand.status, 0, byHand.stderr);
  assert.match(byHand.stdout, /buffer \/var\/lib\/edgehaul\/buffer\.db\)/);
  assert.match(
    withoutSystemd(['check-config', '--state-dir', dir, join(ROOT, 'config/edgehaul.yaml')]).stdout,
    new RegExp(`buffer ${dir}/buffer\\.db\\)`),
  );

  // a secret file that is not there: exit 78 naming the key, as the daemon would at start
  const shipped = readFileSync(join(ROOT, 'config/edgehaul.yaml'), 'utf8');
  const withSasl = shipped.replace(
    /^kafka:\n/m,
    'kafka:\n  sasl: { mechanism: plain, username: gw, password: { file: kafka-password } }\n',
  );
  assert.notEqual(withSasl, shipped);
  const file = join(dir, 'edgehaul.yaml');
  writeFileSync(file, withSasl);
  const missing = withoutSystemd(['check-config', file]);
  assert.equal(missing.status, 78, missing.stdout);
  assert.match(
    missing.stderr,
    /kafka\.sasl\.password: secret file .*credentials\/kafka-password cannot be read: ENOENT \[EH_ERR_CONFIG_SECRET\]/,
  );
  // the credentials directory beside the config (README: LoadCredential=NAME:/etc/edgehaul/credentials/NAME)
  mkdirSync(join(dir, 'credentials'));
  writeFileSync(join(dir, 'credentials/kafka-password'), 'not-a-real-one\n');
  const found = withoutSystemd(['check-config', file]);
  assert.equal(found.status, 0, found.stderr);
  assert.doesNotMatch(`${found.stdout}${found.stderr}`, /not-a-real-one/, 'a secret is never printed');
  // --credentials-dir (or $CREDENTIALS_DIRECTORY) wins
  assert.equal(withoutSystemd(['check-config', '--credentials-dir', join(dir, 'elsewhere'), file]).status, 78);
});

test('the daemon exits 78 (no restart under systemd) when a secret file is missing', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'edgehaul-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const shipped = readFileSync(join(ROOT, 'config/edgehaul.yaml'), 'utf8');
  const file = join(dir, 'edgehaul.yaml');
  writeFileSync(
    file,
    shipped.replace(
      /^kafka:\n/m,
      'kafka:\n  sasl: { mechanism: plain, username: gw, password: { file: kafka-password } }\n',
    ),
  );
  const run = spawnSync(process.execPath, [join(ROOT, 'dist/src/cli/main.js'), 'run', '--config', file], {
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, STATE_DIRECTORY: dir, CREDENTIALS_DIRECTORY: join(dir, 'creds') },
  });
  assert.equal(run.status, 78, `${run.stdout}${run.stderr}`);
  assert.match(run.stdout, /"code":"EH_ERR_CONFIG_SECRET".*"key":"kafka\.sasl\.password".*config rejected/);
});

test('status: a config this user cannot read falls back to the default address', async (t) => {
  const report = { ok: true };
  const server = createServer((req, res) => {
    res.writeHead(req.url === '/status' ? 200 : 404, { 'content-type': 'application/json' });
    res.end(JSON.stringify(report));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const out: string[] = [];
  const err: string[] = [];
  const code = await runStatus(
    { config: join(tmpdir(), 'edgehaul-no-such-dir', 'edgehaul.yaml'), json: true, defaultUrl: url },
    (s) => out.push(s),
    (s) => err.push(s),
  );
  assert.equal(code, 0, err.join(''));
  assert.deepEqual(JSON.parse(out.join('')), report);
  assert.match(err.join(''), new RegExp(`cannot be read \\(.*ENOENT.*\\); asking the default address ${url}`));
  // an invalid config is still an error: it may name another address
  const dir = mkdtempSync(join(tmpdir(), 'edgehaul-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'bad.yaml'), 'http:\n  prot: 1\n');
  assert.equal(
    await runStatus(
      { config: join(dir, 'bad.yaml'), json: true, defaultUrl: url },
      () => undefined,
      () => undefined,
    ),
    78,
  );
  assert.equal(DEFAULT_HTTP.port, parseConfig('', 'x').http.port);
  assert.equal(DEFAULT_HTTP.host, parseConfig('', 'x').http.host);
});
