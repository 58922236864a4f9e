import assert from 'node:assert/strict';
import { test } from 'node:test';
import mqtt from 'mqtt';
import { assertDelivered } from '../support/assertions.js';
import { Daemon, testConfig } from '../support/daemon.js';
import { runDevice } from '../support/devices.js';
import { consumeUntil, eventCount } from '../support/kafka.js';
import { useSharedKafka } from '../support/shared-kafka.js';
import { waitFor } from '../support/poll.js';

const kafka = useSharedKafka();

test(
  'embedded broker: every acknowledged QoS 1 event from several devices reaches Kafka once, in per-device order',
  { timeout: 180_000 },
  async (t) => {
    const topic = `it.embedded.${Date.now()}`;
    const daemon = new Daemon(
      Daemon.tempDir(),
      testConfig(kafka.brokers, {
        ingest: { mode: 'embedded', embedded: { host: '127.0.0.1', port: 0 }, max_payload_bytes: 4096 },
        routes: [{ name: 'telemetry', match: 'devices/+device/#', topic, key: '{device}' }],
      }),
    );
    t.after(() => daemon.stop('SIGKILL').catch(() => undefined));
    const url = await daemon.start();

    const devices = Array.from({ length: 6 }, (_, i) => `dev-${i}`);
    const runs = await Promise.all(devices.map((d) => runDevice(url, d, 500, { window: 50 })));
    assert.equal(
      runs.reduce((n, r) => n + r.acked.length, 0),
      3000,
    );

    // bad input: a non-UTF-8 payload on a routed topic is carried as bytes;
    // an oversize payload and an unrouted topic are acknowledged, dropped and counted
    const probe = await mqtt.connectAsync(url, { clientId: 'probe', reconnectPeriod: 0 });
    await probe.publishAsync('devices/probe/raw', Buffer.from([0xff, 0xfe, 0x00, 0x80]), { qos: 1 });
    await probe.publishAsync('devices/probe/big', Buffer.alloc(5000, 0x41), { qos: 1 });
    await probe.publishAsync('elsewhere/x', 'nobody routes this', { qos: 1 });
    await probe.endAsync();

    const records = await consumeUntil(kafka.brokers, topic, (rs) => eventCount(rs) >= 3001);
    const deviceRecords = records.filter((r) => r.batch.key !== 'probe');
    const check = assertDelivered(deviceRecords, runs, { exactlyOnce: true, gatewayId: 'gw-test' });
    assert.equal(check.delivered, 3000);
    const probeEvents = records.filter((r) => r.batch.key === 'probe').flatMap((r) => r.batch.events);
    assert.deepEqual(
      probeEvents.map((e) => [e.topic, e.payload.toString('hex')]),
      [['devices/probe/raw', 'fffe0080']],
    );

    assert.ok(daemon.running, 'bad input did not stop the daemon');
    const exit = await daemon.stop('SIGTERM');
    assert.equal(exit.code, 0, daemon.describe());
    const stats = daemon.lastStats();
    assert.equal(stats.dropped_oversize_total, 1);
    assert.equal(stats.dropped_unrouted_total, 1);
    assert.equal(stats.committed_events_total, 3001);
    assert.equal(stats.sent_events_total, 3001);
    assert.ok(
      daemon.lines.some((l) => l.code === 'EH_ERR_INGEST_OVERSIZE'),
      'oversize logged',
    );
    assert.ok(
      daemon.lines.some((l) => l.code === 'EH_ERR_INGEST_UNROUTED'),
      'unrouted logged',
    );
  },
);

test('a broken config file is rejected at start with exit code 78 and names the key', { timeout: 30_000 }, async () => {
  const daemon = new Daemon(Daemon.tempDir(), { kafka: { brokers: ['127.0.0.1:1'], compresion: 'gzip' } });
  await assert.rejects(daemon.start(), /daemon exited during start/);
  const exit = await daemon.stop();
  assert.equal(exit.code, 78);
  assert.ok(
    daemon.lines.some((l) => l.level === 'fatal' && /unknown key "compresion"/.test(l.msg)),
    daemon.describe(),
  );
});

test(
  'an MQTT port already in use is a clear start error, not a crash loop of stack traces',
  { timeout: 30_000 },
  async () => {
    const first = new Daemon(Daemon.tempDir(), testConfig(kafka.brokers));
    const url = await first.start();
    try {
      const port = Number(new URL(url).port);
      const second = new Daemon(
        Daemon.tempDir(),
        testConfig(kafka.brokers, { ingest: { embedded: { host: '127.0.0.1', port } } }),
      );
      await assert.rejects(second.start(), /daemon exited during start/);
      assert.equal((await second.stop()).code, 1);
      assert.ok(
        second.lines.some((l) => l.code === 'EH_ERR_INGEST_LISTEN' && /EADDRINUSE/.test(String(l.err))),
        second.describe(),
      );
    } finally {
      await first.stop();
    }
  },
);

test(
  'Kafka unreachable: the daemon keeps accepting, buffers, and reports the upstream error without exiting',
  { timeout: 60_000 },
  async (t) => {
    const daemon = new Daemon(
      Daemon.tempDir(),
      testConfig(['127.0.0.1:1'], {
        routes: [{ name: 'r', match: 'devices/+device/#', topic: 'never', key: '{device}' }],
      }),
    );
    t.after(() => daemon.stop('SIGKILL').catch(() => undefined));
    const url = await daemon.start();
    const run = await runDevice(url, 'dev-x', 100);
    assert.equal(run.acked.length, 100);
    await waitFor(
      'a send error to be logged',
      () => daemon.lines.some((l) => l.code === 'EH_ERR_UPSTREAM_SEND'),
      20_000,
    );
    assert.ok(daemon.running);
    const exit = await daemon.stop('SIGTERM');
    assert.equal(exit.code, 0, daemon.describe());
    const stopped = daemon.lines.find((l) => l.msg === 'stopped');
    assert.equal(stopped?.buffered_events, 100);
  },
);
