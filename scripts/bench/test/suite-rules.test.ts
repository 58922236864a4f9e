import assert from 'node:assert/strict';
import { test } from 'node:test';
import { best, stopReason, type StepFigures } from '../step-rules.js';
import { lineChart } from '../svg-chart.js';

const step = (offered: number | null, sustainedPerSec: number, p99: number | null): StepFigures => ({
  offered,
  sustainedPerSec,
  puback: { p99 },
});

test("stepping stops on a PUBACK p99 over 50 ms only where the PUBACKs are the system's own", () => {
  assert.equal(stopReason(step(10_000, 10_000, 51), undefined, true), 'PUBACK p99 > 50 ms');
  assert.equal(stopReason(step(10_000, 10_000, 51), undefined, false), null, 'an upstream broker answered');
  assert.equal(stopReason(step(10_000, 10_000, 50), undefined, true), null, 'the limit itself is within');
});

test('stepping stops when the offered rate is missed or throughput stops rising', () => {
  assert.equal(stopReason(step(40_000, 33_000, 5), undefined, true), 'offered load not met');
  assert.equal(stopReason(step(40_000, 34_000, 5), undefined, true), null, '85% of the offered rate is enough');
  assert.equal(stopReason(step(null, 41_000, 5), step(40_000, 40_000, 5), true), 'throughput stopped rising');
  assert.equal(stopReason(step(null, 43_000, 5), step(40_000, 40_000, 5), true), null);
});

test('the sustained figure comes from the best step within the p99 limit', () => {
  const steps = [step(10_000, 10_000, 5), step(20_000, 19_000, 30), step(40_000, 39_000, 80)];
  assert.equal(best(steps, true), steps[1]);
  assert.equal(best(steps, false), steps[2], 'no p99 limit where an upstream broker answers');
  assert.equal(
    best([step(10_000, 9000, 90), step(20_000, 12_000, 95)], true)?.sustainedPerSec,
    12_000,
    'all over the limit: the best of them',
  );
  assert.equal(best([], true), null);
});

test('the chart is one SVG with a polyline per series, names escaped, points in x order', () => {
  const svg = lineChart(
    [
      {
        title: 'Sustained',
        yLabel: 'events/s',
        series: [
          {
            name: 'a<b',
            points: [
              [20_000, 19_000],
              [10_000, 10_000],
              [40_000, null],
            ],
          },
          { name: 'c', points: [] },
        ],
      },
      { title: 'p99', yLabel: 'ms', series: [{ name: 'a<b', points: [[10_000, 5]] }], mark: { y: 50, label: 'limit' } },
    ],
    'caption & more',
  );
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.ok(svg.trimEnd().endsWith('</svg>'));
  assert.ok(svg.includes('a&lt;b') && !svg.includes('a<b'));
  assert.ok(svg.includes('caption &amp; more'));
  assert.equal((svg.match(/<polyline /g) ?? []).length, 2, 'one line per series with points, per panel');
  const xs = /<polyline [^>]*points="([^"]+)"/
    .exec(svg)![1]!
    .split(' ')
    .map((p) => Number(p.split(',')[0]));
  assert.deepEqual(
    xs,
    [...xs].sort((a, b) => a - b),
  );
  assert.equal(xs.length, 2, 'null values are left out');
});
