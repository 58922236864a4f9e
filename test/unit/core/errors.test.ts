import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ERROR_CODES } from '../../../src/core/errors.js';
import { ROOT } from '../../support/kafka.js';

test('every error code is documented in README, and README documents no code that does not exist', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const table = readme.slice(readme.indexOf('### Error codes'));
  const documented = new Set([...table.matchAll(/^\| `(EH_ERR_[A-Z_]+)` \|/gm)].map((m) => m[1]!));
  const defined = new Set(Object.keys(ERROR_CODES));
  assert.deepEqual([...defined].filter((c) => !documented.has(c)), [], 'defined but not in README');
  const mentioned = new Set([...readme.matchAll(/EH_ERR_[A-Z_]+/g)].map((m) => m[0]));
  assert.deepEqual([...mentioned].filter((c) => !defined.has(c)), [], 'in README but not defined');
});
