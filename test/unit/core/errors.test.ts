import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { ERROR_CODES } from '../../../src/core/errors.js';
import { ROOT } from '../../support/kafka.js';

/** README, CONTRIBUTING and every page of the manual under docs/. */
function manual(): Map<string, string> {
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.md') ? [join(dir, e.name)] : [],
    );
  const files = [join(ROOT, 'README.md'), join(ROOT, 'CONTRIBUTING.md'), ...walk(join(ROOT, 'docs'))];
  return new Map(files.map((f) => [relative(ROOT, f), readFileSync(f, 'utf8')]));
}

test('every error code is documented in docs/operations.md, and no page of the manual names a code that does not exist', () => {
  const pages = manual();
  const operations = pages.get('docs/operations.md')!;
  const start = operations.indexOf('## Error codes');
  assert.ok(start >= 0, 'docs/operations.md has no "## Error codes" section');
  const table = operations.slice(start);
  const documented = new Set([...table.matchAll(/^\| `(EH_ERR_[A-Z_]+)` \|/gm)].map((m) => m[1]!));
  const defined = new Set(Object.keys(ERROR_CODES));
  assert.deepEqual(
    [...defined].filter((c) => !documented.has(c)),
    [],
    'defined but not in the error table of docs/operations.md',
  );
  for (const [page, text] of pages) {
    const mentioned = new Set([...text.matchAll(/EH_ERR_[A-Z_]+/g)].map((m) => m[0]));
    assert.deepEqual(
      [...mentioned].filter((c) => !defined.has(c)),
      [],
      `in ${page} but not defined`,
    );
  }
});
