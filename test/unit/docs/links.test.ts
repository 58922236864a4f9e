import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../../support/kafka.js';

/** The manual: README, CONTRIBUTING and every page under docs/. */
function pages(): string[] {
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.md') ? [join(dir, e.name)] : [],
    );
  return [join(ROOT, 'README.md'), join(ROOT, 'CONTRIBUTING.md'), ...walk(join(ROOT, 'docs'))].sort();
}

/** The lines outside fenced code blocks (a `# comment` in a YAML sample is no heading, a `[x](y)` in code no link). */
function prose(markdown: string): string[] {
  let fence: string | null = null;
  return markdown.split('\n').filter((line) => {
    const m = /^\s*(`{3,}|~{3,})/.exec(line);
    if (m !== null) {
      if (fence === null) fence = m[1]![0]!;
      else if (m[1]![0] === fence) fence = null;
      return false;
    }
    return fence === null;
  });
}

/** GitHub's heading anchor: markup dropped, lower case, punctuation removed, spaces to hyphens; repeats get -1, -2, ... */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const line of prose(markdown)) {
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (m === null) continue;
    const text = m[1]!.replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1').replace(/[`*]/g, '');
    const base = text
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** Relative link targets outside code: `[text](target)` and `![alt](target)`; web and mail links are left out. */
function links(markdown: string): string[] {
  const out: string[] = [];
  for (const line of prose(markdown)) {
    const text = line.replace(/`[^`]*`/g, '');
    for (const m of text.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
      const target = m[1]!;
      if (!/^[a-z][a-z0-9+.-]*:/i.test(target)) out.push(target);
    }
  }
  return out;
}

test('GitHub anchors: markup and punctuation dropped, repeats numbered', () => {
  const a = anchors(
    '# A title\n## Durability: what an acknowledgement means\n## `edgehaul status`\n## /healthz\n```\n# not a heading\n```\n## A title\n## deadband (report by exception)\n',
  );
  assert.deepEqual(
    [...a],
    [
      'a-title',
      'durability-what-an-acknowledgement-means',
      'edgehaul-status',
      'healthz',
      'a-title-1',
      'deadband-report-by-exception',
    ],
  );
});

test('every relative link and anchor in README.md, CONTRIBUTING.md and docs/ resolves', () => {
  const broken: string[] = [];
  let checked = 0;
  for (const page of pages()) {
    const text = readFileSync(page, 'utf8');
    for (const target of links(text)) {
      checked++;
      const [path, anchor] = target.split('#', 2) as [string, string | undefined];
      const file = path === '' ? page : join(dirname(page), decodeURIComponent(path));
      const where = `${relative(ROOT, page)}: ${target}`;
      if (!existsSync(file)) {
        broken.push(`${where} (no such file)`);
        continue;
      }
      if (
        anchor !== undefined &&
        anchor !== '' &&
        file.endsWith('.md') &&
        !anchors(readFileSync(file, 'utf8')).has(anchor)
      ) {
        broken.push(`${where} (no such heading)`);
      }
    }
  }
  assert.ok(checked > 50, `only ${checked} relative links found: is the link pattern still right?`);
  assert.deepEqual(broken, []);
});

test('README links every page of docs/ (its table of contents)', () => {
  const readme = new Set(links(readFileSync(join(ROOT, 'README.md'), 'utf8')).map((t) => t.split('#')[0]));
  const missing = readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md') && !readme.has(`docs/${f}`));
  assert.deepEqual(missing, []);
});
