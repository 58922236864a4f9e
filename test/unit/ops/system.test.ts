import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { defaultRouteInterface, readNetworkCounters } from '../../../src/ops/system.js';

const HEADER = 'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT';

test('defaultRouteInterface: the up default route with the lowest metric; null without one', () => {
  const table = [
    HEADER,
    'wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0',
    'eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0',
    'eth0\t000200C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0',
    // a default route that is not up
    'usb0\t00000000\t0100000A\t0002\t0\t0\t0\t00000000\t0\t0\t0',
  ].join('\n');
  assert.equal(defaultRouteInterface(table), 'eth0');
  assert.equal(
    defaultRouteInterface([HEADER, 'eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0'].join('\n')),
    null,
  );
  assert.equal(defaultRouteInterface(`${HEADER}\n`), null);
});

test('readNetworkCounters reads /proc/net/route and /sys/class/net without netlink; null when unknown', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'edgehaul-net-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  assert.equal(await readNetworkCounters(root), null, 'no /proc/net/route: unknown');
  mkdirSync(join(root, 'proc/net'), { recursive: true });
  writeFileSync(
    join(root, 'proc/net/route'),
    `${HEADER}\neth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n`,
  );
  assert.equal(await readNetworkCounters(root), null, 'no counters for the interface: unknown');
  mkdirSync(join(root, 'sys/class/net/eth0/statistics'), { recursive: true });
  writeFileSync(join(root, 'sys/class/net/eth0/statistics/rx_bytes'), '123456789012\n');
  writeFileSync(join(root, 'sys/class/net/eth0/statistics/tx_bytes'), '42\n');
  assert.deepEqual(await readNetworkCounters(root), { iface: 'eth0', rx_bytes: 123456789012, tx_bytes: 42 });

  // this machine: whatever its default route is, the figures agree with the kernel's files
  const live = await readNetworkCounters();
  const iface = existsSync('/proc/net/route') ? defaultRouteInterface(readFileSync('/proc/net/route', 'utf8')) : null;
  if (iface === null) assert.equal(live, null);
  else assert.equal(live?.iface, iface);
});
