import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../support/kafka.js';

function run(script: string, args: string[]): { code: number | null; out: string } {
  const r = spawnSync('bash', [join(ROOT, 'scripts', script), ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

const mode = (path: string): string => (statSync(path).mode & 0o7777).toString(8);

test(
  'install.sh into a scratch root: the file tree and permissions, a runnable app, idempotent, and the config never overwritten',
  { timeout: 300_000 },
  (t) => {
    const root = join(mkdtempSync(join(tmpdir(), 'edgehaul-install-')), 'root');
    t.after(() => rmSync(root, { recursive: true, force: true }));

    const first = run('install.sh', ['--root', root, '--no-start']);
    assert.equal(first.code, 0, first.out);
    assert.match(first.out, /skipping user creation, chown and systemctl/);
    assert.match(first.out, /application .*: installed/);

    const app = join(root, 'opt/edgehaul');
    const etc = join(root, 'etc/edgehaul');
    const unit = join(root, 'etc/systemd/system/edgehaul.service');
    for (const p of [
      'dist/src/cli/main.js',
      'package.json',
      'README.md',
      'docs/install.md',
      'node_modules/better-sqlite3/package.json',
      'node_modules/unix-dgram/package.json',
      'node_modules/@confluentinc/kafka-javascript/build/Release/confluent-kafka-javascript.node',
    ]) {
      assert.ok(existsSync(join(app, p)), `${p} installed`);
    }
    assert.ok(!existsSync(join(app, 'node_modules/typescript')), 'build-only packages are left out');
    assert.ok(!existsSync(join(app, 'node_modules/kafkajs')), 'kafkajs (tests and benchmarks only) is left out');
    assert.ok(
      !existsSync(join(app, 'node_modules/@confluentinc/kafka-javascript/deps')),
      "librdkafka's sources are left out",
    );
    assert.ok(!existsSync(join(app, 'dist/test')), 'tests are left out');
    assert.equal(mode(app), '755');
    assert.equal(mode(etc), '750');
    assert.equal(mode(join(etc, 'edgehaul.yaml')), '640');
    assert.equal(mode(join(etc, 'credentials')), '700');
    assert.equal(mode(unit), '644');
    assert.equal(
      readFileSync(join(etc, 'edgehaul.yaml'), 'utf8'),
      readFileSync(join(ROOT, 'config/edgehaul.yaml'), 'utf8'),
    );
    assert.equal(readFileSync(unit, 'utf8'), readFileSync(join(ROOT, 'systemd/edgehaul.service'), 'utf8'));
    assert.ok(!existsSync(join(root, 'var/lib/edgehaul')), "the state directory is systemd's (StateDirectory=)");
    // the edgehaul command README and docs/install.md use
    const bin = join(root, 'usr/local/bin/edgehaul');
    assert.equal(mode(bin), '755');
    assert.match(
      readFileSync(bin, 'utf8'),
      /^#!\/bin\/sh\n[^]*\nexec node \/opt\/edgehaul\/dist\/src\/cli\/main\.js "\$@"\n$/,
    );

    // the installed copy runs on its own node_modules
    const check = spawnSync(
      process.execPath,
      [join(app, 'dist/src/cli/main.js'), 'check-config', join(etc, 'edgehaul.yaml')],
      { encoding: 'utf8', cwd: root },
    );
    assert.equal(check.status, 0, check.stderr);

    const second = run('install.sh', ['--root', root, '--no-start']);
    assert.equal(second.code, 0, second.out);
    assert.match(second.out, /application .*: unchanged/);
    assert.match(second.out, /unit .*: unchanged/);
    assert.match(second.out, /nothing changed: already installed and up to date/);

    // a technician's edit survives a reinstall
    const edited = `${readFileSync(join(etc, 'edgehaul.yaml'), 'utf8')}\n# edited on site\n`;
    writeFileSync(join(etc, 'edgehaul.yaml'), edited);
    const third = run('install.sh', ['--root', root, '--no-start']);
    assert.equal(third.code, 0, third.out);
    assert.match(third.out, /edgehaul\.yaml: exists, left as it is/);
    assert.equal(readFileSync(join(etc, 'edgehaul.yaml'), 'utf8'), edited);

    // uninstall keeps config and buffered data; --purge removes them
    const state = join(root, 'var/lib/edgehaul');
    spawnSync('mkdir', ['-p', state]);
    writeFileSync(join(state, 'buffer.db'), 'unsent events');
    const removed = run('uninstall.sh', ['--root', root]);
    assert.equal(removed.code, 0, removed.out);
    assert.ok(!existsSync(app) && !existsSync(unit), 'app and unit removed');
    assert.equal(readFileSync(join(etc, 'edgehaul.yaml'), 'utf8'), edited);
    assert.ok(existsSync(join(state, 'buffer.db')), 'buffered events kept');
    assert.match(run('uninstall.sh', ['--root', root]).out, /nothing to remove/);
    assert.ok(!existsSync(bin), 'the edgehaul command removed');
    // the secrets step of docs/install.md: `systemctl edit edgehaul` writes a drop-in naming a credential file
    const dropIn = join(root, 'etc/systemd/system/edgehaul.service.d/override.conf');
    spawnSync('mkdir', ['-p', join(root, 'etc/systemd/system/edgehaul.service.d')]);
    writeFileSync(dropIn, '[Service]\nLoadCredential=mqtt-password:/etc/edgehaul/credentials/mqtt-password\n');
    assert.match(run('uninstall.sh', ['--root', root]).out, /edgehaul\.service\.d: kept/);
    assert.ok(existsSync(dropIn), 'uninstall keeps the drop-in with the config');
    const purged = run('uninstall.sh', ['--root', root, '--purge']);
    assert.equal(purged.code, 0, purged.out);
    assert.ok(!existsSync(etc) && !existsSync(state), 'purged');
    // left behind, it would name a credential file --purge deleted: the next install fails with 243/CREDENTIALS
    assert.ok(!existsSync(join(root, 'etc/systemd/system/edgehaul.service.d')), 'drop-ins purged');
  },
);

test(
  'install.sh with a config naming a missing secret file installs, warns with the problem and does not abort',
  { timeout: 300_000 },
  (t) => {
    const root = join(mkdtempSync(join(tmpdir(), 'edgehaul-install-')), 'root');
    t.after(() => rmSync(root, { recursive: true, force: true }));
    spawnSync('mkdir', ['-p', join(root, 'etc/edgehaul')]);
    // valid YAML and schema; only the secret file it names is not there
    const shipped = readFileSync(join(ROOT, 'config/edgehaul.yaml'), 'utf8');
    writeFileSync(
      join(root, 'etc/edgehaul/edgehaul.yaml'),
      shipped.replace(
        /^kafka:\n/m,
        'kafka:\n  sasl: { mechanism: plain, username: gw, password: { file: kafka-password } }\n',
      ),
    );
    const r = run('install.sh', ['--root', root, '--no-start']);
    assert.equal(r.code, 0, r.out);
    assert.match(
      r.out,
      /warning: .*edgehaul\.yaml does not validate; the service will not start until it does:\n.*\[EH_ERR_CONFIG_SECRET\]/,
    );
    // secrets are looked for where the unit's LoadCredential= lines point, inside the scratch root
    assert.match(
      r.out,
      new RegExp(`kafka\\.sasl\\.password: secret file ${root}/etc/edgehaul/credentials/kafka-password cannot be read`),
    );
    assert.match(r.out, /unit .*: installed/);
    assert.match(r.out, /install\.sh: done/);
  },
);

test('install.sh rejects an unknown option with usage exit code 2', () => {
  const bad = run('install.sh', ['--bogus']);
  assert.equal(bad.code, 2);
  assert.match(bad.out, /unknown option --bogus/);
});
