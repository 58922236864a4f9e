import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from '../../../src/config/load.js';
import { compileUploadWindows, inHours, localTime } from '../../../src/ops/windows.js';

const at = (iso: string): Date => new Date(iso);

test('no windows: always open', () => {
  const w = compileUploadWindows([], '');
  assert.equal(w.always, true);
  assert.equal(w.isOpen(at('2026-01-01T12:00:00Z')), true);
});

test('hours: start included, end excluded, spanning midnight', () => {
  assert.equal(inHours(60, 60, 300), true);
  assert.equal(inHours(299, 60, 300), true);
  assert.equal(inHours(300, 60, 300), false);
  assert.equal(inHours(59, 60, 300), false);
  // 22:00-06:00
  assert.equal(inHours(23 * 60, 22 * 60, 6 * 60), true);
  assert.equal(inHours(0, 22 * 60, 6 * 60), true);
  assert.equal(inHours(6 * 60, 22 * 60, 6 * 60), false);
  assert.equal(inHours(12 * 60, 22 * 60, 6 * 60), false);
  // up to the end of the day
  assert.equal(inHours(23 * 60 + 59, 20 * 60, 24 * 60), true);
});

test('hours are read in the window time zone, daylight saving time included', () => {
  const w = compileUploadWindows([{ hours: '01:00-05:00', timezone: 'Europe/Berlin' }], 'UTC');
  // winter: Berlin is UTC+1
  assert.equal(w.isOpen(at('2026-01-15T00:00:00Z')), true, '01:00 in Berlin');
  assert.equal(w.isOpen(at('2026-01-15T03:59:59Z')), true, '04:59:59 in Berlin');
  assert.equal(w.isOpen(at('2026-01-15T04:00:00Z')), false, '05:00 in Berlin');
  assert.equal(w.isOpen(at('2026-01-14T23:59:00Z')), false, '00:59 in Berlin');
  // summer: UTC+2
  assert.equal(w.isOpen(at('2026-07-15T23:00:00Z')), true, '01:00 in Berlin');
  assert.equal(w.isOpen(at('2026-07-16T03:00:00Z')), false, '05:00 in Berlin');
  // the default zone applies to a window without its own
  const utc = compileUploadWindows([{ hours: '01:00-05:00', timezone: '' }], 'UTC');
  assert.equal(utc.isOpen(at('2026-01-15T00:30:00Z')), false);
  assert.equal(utc.isOpen(at('2026-01-15T01:30:00Z')), true);
  assert.equal(localTime(at('2026-01-15T13:07:00Z'), 'Asia/Kolkata'), '18:37');
});

test('cron windows: open during every second of a matching minute, in their time zone; several windows add up', () => {
  const w = compileUploadWindows(
    [
      { cron: '* 2 * * 1-5', timezone: 'America/New_York' },
      { cron: '* 12 * * 6,0', timezone: 'UTC' },
    ],
    '',
  );
  try {
    // Monday 2026-01-12 02:xx in New York = 07:xx UTC
    assert.equal(w.isOpen(at('2026-01-12T07:00:00Z')), true);
    assert.equal(w.isOpen(at('2026-01-12T07:59:59Z')), true, 'not only second 0');
    assert.equal(w.isOpen(at('2026-01-12T08:00:00Z')), false);
    assert.equal(w.isOpen(at('2026-01-12T02:30:00Z')), false, '02:30 UTC is 21:30 in New York');
    // Saturday noon UTC: the second window
    assert.equal(w.isOpen(at('2026-01-17T12:30:00Z')), true);
    assert.equal(w.isOpen(at('2026-01-16T12:30:00Z')), false, 'Friday noon');
  } finally {
    w.close();
  }
});

test('six-field cron windows match by the second', () => {
  const w = compileUploadWindows([{ cron: '10-19 * * * * *', timezone: 'UTC' }], '');
  try {
    assert.equal(w.isOpen(at('2026-01-12T07:00:09Z')), false);
    assert.equal(w.isOpen(at('2026-01-12T07:00:10Z')), true);
    assert.equal(w.isOpen(at('2026-01-12T07:00:19Z')), true);
    assert.equal(w.isOpen(at('2026-01-12T07:00:20Z')), false);
  } finally {
    w.close();
  }
});

test('invalid windows, cron expressions and time zones are config errors with their line', () => {
  const problem = (yaml: string): { key: string; line: number | null; message: string } => {
    try {
      parseConfig(yaml, 't.yaml');
    } catch (err) {
      return (err as { problems: Array<{ key: string; line: number | null; message: string }> }).problems[0]!;
    }
    assert.fail('accepted');
  };
  let p = problem('kafka:\n  upload_windows:\n    - hours: "01:00-05:00"\n      timezone: Mars/Olympus\n');
  assert.equal(p.key, 'kafka.upload_windows[0].timezone');
  assert.equal(p.line, 4);
  assert.match(p.message, /IANA time zone/);
  p = problem('kafka:\n  upload_windows:\n    - cron: "* 25 * * *"\n');
  assert.equal(p.key, 'kafka.upload_windows[0].cron');
  assert.equal(p.line, 3);
  assert.match(p.message, /cron expression/);
  assert.match(problem('kafka:\n  upload_windows:\n    - hours: "1:00-5:00"\n').message, /HH:MM-HH:MM/);
  assert.match(
    problem('kafka:\n  upload_windows:\n    - { hours: "01:00-05:00", cron: "* * * * *" }\n').message,
    /exactly one of hours or cron/,
  );
  assert.match(problem('kafka:\n  upload_windows:\n    - { hours: "03:00-03:00" }\n').message, /empty/);
  p = problem('schedules:\n  timezone: UTC\n  store_maintenance: "every night"\n');
  assert.equal(p.key, 'schedules.store_maintenance');
  assert.equal(p.line, 3);
  assert.equal(problem('schedules:\n  timezone: Nowhere/Else\n').line, 2);
  assert.equal(problem('telemetry:\n  enabled: true\n  cron: "61 * * * *"\n').key, 'telemetry.cron');
  assert.match(problem('routes:\n  - { name: edgehaul.health, match: "#", topic: t }\n').message, /internal route/);
  // valid ones pass
  const ok = parseConfig(
    'schedules: { timezone: Europe/Berlin, ttl_sweep: "*/5 * * * * *" }\nkafka:\n  upload_windows: [{ hours: "22:00-06:00" }, { cron: "* 1-4 * * *", timezone: UTC }]\n',
    'ok.yaml',
  );
  assert.equal(ok.kafka.upload_windows.length, 2);
});
