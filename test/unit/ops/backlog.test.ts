import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BacklogMeter } from '../../../src/ops/backlog.js';

test('rates, drain estimate and flash bytes per event come from two samples', () => {
  const meter = new BacklogMeter();
  const first = meter.sample(
    10_000,
    { sent: 0, committed: 0, written: 0 },
    { events: 1000, bytes: 100_000, oldestReceivedAt: 4000 },
  );
  assert.equal(first.oldest_age_secs, 6);
  assert.equal(first.drain_eta_secs, null, 'no rate yet');
  const second = meter.sample(
    12_000,
    { sent: 3000, committed: 1000, written: 250_000 },
    { events: 500, bytes: 50_000, oldestReceivedAt: 9000 },
  );
  assert.equal(second.send_rate, 1500);
  assert.equal(second.receive_rate, 500);
  assert.equal(second.drain_eta_secs, 0.5, '500 events at a net 1000/s');
  assert.equal(second.disk_bytes_per_event, 250);
  const growing = meter.sample(
    13_000,
    { sent: 3100, committed: 2000, written: null },
    { events: 1400, bytes: 1, oldestReceivedAt: 9000 },
  );
  assert.equal(growing.drain_eta_secs, null, 'not shrinking');
  assert.equal(growing.disk_bytes_per_event, null, 'unknown write counter');
});
