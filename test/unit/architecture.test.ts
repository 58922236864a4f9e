import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, posix, relative, sep } from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';
import { ROOT } from '../support/kafka.js';

/**
 * Imports point one way: stages -> core, never up (CONTRIBUTING.md, docs/architecture.md).
 * The stages in flow order; security/ is a library the stages use and is held to the same rule.
 */
const STAGES = ['ingest', 'transform', 'buffer', 'forward'] as const;
const UPPER = ['ops', 'config', 'cli'];

/** Every module specifier a source imports: import, export-from, import type, dynamic import(). */
export function importsOf(fileName: string, source: string): string[] {
  const info = ts.preProcessFile(source, true, true);
  return info.importedFiles.map((f) => f.fileName);
}

/** The area of a path relative to src/ (posix): 'ingest', 'core', 'gateway.ts', ... */
function areaOf(path: string): string {
  return path.split('/')[0]!;
}

/**
 * The modules that read secrets (env, files): config/ resolves every used secret once at load and
 * the stages get the values. core/secret.ts is where the reader lived when the stages called it.
 */
const SECRET_READERS = ['config/secrets.ts', 'core/secret.ts'];

/** The rule broken by `from` importing `to` (both relative to src/, posix), or null. */
export function violation(from: string, to: string): string | null {
  const a = areaOf(from);
  const b = areaOf(to);
  if (SECRET_READERS.includes(to) && a !== 'config')
    return `${from.endsWith('gateway.ts') ? from : `${a}/`} reads secrets itself (config/ resolves them at load)`;
  if (a === b) return null;
  if (a === 'core') return 'core/ imports only core/';
  if (a === 'ops' && b === 'gateway.ts') return 'ops/ imports gateway.ts';
  const stage = (STAGES as readonly string[]).indexOf(a);
  if (stage < 0 && a !== 'security') return null;
  if (UPPER.includes(b) || b === 'gateway.ts' || b === 'index.ts')
    return `${a}/ imports ${b}${b.endsWith('.ts') ? '' : '/'}`;
  const target = (STAGES as readonly string[]).indexOf(b);
  if (stage >= 0 && target > stage) return `${a}/ imports the later stage ${b}/`;
  if (a === 'security' && target >= 0) return `security/ imports the stage ${b}/`;
  return null;
}

/** The violations in a set of sources keyed by path relative to src/ (posix). */
export function check(sources: ReadonlyMap<string, string>): string[] {
  const found: string[] = [];
  for (const [file, text] of sources) {
    for (const spec of importsOf(file, text)) {
      if (!spec.startsWith('.')) continue;
      const target = posix.normalize(posix.join(posix.dirname(file), spec)).replace(/\.js$/, '.ts');
      if (target.startsWith('..')) {
        found.push(`${file} -> ${spec} (outside src/)`);
        continue;
      }
      const why = violation(file, target);
      if (why !== null) found.push(`${file} -> ${spec} (${why})`);
    }
  }
  return found.sort();
}

/** Imports from files under test/ (paths relative to the checkout, posix) into scripts/: tests never import scripts. */
export function testsImportingScripts(sources: ReadonlyMap<string, string>): string[] {
  const found: string[] = [];
  for (const [file, text] of sources) {
    if (!file.startsWith('test/')) continue;
    for (const spec of importsOf(file, text)) {
      if (!spec.startsWith('.')) continue;
      const target = posix.normalize(posix.join(posix.dirname(file), spec));
      if (target.startsWith('scripts/')) found.push(`${file} -> ${spec}`);
    }
  }
  return found.sort();
}

function sources(dir = 'src'): Map<string, string> {
  const src = join(ROOT, dir);
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
    );
  return new Map(walk(src).map((f) => [relative(src, f).split(sep).join('/'), readFileSync(f, 'utf8')]));
}

test('the checker sees every kind of import and flags a known violation', () => {
  const fake = new Map([
    [
      'forward/x.ts',
      [
        "import type { Stats } from '../ops/stats.js';",
        "export { load } from '../config/load.js';",
        "const g = await import('../gateway.js');",
        "import { Record } from '../core/event.js';",
        "import { y } from './y.js';",
        "import { z } from '../ingest/z.js';",
      ].join('\n'),
    ],
    ['core/a.ts', "import { b } from '../buffer/store.js';\nimport { c } from './c.js';"],
    ['transform/p.ts', "import type { S } from '../buffer/store.js';"],
    ['security/t.ts', "import { readSecret } from '../config/load.js';"],
    ['ops/r.ts', "import { Gateway } from '../gateway.js';\nimport { K } from '../forward/kafka.js';"],
    ['forward/k.ts', "import { readSecret } from '../core/secret.js';"],
    ['security/s.ts', "import type { Secret } from '../core/secret.js';"],
    [
      'gateway.ts',
      "import { readSecret } from './config/secrets.js';\nimport { withPem } from './config/resolved.js';",
    ],
    ['ops/s.ts', "import { readSecret } from '../config/secrets.js';"],
    ['config/load.ts', "import { readSecret } from './secrets.js';"],
  ]);
  assert.deepEqual(check(fake), [
    'core/a.ts -> ../buffer/store.js (core/ imports only core/)',
    'forward/k.ts -> ../core/secret.js (forward/ reads secrets itself (config/ resolves them at load))',
    'forward/x.ts -> ../config/load.js (forward/ imports config/)',
    'forward/x.ts -> ../gateway.js (forward/ imports gateway.ts)',
    'forward/x.ts -> ../ops/stats.js (forward/ imports ops/)',
    'gateway.ts -> ./config/secrets.js (gateway.ts reads secrets itself (config/ resolves them at load))',
    'ops/r.ts -> ../gateway.js (ops/ imports gateway.ts)',
    'ops/s.ts -> ../config/secrets.js (ops/ reads secrets itself (config/ resolves them at load))',
    'security/s.ts -> ../core/secret.js (security/ reads secrets itself (config/ resolves them at load))',
    'security/t.ts -> ../config/load.js (security/ imports config/)',
    'transform/p.ts -> ../buffer/store.js (transform/ imports the later stage buffer/)',
  ]);
});

test('the sources under src/ are found and parsed', () => {
  const all = sources();
  assert.ok(all.size > 50, `only ${all.size} sources under src/`);
  for (const stage of [...STAGES, 'core', 'security'])
    assert.ok(
      [...all.keys()].some((f) => f.startsWith(`${stage}/`)),
      `no source in src/${stage}/`,
    );
  const imports = [...all].reduce((n, [f, t]) => n + importsOf(f, t).length, 0);
  assert.ok(imports > 100, `only ${imports} imports found`);
});

test('imports point one way: stages and security -> core, core -> nothing, no stage imports a later one, ops/ not the gateway, only config/ reads secrets', () => {
  const found = check(sources());
  assert.deepEqual(found, [], `imports against the flow:\n${found.join('\n')}`);
});

test('nothing under test/ imports scripts/: the benchmark and the tools use test/support, never the other way', () => {
  const fake = new Map([
    [
      'test/unit/x.test.ts',
      "import { best } from '../../scripts/bench/step-rules.js';\nimport { p } from '../support/poll.js';",
    ],
    ['test/support/y.ts', "export { main } from '../../scripts/vectors.js';"],
    ['scripts/bench/test/z.test.ts', "import { best } from '../step-rules.js';"],
  ]);
  assert.deepEqual(testsImportingScripts(fake), [
    'test/support/y.ts -> ../../scripts/vectors.js',
    'test/unit/x.test.ts -> ../../scripts/bench/step-rules.js',
  ]);
  const tests = new Map([...sources('test')].map(([f, t]) => [`test/${f}`, t]));
  assert.ok(tests.size > 50, `only ${tests.size} sources under test/`);
  const found = testsImportingScripts(tests);
  assert.deepEqual(found, [], `tests importing scripts/:\n${found.join('\n')}`);
});
