import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';
import { Daemon, testConfig } from '../support/daemon.js';
import { useSharedKafka } from '../support/shared-kafka.js';
import { waitFor } from '../support/poll.js';

/**
 * Plays systemd's side of sd_notify(3): a unix datagram socket the daemon
 * finds in NOTIFY_SOCKET. Node's core cannot bind one, so the test uses the
 * same unix-dgram addon the daemon sends with.
 */
interface Received {
  readonly at: number;
  readonly fields: Record<string, string>;
}
function notifySocket(path: string): { messages: Received[]; close: () => void } {
  const dgram = createRequire(import.meta.url)('unix-dgram') as {
    createSocket(
      type: 'unix_dgram',
      onMessage: (buf: Buffer) => void,
    ): { bind(path: string): void; close(): void; on(e: 'error', f: (err: Error) => void): void };
  };
  const messages: Received[] = [];
  const socket = dgram.createSocket('unix_dgram', (buf) => {
    const fields: Record<string, string> = {};
    for (const line of buf.toString().split('\n')) {
      const i = line.indexOf('=');
      if (i > 0) fields[line.slice(0, i)] = line.slice(i + 1);
    }
    messages.push({ at: Date.now(), fields });
  });
  socket.on('error', (err) => {
    throw err;
  });
  socket.bind(path);
  return { messages, close: () => socket.close() };
}

const kafka = useSharedKafka();

test(
  'systemd notify: READY=1 after the listener is up, WATCHDOG=1 at half the interval, RELOADING/READY around a reload, STOPPING=1 on SIGTERM',
  { timeout: 120_000 },
  async (t) => {
    const dir = Daemon.tempDir();
    const systemd = notifySocket(join(dir, 'notify.sock'));
    t.after(() => systemd.close());
    const daemon = new Daemon(dir, testConfig(kafka.brokers));
    t.after(() => daemon.stop('SIGKILL').catch(() => undefined));
    const watchdogUsec = 3_000_000;
    const url = await daemon.start(30_000, {
      NOTIFY_SOCKET: join(dir, 'notify.sock'),
      WATCHDOG_USEC: String(watchdogUsec),
    });

    const ready = await waitFor('READY=1', () => systemd.messages.find((m) => m.fields.READY === '1'));
    assert.equal(ready.fields.STATUS, `ingest ${url}`, 'READY carries the listening address: it was sent after listen');
    const readyIndex = systemd.messages.indexOf(ready);
    assert.ok(daemon.lines.some((l) => l.msg === 'edgehaul running'));

    // pings every WATCHDOG_USEC/2 = 1.5 s; every gap below WatchdogSec, so systemd never fires
    const from = systemd.messages.length;
    await waitFor(
      '4 watchdog pings',
      () => systemd.messages.slice(from).filter((m) => m.fields.WATCHDOG === '1').length >= 4,
      30_000,
    );
    const pings = systemd.messages.slice(from).filter((m) => m.fields.WATCHDOG === '1');
    const gaps = pings.slice(1).map((p, i) => p.at - pings[i]!.at);
    for (const gap of gaps) assert.ok(gap < watchdogUsec / 1000, `ping gap ${gap} ms`);
    // not a flood either: 4 pings took at least two intervals
    assert.ok(pings.at(-1)!.at - pings[0]!.at >= watchdogUsec / 1000, 'pings are spaced by the interval');

    // reload: RELOADING=1 (with MONOTONIC_USEC for notify-reload) then READY=1
    const beforeReload = systemd.messages.length;
    daemon.kill('SIGHUP');
    await waitFor('READY=1 after RELOADING=1', () => {
      const after = systemd.messages.slice(beforeReload);
      const reloading = after.findIndex((m) => m.fields.RELOADING === '1');
      return reloading >= 0 && after.slice(reloading + 1).some((m) => m.fields.READY === '1');
    });
    const reloading = systemd.messages.slice(beforeReload).find((m) => m.fields.RELOADING === '1')!;
    assert.match(reloading.fields.MONOTONIC_USEC ?? '', /^\d+$/);
    assert.ok(readyIndex < beforeReload);

    const stopFrom = systemd.messages.length;
    const exit = await daemon.stop('SIGTERM');
    assert.equal(exit.code, 0, daemon.describe());
    assert.ok(
      systemd.messages.slice(stopFrom).some((m) => m.fields.STOPPING === '1'),
      'STOPPING=1 on SIGTERM',
    );
  },
);

test(
  'systemd watchdog: a hung daemon stops pinging within WatchdogSec, so systemd would restart it',
  { timeout: 120_000 },
  async (t) => {
    const dir = Daemon.tempDir();
    const systemd = notifySocket(join(dir, 'notify.sock'));
    t.after(() => systemd.close());
    const daemon = new Daemon(dir, testConfig(kafka.brokers));
    t.after(() => daemon.stop('SIGKILL').catch(() => undefined));
    const watchdogMs = 1000;
    await daemon.start(30_000, { NOTIFY_SOCKET: join(dir, 'notify.sock'), WATCHDOG_USEC: String(watchdogMs * 1000) });
    await waitFor(
      'watchdog pings',
      () => systemd.messages.filter((m) => m.fields.WATCHDOG === '1').length >= 3,
      20_000,
    );

    // the hang: the process stops running (as a stuck event loop would), so nothing pings
    daemon.kill('SIGSTOP');
    const hungAt = Date.now();
    const pingCount = (): number => systemd.messages.filter((m) => m.fields.WATCHDOG === '1').length;
    // a ping already on its way when the process stopped arrives within this
    await waitFor('one WatchdogSec after the hang', () => Date.now() - hungAt > watchdogMs, 10_000, 100);
    const countAfterHang = pingCount();
    // systemd's rule: no ping for WatchdogSec means kill and restart; wait twice that
    await waitFor('two more WatchdogSec', () => Date.now() - hungAt > 3 * watchdogMs, 10_000, 100);
    assert.equal(pingCount(), countAfterHang, 'no ping while hung');
    const lastPing = systemd.messages.filter((m) => m.fields.WATCHDOG === '1').at(-1)!;
    assert.ok(
      Date.now() - lastPing.at > watchdogMs,
      'silent for longer than WatchdogSec: systemd would kill and restart it',
    );

    // resumed, it pings again (and stops cleanly)
    const resumedFrom = systemd.messages.length;
    daemon.kill('SIGCONT');
    await waitFor(
      'pings after SIGCONT',
      () => systemd.messages.slice(resumedFrom).some((m) => m.fields.WATCHDOG === '1'),
      10_000,
    );
    assert.equal((await daemon.stop('SIGTERM')).code, 0, daemon.describe());
  },
);

test('without NOTIFY_SOCKET nothing is sent and nothing is logged about systemd', { timeout: 60_000 }, async (t) => {
  const daemon = new Daemon(Daemon.tempDir(), testConfig(kafka.brokers));
  t.after(() => daemon.stop('SIGKILL').catch(() => undefined));
  await daemon.start();
  assert.equal((await daemon.stop('SIGTERM')).code, 0);
  assert.ok(!daemon.lines.some((l) => /systemd|notify/i.test(l.msg)), daemon.describe());
});
