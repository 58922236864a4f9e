import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { assertDelivered } from '../support/assertions.js';
import { Daemon, testConfig } from '../support/daemon.js';
import { runDevice } from '../support/devices.js';
import { consumeUntil, eventCount } from '../support/kafka.js';
import { useSharedKafka } from '../support/shared-kafka.js';
import { waitFor } from '../support/poll.js';

const kafka = useSharedKafka();

function writeBytes(pid: number): number {
  const line = readFileSync(`/proc/${pid}/io`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('write_bytes:'));
  return Number(line?.split(':')[1] ?? NaN);
}

test(
  'durability memory with a healthy uplink: everything arrives and next to nothing is written to disk',
  { timeout: 120_000 },
  async (t) => {
    const topic = `it.memory.${Date.now()}`;
    const daemon = new Daemon(
      Daemon.tempDir(),
      testConfig(kafka.brokers, {
        routes: [{ name: 'telemetry', match: 'devices/+device/#', topic, key: '{device}', durability: 'memory' }],
        kafka: { brokers: kafka.brokers, linger_ms: 5 },
      }),
    );
    t.after(() => daemon.stop('SIGKILL').catch(() => undefined));
    const url = await daemon.start();
    // the producer's first connection settles before measuring
    await waitFor('kafka connected', () => daemon.lines.some((l) => l.msg === 'kafka connected'), 20_000);
    const before = writeBytes(daemon.pid!);
    const runs = await Promise.all(['m1', 'm2', 'm3'].map((d) => runDevice(url, d, 1000, { window: 20 })));
    const records = await consumeUntil(kafka.brokers, topic, (rs) => eventCount(rs) >= 3000);
    const written = writeBytes(daemon.pid!) - before;
    assertDelivered(records, runs, { exactlyOnce: true, gatewayId: 'gw-test' });
    const payloadBytes =
      runs.reduce((n, r) => n + r.acked.length, 0) * JSON.stringify({ device: 'm1', n: 500, temp: 20.5 }).length;
    t.diagnostic(`disk writes ${written} B for ${payloadBytes} B of payload (${(written / payloadBytes).toFixed(3)}x)`);
    assert.ok(written < 0.2 * payloadBytes, `${written} B written for ${payloadBytes} B of payload`);
    assert.equal((await daemon.stop('SIGTERM')).code, 0);
  },
);

test(
  'durability memory with Kafka down: events spill to disk, survive a clean restart and arrive',
  { timeout: 120_000 },
  async (t) => {
    const topic = `it.memory.spill.${Date.now()}`;
    const dir = Daemon.tempDir();
    const routes = [{ name: 'telemetry', match: 'devices/+device/#', topic, key: '{device}', durability: 'memory' }];
    const down = new Daemon(
      dir,
      testConfig(['127.0.0.1:1'], {
        routes,
        buffer: { path: 'buffer.db', memory: { spill_after_ms: 200 } },
        log: { level: 'info', stats_interval_secs: 1 },
      }),
    );
    t.after(() => down.stop('SIGKILL').catch(() => undefined));
    const url = await down.start();
    const run = await runDevice(url, 'm9', 500);
    await waitFor(
      'a spill',
      () => {
        const s = [...down.lines].reverse().find((l) => l.msg === 'stats')?.stats as
          { spilled_events_total?: number } | undefined;
        return (s?.spilled_events_total ?? 0) >= 500;
      },
      20_000,
    );
    assert.equal((await down.stop('SIGTERM')).code, 0);
    assert.equal(down.lines.find((l) => l.msg === 'stopped')?.buffered_events, 500);

    const up = new Daemon(dir, testConfig(kafka.brokers, { routes }));
    t.after(() => up.stop('SIGKILL').catch(() => undefined));
    await up.start();
    const records = await consumeUntil(kafka.brokers, topic, (rs) => eventCount(rs) >= 500);
    assertDelivered(records, [run], { exactlyOnce: true, gatewayId: 'gw-test' });
    assert.equal((await up.stop('SIGTERM')).code, 0);
  },
);
