import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { RateHistory } from '../../../src/ops/history.js';
import { drainEtaSecs } from '../../../src/ops/observer.js';
import { PAGE_CSP, PAGE_HTML } from '../../../src/ops/page.js';
import { preview, PREVIEW_CHARS, RecentDeadLetters } from '../../../src/ops/recent-dead-letters.js';

test('the page never turns text into markup and the CSP hashes are those of its script and style', () => {
  for (const sink of [
    'innerHTML',
    'outerHTML',
    'insertAdjacentHTML',
    'document.write',
    'eval(',
    'new Function',
    'srcdoc',
  ])
    assert.ok(!PAGE_HTML.includes(sink), sink);
  const script = /<script>([\s\S]*)<\/script>/.exec(PAGE_HTML)![1]!;
  const style = /<style>([\s\S]*)<\/style>/.exec(PAGE_HTML)![1]!;
  const hash = (t: string): string => `'sha256-${createHash('sha256').update(t).digest('base64')}'`;
  assert.ok(PAGE_CSP.includes(`script-src ${hash(script)}`));
  assert.ok(PAGE_CSP.includes(`style-src ${hash(style)}`));
  assert.match(PAGE_CSP, /default-src 'none'/);
  // only its own origin is fetched
  assert.deepEqual(
    [...PAGE_HTML.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]),
    [],
  );
});

test('the rate history keeps the last hour only, oldest first', () => {
  const h = new RateHistory(10);
  for (let i = 1; i <= 1000; i++)
    h.add({ at: i * 10_000, interval_secs: 10, in_events_per_sec: i, out_events_per_sec: i, buffer_bytes: 0 });
  const r = h.report();
  assert.equal(r.samples.length, 360);
  assert.equal(r.samples[0]!.in_events_per_sec, 641);
  assert.equal(r.samples.at(-1)!.in_events_per_sec, 1000);
  assert.deepEqual(new RateHistory(10).report().samples, []);
});

test('recent dead letters: bounded, newest first, previews cut, control characters spelled out, binary as hex', () => {
  const dl = new RecentDeadLetters(3);
  const rec = (n: number, payload: Buffer) => ({
    at: n,
    route: 'r',
    step: '0:decode',
    reason: 'bad',
    topic: `t/${n}`,
    clientId: 'c',
    payload,
  });
  for (let i = 0; i < 10; i++) dl.add([rec(i, Buffer.from(`p${i}`))]);
  assert.deepEqual(
    dl.list().map((d) => d.topic),
    ['t/9', 't/8', 't/7'],
  );
  assert.equal(preview(Buffer.from('<script>alert(1)</script>')), '<script>alert(1)</script>');
  assert.equal(preview(Buffer.from('a\u0000b\nc')), 'a\\u0000b\\u000ac');
  const long = preview(Buffer.from('x'.repeat(5000)));
  assert.equal(long, `${'x'.repeat(PREVIEW_CHARS)}…`);
  assert.equal(preview(Buffer.from([0xff, 0xfe, 0x00, 0x01])), 'hex fffe0001');
  assert.equal(preview(Buffer.from('é'.repeat(300))), `${'é'.repeat(PREVIEW_CHARS)}…`);
});

test('drain ETA: 0 when empty, null while not shrinking, else events over the net outflow', () => {
  assert.equal(drainEtaSecs(0, { in: 5, out: 0, intervalSecs: 10 }), 0);
  assert.equal(drainEtaSecs(100, { in: 5, out: 5, intervalSecs: 10 }), null);
  assert.equal(drainEtaSecs(100, { in: 0, out: 50, intervalSecs: 0 }), null);
  assert.equal(drainEtaSecs(1000, { in: 10, out: 30, intervalSecs: 10 }), 50);
});
