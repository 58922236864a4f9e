import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { closeSync, existsSync, fsyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { openSqliteStore } from '../../src/buffer/store.js';
import { blockDeviceOfPath, deviceWrittenBytes, processWriteBytes, splitDev } from '../../src/core/blockdev.js';
import type { StatusReport } from '../../src/ops/status.js';
import { Daemon, testConfig } from '../support/daemon.js';
import { ROOT } from '../support/kafka.js';
import { parsePrometheus } from '../support/prometheus.js';

const run = promisify(execFile);

/** Writes `bytes` to a new file in `dir` and fsyncs it: they reach the device now, not at writeback. */
function writeSynced(dir: string, bytes: number): void {
  const fd = openSync(join(dir, 'blob'), 'w');
  try {
    const chunk = Buffer.alloc(1 << 20, 0x5a);
    for (let n = 0; n < bytes; n += chunk.length) writeSync(fd, chunk);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

test("this machine's temp dir: its block device is found and counts our writes (or it has none, and says why)", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgehaul-flash-'));
  try {
    const found = await blockDeviceOfPath(dir);
    const { statSync } = await import('node:fs');
    const { major, minor } = splitDev(statSync(dir, { bigint: true }).dev);
    process.stdout.write(
      `# temp dir ${dir} is on device ${major}:${minor}: ${found.device === null ? `no block device (${found.reason})` : `${found.device.disk}${found.device.partition !== null ? ` partition ${found.device.partition}` : ''}, ${found.device.statPath}`}\n`,
    );
    if (major === 0) {
      // tmpfs or overlay: the device is unknown, which is an answer
      assert.equal(found.device, null);
      assert.match(found.reason, /not a block device/);
      return;
    }
    assert.ok(found.device !== null, found.reason);
    assert.equal(found.device.majMin, `${major}:${minor}`);
    const dev0 = await deviceWrittenBytes(found.device);
    const own0 = processWriteBytes();
    assert.ok(dev0 !== null && dev0 > 0, 'the device has taken writes since boot');
    assert.ok(own0 !== null, '/proc/self/io is readable on Linux');
    writeSynced(dir, 8 << 20);
    const dev1 = await deviceWrittenBytes(found.device);
    const own1 = processWriteBytes()!;
    assert.ok(own1 - own0 >= 8 << 20, `write_bytes grew by ${own1 - own0}`);
    // other writers on the device only add to it
    assert.ok(dev1! - dev0 >= 8 << 20, `the device took ${dev1! - dev0} bytes for our 8 MiB`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a tmpfs (when the machine has /dev/shm) has no block device: unknown, not an error', async (t) => {
  if (!existsSync('/dev/shm')) {
    // not skipped silently: the reason is in the output
    t.diagnostic('no /dev/shm on this machine: the anonymous-device case is covered by the unit tests');
    assert.equal((await blockDeviceOfPath('/nonexistent-edgehaul')).device, null);
    return;
  }
  const found = await blockDeviceOfPath('/dev/shm');
  assert.equal(found.device, null);
  assert.match(found.reason, /not a block device|no \/sys\/dev\/block/);
});

test(
  'a daemon under a write budget: PUBACKs wait for paced commits, every acknowledged message survives SIGKILL, and /status, /metrics and edgehaul status report flash figures',
  { timeout: 120_000 },
  async (t) => {
    const dir = Daemon.tempDir();
    // no Kafka: the events stay in the buffer, where they are counted after the kill
    const daemon = new Daemon(
      dir,
      testConfig(['127.0.0.1:1'], {
        buffer: { path: 'buffer.db', flash_budget_bytes_per_day: 1000, flash_budget_max_wait_ms: 300 },
        health: { flash_endurance_bytes: 32_000_000_000, flash_min_days: 1 },
        routes: [{ name: 'telemetry', match: 'devices/+device/#', topic: 'it.flash', key: '{device}' }],
      }),
    );
    t.after(async () => {
      await daemon.stop('SIGKILL').catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    });
    const url = await daemon.start();
    const client = await mqtt.connectAsync(url, { clientId: 'dev-1', clean: true, reconnectPeriod: 0 });
    const acked: number[] = [];
    const latencies: number[] = [];
    try {
      // rounds of 5 publishes at once; the budget (1 kB a day) is spent by the first commits
      let n = 0;
      for (let round = 0; round < 6; round++) {
        await Promise.all(
          Array.from({ length: 5 }, async () => {
            const i = n++;
            const t0 = performance.now();
            await client.publishAsync('devices/dev-1/telemetry', JSON.stringify({ n: i, temp: 20.5 }), { qos: 1 });
            latencies.push(performance.now() - t0);
            acked.push(i);
          }),
        );
      }
    } finally {
      client.end(true);
    }
    assert.equal(acked.length, 30);
    const slow = latencies.filter((ms) => ms >= 250).length;
    assert.ok(
      slow >= 15,
      `most PUBACKs waited for the budget's max wait (300 ms): ${latencies.map(Math.round).join(', ')}`,
    );
    assert.ok(Math.max(...latencies) < 3000, `bounded by the max wait: ${Math.max(...latencies)} ms`);

    const status = (await (await fetch(`${daemon.httpUrl}/status`)).json()) as StatusReport;
    const expected = await blockDeviceOfPath(dir);
    assert.equal(status.flash.device?.name ?? null, expected.device?.disk ?? null);
    assert.equal(status.flash.endurance_bytes, 32_000_000_000);
    assert.equal(status.flash.budget_bytes_per_day, 1000);
    assert.ok(status.flash.process_written_bytes! > 0, 'the daemon wrote its buffer');
    if (expected.device !== null) assert.ok(status.flash.device_written_bytes! > 0);
    else assert.ok(status.flash.device_unknown_reason !== null);
    assert.equal(status.flash.days_left, null, 'not before ten minutes of samples');
    assert.ok(!status.health.codes.includes('flash_wear'));

    const samples = parsePrometheus(await (await fetch(`${daemon.httpUrl}/metrics`)).text()).samples;
    const metric = (name: string): number | undefined => samples.find((s) => s.name === name)?.value;
    assert.ok(metric('edgehaul_flash_paced_commits_total')! >= 3, 'commits were held back');
    assert.ok(metric('edgehaul_flash_paced_seconds_total')! > 0.5);
    assert.equal(metric('edgehaul_flash_budget_bytes_per_day'), 1000);
    assert.equal(metric('edgehaul_flash_endurance_bytes'), 32_000_000_000);
    assert.ok(Number.isNaN(metric('edgehaul_flash_life_days_left')), 'NaN: not known yet');
    if (expected.device !== null)
      assert.ok(
        samples.some((s) => s.name === 'edgehaul_flash_device_written_bytes' && s.labels.disk === expected.device.disk),
      );

    const cli = await run(process.execPath, [join(ROOT, 'dist/src/cli/main.js'), 'status', '--url', daemon.httpUrl]);
    assert.match(
      cli.stdout,
      /^flash +edgehaul .*; (device \S+|device unknown).*; life left: not known yet; budget 1000 B\/day$/m,
    );

    // durability unchanged: everything acknowledged is in the file after a SIGKILL
    await daemon.stop('SIGKILL');
    const store = openSqliteStore(join(dir, 'buffer.db'), { synchronous: 'normal' });
    try {
      const stored = new Set(
        store
          .readNext(1e9, 1e12)
          .flatMap((c) => c.events.map((e) => (JSON.parse(e.payload.toString()) as { n: number }).n)),
      );
      assert.deepEqual(
        acked.filter((n) => !stored.has(n)),
        [],
        'acknowledged but not in the buffer',
      );
    } finally {
      store.close();
    }
  },
);
