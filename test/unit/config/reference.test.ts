import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { configSchema } from '../../../src/config/schema.js';
import { ROOT } from '../../support/kafka.js';

/** Leaf settings of the built-in defaults, as dotted paths (lists are leaves; routes have a table of their own). */
function leaves(value: unknown, prefix = ''): string[] {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || prefix === 'routes') return [prefix];
  return Object.entries(value as Record<string, unknown>).flatMap(([k, v]) =>
    leaves(v, prefix === '' ? k : `${prefix}.${k}`),
  );
}

/**
 * The keys the config reference (docs/configuration.md) documents: the first cell of each table
 * row, where `a.b.c` / `.d` is shorthand for a.b.c and a.b.d.
 */
function documented(reference: string): Set<string> {
  const keys = new Set<string>();
  for (const line of reference.split('\n')) {
    if (!line.startsWith('| `')) continue;
    const cell = line.split('|')[1]!;
    let parent = '';
    for (const m of cell.matchAll(/`([^`]+)`/g)) {
      const key = m[1]!;
      if (key.startsWith('.')) {
        keys.add(`${parent}${key}`);
      } else {
        keys.add(key);
        parent = key.slice(0, key.lastIndexOf('.'));
      }
    }
  }
  return keys;
}

test('docs/configuration.md documents every setting of the schema (checked against the built-in defaults)', () => {
  const reference = readFileSync(join(ROOT, 'docs/configuration.md'), 'utf8');
  const keys = documented(reference);
  const missing = leaves(configSchema.parse({})).filter((path) => !keys.has(path));
  assert.deepEqual(
    missing,
    [],
    `settings missing from the config reference (docs/configuration.md): ${missing.join(', ')}`,
  );
});

test('docs/durability.md documents every route setting (checked against a parsed route)', async () => {
  const { routeSchema } = await import('../../../src/config/schema.js');
  const text = readFileSync(join(ROOT, 'docs/durability.md'), 'utf8');
  const table = text.slice(text.indexOf('| route key |'));
  const keys = documented(table.slice(0, table.indexOf('\n\n')));
  const route = routeSchema.parse({ name: 'r', match: '#', topic: 't' }) as Record<string, unknown>;
  const all = leaves({ ...route, max_bytes: 1, ttl_secs: 1 });
  const missing = all.filter((path) => !keys.has(path));
  assert.deepEqual(missing, [], `route settings missing from docs/durability.md: ${missing.join(', ')}`);
});
