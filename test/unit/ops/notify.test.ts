import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { SystemdNotifier } from '../../../src/ops/notify.js';

const silent = pino({ level: 'silent' });

test("the notifier reads systemd's environment: no socket, no watchdog for another pid, abstract sockets off, ping at half WATCHDOG_USEC", () => {
  assert.equal(SystemdNotifier.fromEnv(silent, {}).enabled, false);
  const watched = SystemdNotifier.fromEnv(silent, { NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '30000000' });
  assert.equal(watched.enabled, true);
  assert.equal(watched.watchdogMs, 15_000);
  assert.equal(
    SystemdNotifier.fromEnv(silent, {
      NOTIFY_SOCKET: '/run/systemd/notify',
      WATCHDOG_USEC: '30000000',
      WATCHDOG_PID: String(process.pid),
    }).watchdogMs,
    15_000,
  );
  assert.equal(
    SystemdNotifier.fromEnv(silent, {
      NOTIFY_SOCKET: '/run/systemd/notify',
      WATCHDOG_USEC: '30000000',
      WATCHDOG_PID: String(process.pid + 1),
    }).watchdogMs,
    null,
    'the watchdog is meant for another process',
  );
  assert.equal(SystemdNotifier.fromEnv(silent, { NOTIFY_SOCKET: '/run/systemd/notify' }).watchdogMs, null);
  assert.equal(SystemdNotifier.fromEnv(silent, { NOTIFY_SOCKET: '@/org/freedesktop/systemd1/notify' }).enabled, false);
});

test('a notify socket that does not exist is reported, throttled, and never throws', async () => {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'warn' }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
  const notifier = SystemdNotifier.fromEnv(log, { NOTIFY_SOCKET: '/nonexistent/notify.sock' });
  notifier.ready();
  notifier.ready();
  notifier.stopping();
  notifier.close();
  assert.deepEqual(
    lines.map((l) => [l.msg, l.message]),
    [
      ['systemd notification not sent', 'READY'],
      ['systemd notification not sent', 'STOPPING'],
    ],
  );
});
