import assert from 'node:assert/strict';
import { test } from 'node:test';
import { evaluateHealth, healthHttpStatus, HEALTH_REASONS, type HealthInput } from '../../../src/ops/health.js';

const NOW = 10_000_000;
const rules = { bufferRatio: 0.8, diskMinFreeBytes: 1000, lossWindowMs: 300_000 };
const healthy: HealthInput = {
  now: NOW,
  upstreamConnected: true,
  buffer: { events: 0, bytes: 0 },
  maxBytes: 10_000,
  lastLossAt: 0,
  blockedMessages: 0,
  storeDamagedAt: 0,
  lastCommitAt: NOW - 10,
  lastCommitErrorAt: 0,
  diskFreeBytes: 1_000_000,
};
const check = (patch: Partial<HealthInput>) => evaluateHealth({ ...healthy, ...patch }, rules);

test('ok when nothing is wrong; unknown disk space and an empty buffer with Kafka away are ok', () => {
  assert.deepEqual(check({}), { status: 'ok', reasons: [], codes: [] });
  assert.equal(check({ diskFreeBytes: null }).status, 'ok');
  assert.equal(check({ upstreamConnected: false }).status, 'ok', 'nothing waits: an idle link is not a problem');
  assert.equal(check({ buffer: null }).status, 'ok');
});

test('each degraded reason, with its code as the prefix of its text', () => {
  const cases: Array<[Partial<HealthInput>, string]> = [
    [{ upstreamConnected: false, buffer: { events: 3, bytes: 10 } }, 'upstream_down'],
    [{ buffer: { events: 3, bytes: 8001 } }, 'buffer_high'],
    [{ lastLossAt: NOW - 299_000 }, 'events_lost'],
    [{ diskFreeBytes: 999 }, 'disk_low'],
    [{ upstreamAuthFailed: true }, 'upstream_auth'],
    [{ storeDamagedAt: NOW - 3_599_000 }, 'store_damaged'],
  ];
  for (const [patch, code] of cases) {
    const h = check(patch);
    assert.equal(h.status, 'degraded', code);
    assert.deepEqual(h.codes, [code]);
    assert.ok(h.reasons[0]!.startsWith(`${code}: `), h.reasons[0]);
    assert.equal(HEALTH_REASONS[code as keyof typeof HEALTH_REASONS], 'degraded');
  }
});

test('reasons expire: a loss outside the window and a damaged store after an hour no longer count', () => {
  assert.equal(check({ lastLossAt: NOW - 300_000 }).status, 'ok');
  assert.equal(check({ storeDamagedAt: NOW - 3_600_000 }).status, 'ok');
  assert.equal(check({ buffer: { events: 1, bytes: 8000 } }).status, 'ok', 'exactly at the ratio is not above it');
});

test('failing: acknowledgements held, or the store not writable since its last failed commit', () => {
  assert.deepEqual(check({ blockedMessages: 2 }).codes, ['acks_held']);
  assert.equal(check({ blockedMessages: 2 }).status, 'failing');
  assert.equal(check({ lastCommitErrorAt: NOW - 5, lastCommitAt: NOW - 10 }).status, 'failing');
  assert.equal(
    check({ lastCommitErrorAt: NOW - 10, lastCommitAt: NOW - 5 }).status,
    'ok',
    'a commit succeeded since: writable again',
  );
  const both = check({ blockedMessages: 1, upstreamConnected: false, buffer: { events: 1, bytes: 1 } });
  assert.equal(both.status, 'failing', 'failing wins over degraded');
  assert.deepEqual(both.codes, ['acks_held', 'upstream_down']);
});

test('/healthz answers 503 only when failing', () => {
  assert.equal(healthHttpStatus('ok'), 200);
  assert.equal(healthHttpStatus('degraded'), 200);
  assert.equal(healthHttpStatus('failing'), 503);
});
