import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertDelivered } from '../support/assertions.js';
import { startUpstreamBroker } from '../support/broker.js';
import { Daemon, testConfig } from '../support/daemon.js';
import { runDevice } from '../support/devices.js';
import { consumeUntil, eventCount } from '../support/kafka.js';
import { useSharedKafka } from '../support/shared-kafka.js';
import { waitFor } from '../support/poll.js';

const kafka = useSharedKafka();

const layouts: Array<{ name: string; client: Record<string, unknown>; subscriptions: number }> = [
  { name: 'one connection', client: {}, subscriptions: 1 },
  {
    name: 'two connections with disjoint filters',
    client: {
      connections: [
        ['devices/dev-a/#', 'devices/dev-b/#'],
        ['devices/dev-c/#', 'devices/dev-d/#'],
      ],
    },
    subscriptions: 2,
  },
];

for (const layout of layouts) {
  test(
    `client mode, ${layout.name}: events published to another broker reach Kafka once, in per-device order, including those sent while edgehaul was down`,
    { timeout: 180_000 },
    async (t) => {
      const upstream = await startUpstreamBroker();
      t.after(() => upstream.stop());
      const topic = `it.client.${layout.subscriptions}.${Date.now()}`;
      const daemon = new Daemon(
        Daemon.tempDir(),
        testConfig(kafka.brokers, {
          ingest: {
            mode: 'client',
            client: { url: upstream.url, client_id: `edgehaul-it-${layout.subscriptions}`, ...layout.client },
          },
          routes: [{ name: 'telemetry', match: 'devices/+device/#', topic, key: '{device}' }],
        }),
      );
      t.after(() => daemon.stop('SIGKILL').catch(() => undefined));
      await daemon.start();
      await waitFor(
        'subscriptions',
        () => daemon.lines.filter((l) => l.msg === 'subscribed').length === layout.subscriptions,
        10_000,
      );

      const devices = ['dev-a', 'dev-b', 'dev-c', 'dev-d'];
      const first = await Promise.all(devices.map((d) => runDevice(upstream.url, d, 300, { window: 20 })));

      // edgehaul goes away; its persistent session keeps what is published meanwhile
      assert.equal((await daemon.stop('SIGTERM')).code, 0, daemon.describe());
      const second = await Promise.all(
        devices.map((d) => runDevice(upstream.url, `${d}`, 100, { window: 20, topic: (x) => `devices/${x}/late` })),
      );
      await daemon.start();

      const runs = devices.map((d, i) => ({ device: d, acked: [...first[i]!.acked, ...second[i]!.acked] }));
      const expected = runs.reduce((n, r) => n + r.acked.length, 0);
      const records = await consumeUntil(kafka.brokers, topic, (rs) => eventCount(rs) >= expected);
      // the late messages restart at n=0, so check the two phases separately; one record may hold
      // both (what was still buffered at the restart goes out with the first late ones): check the
      // headers on the whole records, then give each phase's part headers of its own
      for (const r of records) {
        assert.equal(r.headers['edgehaul-seq-first'], String(r.batch.events[0]!.seq));
        assert.equal(r.headers['edgehaul-seq-last'], String(r.batch.events.at(-1)!.seq));
      }
      const phase = (late: boolean): typeof records =>
        records.flatMap((r) => {
          const events = r.batch.events.filter((e) => e.topic.endsWith('/late') === late);
          if (events.length === 0) return [];
          const headers = {
            ...r.headers,
            'edgehaul-seq-first': String(events[0]!.seq),
            'edgehaul-seq-last': String(events.at(-1)!.seq),
          };
          return [{ ...r, headers, batch: { ...r.batch, events } }];
        });
      const early = phase(false);
      const late = phase(true);
      const a = assertDelivered(early, first, { exactlyOnce: true, gatewayId: 'gw-test' });
      const b = assertDelivered(late, second, { exactlyOnce: true, gatewayId: 'gw-test' });
      assert.equal(a.delivered + b.delivered, expected);
      assert.equal((await daemon.stop('SIGTERM')).code, 0);
    },
  );
}
