import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { unitRuntime } from '../../support/unit-runtime.js';

const ROOT = join(import.meta.dirname, '../../../..');

test('the benchmark runs the daemon with the node flags and allocator settings of the systemd unit', () => {
  const unit = unitRuntime(readFileSync(join(ROOT, 'systemd/edgehaul.service'), 'utf8'));
  assert.deepEqual(unit.nodeArgs, [], 'the unit runs node with its defaults');
  assert.deepEqual(
    unit.env,
    {},
    'no allocator settings: MALLOC_MMAP_THRESHOLD_=65536 cut RSS by ~25 MB but throughput by a third',
  );
  const other = unitRuntime(
    'Environment=NODE_ENV=production\nEnvironment=MALLOC_ARENA_MAX=2\nExecStart=/usr/bin/node --a=1 --b /x/main.js run --config y\n',
  );
  assert.deepEqual(other, { nodeArgs: ['--a=1', '--b'], env: { MALLOC_ARENA_MAX: '2' } });
  assert.throws(() => unitRuntime('[Service]\n'), /no ExecStart/);
});
