import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertDelivered } from '../support/assertions.js';
import { Daemon, testConfig } from '../support/daemon.js';
import { runDevice } from '../support/devices.js';
import { consumeUntil, eventCount, startKafka } from '../support/kafka.js';

test(
  'stopped while Kafka is down and started again before Kafka returns: everything acknowledged arrives',
  { timeout: 240_000 },
  async (t) => {
    const kafka = await startKafka();
    t.after(() => kafka.stop());
    const topic = `it.restart.${Date.now()}`;
    const dir = Daemon.tempDir();
    const config = testConfig(kafka.brokers, {
      routes: [{ name: 'r', match: 'devices/+device/#', topic, key: '{device}' }],
    });

    let daemon = new Daemon(dir, config);
    let url = await daemon.start();
    const before = await runDevice(url, 'dev-1', 200);
    await consumeUntil(kafka.brokers, topic, (rs) => eventCount(rs) >= 200);

    await kafka.stop();
    const during = await Promise.all(
      ['dev-1', 'dev-2'].map((d, i) => runDevice(url, d, 300, { topic: (x) => `devices/${x}/outage${i}` })),
    );
    assert.equal((await daemon.stop('SIGTERM')).code, 0, daemon.describe());
    assert.equal(
      daemon.lines.find((l) => l.msg === 'stopped')?.buffered_events,
      600,
      'the outage backlog stays buffered over the restart',
    );

    daemon = new Daemon(dir, config);
    t.after(() => daemon.stop('SIGKILL').catch(() => undefined));
    url = await daemon.start();
    assert.equal(daemon.lines.find((l) => l.msg === 'buffer open')?.buffered_events, 600);
    await kafka.start();

    const records = await consumeUntil(kafka.brokers, topic, (rs) => eventCount(rs) >= 800, 90_000);
    const dev1 = { device: 'dev-1', acked: [...before.acked, ...during[0]!.acked.map((n) => n + 200)] };
    // dev-1's outage messages restart at n=0; shift them so one device has one increasing stream
    const shifted = records.map((r) => ({
      ...r,
      batch: {
        ...r.batch,
        events: r.batch.events.map((e) =>
          e.topic.endsWith('/outage0')
            ? {
                ...e,
                payload: Buffer.from(
                  JSON.stringify({
                    ...(JSON.parse(e.payload.toString()) as object),
                    n: (JSON.parse(e.payload.toString()) as { n: number }).n + 200,
                  }),
                ),
              }
            : e,
        ),
      },
    }));
    const check = assertDelivered(shifted, [dev1, during[1]!], { exactlyOnce: false, gatewayId: 'gw-test' });
    assert.ok(check.delivered - check.duplicates === 800, `${check.delivered - check.duplicates} distinct events`);
    assert.equal((await daemon.stop('SIGTERM')).code, 0);
  },
);
