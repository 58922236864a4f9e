import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { blockDeviceOf } from '../../../src/core/blockdev.js';
import { FLASH_LIFE_MIN_MS, FLASH_RATE_MIN_MS, FLASH_RATE_WINDOW_MS, FlashMeter } from '../../../src/ops/flash.js';
import { evaluateHealth, HEALTH_REASONS } from '../../../src/ops/health.js';
import { formatFlash } from '../../../src/ops/status.js';
import { ROOT } from '../../support/kafka.js';

const PI = join(ROOT, 'test/fixtures/flash/pi');
const GB = 1e9;
const DAY = 86_400_000;

/** A meter over the fixture's SD card whose counters the test moves: the stat file's value plus `device`. */
function meter(settings = { enduranceBytes: 10_000 * GB, budgetBytesPerDay: 0 }) {
  const clock = { now: 1_000_000, process: 0, device: 0 };
  const m = new FlashMeter('/unused', () => settings, {
    now: () => clock.now,
    processWritten: () => clock.process,
    findDevice: () => blockDeviceOf(179, 2, PI),
    deviceWritten: () => Promise.resolve(5 * GB + clock.device),
  });
  return { m, clock };
}

test('daily rates of the process and the device over the samples, days left from the device', async () => {
  const { m, clock } = meter();
  await m.sample();
  assert.equal(m.report().process_bytes_per_day, null, 'one sample is no rate');
  assert.equal(m.report().device?.name, 'mmcblk0');
  assert.equal(m.report().device?.partition, 'mmcblk0p2');
  // 11 minutes at 1 MB/s for the process, 2 MB/s for the whole device
  for (let i = 0; i < 66; i++) {
    clock.now += 10_000;
    clock.process += 10e6;
    clock.device += 20e6;
    await m.sample();
  }
  const r = m.report();
  assert.equal(r.rate_window_secs, 660);
  assert.equal(r.process_bytes_per_day, 86.4 * GB);
  assert.equal(r.device_bytes_per_day, 172.8 * GB);
  assert.equal(r.device_written_bytes, 5 * GB + 1320e6);
  assert.equal(r.endurance_bytes, 10_000 * GB);
  // (10 TB - 6.32 GB written since boot) / 172.8 GB a day
  assert.equal(r.days_left, Math.round(((10_000 * GB - 6.32 * GB) / (172.8 * GB)) * 10) / 10);
  assert.equal(r.budget_bytes_per_day, null);
  assert.match(
    formatFlash(r),
    /^edgehaul 80\.5 GiB\/day; device mmcblk0 \(mmcblk0p2\) 160\.9 GiB\/day, .* since boot; life left 57\.8 days of 9\.1 TiB; no budget$/,
  );
});

test('no rate before a minute, no days left before ten minutes: a start-up burst is not a daily rate', async () => {
  const { m, clock } = meter();
  await m.sample();
  clock.now += FLASH_RATE_MIN_MS - 1;
  clock.device += 1e9;
  await m.sample();
  assert.equal(m.report().device_bytes_per_day, null);
  clock.now += 1;
  await m.sample();
  assert.ok(m.report().device_bytes_per_day! > 0);
  assert.equal(m.report().days_left, null);
  clock.now += FLASH_LIFE_MIN_MS;
  await m.sample();
  assert.ok(m.report().days_left !== null);
});

test('rates follow the last hour: an old burst leaves the window', async () => {
  const { m, clock } = meter();
  await m.sample();
  clock.device += 500 * GB; // a burst, then quiet at 1 MB per 10 s
  for (let i = 0; i < (2 * FLASH_RATE_WINDOW_MS) / 10_000; i++) {
    clock.now += 10_000;
    clock.device += 1e6;
    await m.sample();
  }
  const r = m.report();
  assert.equal(r.rate_window_secs, FLASH_RATE_WINDOW_MS / 1000);
  assert.equal(r.device_bytes_per_day, Math.round((1e6 / 10_000) * DAY));
});

test('a device counter that went back (re-attached) gives no rate rather than a negative one; worn out is 0 days', async () => {
  const { m, clock } = meter({ enduranceBytes: 1 * GB, budgetBytesPerDay: 5e8 });
  await m.sample();
  clock.now += FLASH_LIFE_MIN_MS;
  clock.device += 1e6;
  await m.sample();
  assert.equal(m.report().days_left, 0, 'more written since boot than the rating: 0, not negative');
  assert.equal(m.report().budget_bytes_per_day, 5e8);
  clock.now += 10_000;
  clock.device -= 2e6;
  await m.sample();
  assert.equal(m.report().device_bytes_per_day, null);
  assert.equal(m.report().days_left, null);
});

test('tmpfs or overlay: the device is unknown with its reason, the process rate is still there', async () => {
  const clock = { now: 0, process: 0 };
  const m = new FlashMeter('/unused', () => ({ enduranceBytes: 1e13, budgetBytesPerDay: 0 }), {
    now: () => clock.now,
    processWritten: () => clock.process,
    findDevice: () => blockDeviceOf(0, 27, PI),
  });
  assert.equal(m.report().device_unknown_reason, 'not sampled yet');
  await m.sample();
  clock.now += FLASH_LIFE_MIN_MS;
  clock.process += 1e9;
  await m.sample();
  const r = m.report();
  assert.equal(r.device, null);
  assert.match(r.device_unknown_reason!, /tmpfs, overlay/);
  assert.equal(r.device_bytes_per_day, null);
  assert.equal(r.days_left, null);
  assert.equal(r.process_bytes_per_day, Math.round((1e9 / FLASH_LIFE_MIN_MS) * DAY));
  assert.match(formatFlash(r), /device unknown \(device 0:27 is not a block device/);
});

test('health: flash_wear (degraded) below health.flash_min_days; unknown days and 0 min days never degrade', () => {
  const input = {
    now: 1,
    upstreamConnected: true,
    buffer: { events: 0, bytes: 0 },
    maxBytes: 1,
    lastLossAt: 0,
    blockedMessages: 0,
    storeDamagedAt: 0,
    lastCommitAt: 1,
    lastCommitErrorAt: 0,
    diskFreeBytes: null,
  };
  const rules = { bufferRatio: 0.8, diskMinFreeBytes: 0, lossWindowMs: 1000, flashMinDays: 30 };
  const worn = evaluateHealth({ ...input, flashDaysLeft: 29.9 }, rules);
  assert.equal(worn.status, 'degraded');
  assert.deepEqual(worn.codes, ['flash_wear']);
  assert.match(worn.reasons[0]!, /^flash_wear: .* about 29\.9 days .*health\.flash_min_days 30/);
  assert.equal(HEALTH_REASONS.flash_wear, 'degraded');
  assert.equal(evaluateHealth({ ...input, flashDaysLeft: 30 }, rules).status, 'ok');
  assert.equal(evaluateHealth({ ...input, flashDaysLeft: null }, rules).status, 'ok');
  assert.equal(evaluateHealth({ ...input, flashDaysLeft: 0 }, { ...rules, flashMinDays: 0 }).status, 'ok');
});
