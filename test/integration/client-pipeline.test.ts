/**
 * Client mode with pipelined acknowledgements: many messages of one
 * connection wait for their commit together, each PUBACK goes to the upstream
 * broker after its own commit and in arrival order. The first two tests pin
 * the mqtt.js behaviour this relies on (mqtt 5.16: an error passed to
 * handleMessage's callback skips its PUBACK and the next packet is handled);
 * the last ones SIGKILL the daemon under load against aedes and Mosquitto.
 */
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import type { InboundMessage, SettleCallback } from '../../src/core/event.js';
import { createClientIngest } from '../../src/ingest/client.js';
import { createLogger } from '../../src/core/log.js';
import { startUpstreamBroker } from '../support/broker.js';
import { Daemon, testConfig } from '../support/daemon.js';
import { runDevice, type DeviceRun } from '../support/devices.js';
import { type ConsumedRecord, consumeUntil } from '../support/kafka.js';
import { useSharedKafka } from '../support/shared-kafka.js';
import { MOSQUITTO_BIN, RECOMMENDED, startMosquitto } from '../support/mosquitto.js';
import { waitFor } from '../support/poll.js';

const silent = createLogger('silent');

async function inProcessBroker(t: {
  after(fn: () => Promise<void> | void): void;
}): Promise<{ url: string; broker: Aedes }> {
  const broker = await Aedes.createBroker({ maxClientsIdLength: 256 });
  const server = createServer(broker.handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(async () => {
    server.close();
    await new Promise<void>((r) => broker.close(() => r()));
  });
  return { url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`, broker };
}

interface Held {
  readonly message: InboundMessage;
  readonly settle: SettleCallback;
}

function holdingIngest(
  url: string,
  maxInFlight: number,
): { held: Held[]; unsettled: () => number; ingest: ReturnType<typeof createClientIngest> } {
  const held: Held[] = [];
  let open = 0;
  const ingest = createClientIngest(
    {
      url,
      clientId: 'edgehaul-pipe',
      connections: [['pipe/#']],
      qos: 1,
      maxInFlight,
      keepaliveSecs: 30,
      reconnectMs: 100,
    },
    (message, settle) => {
      open++;
      assert.ok(open <= maxInFlight, `${open} messages in flight, more than max_in_flight ${maxInFlight}`);
      held.push({
        message,
        settle: (err) => {
          open--;
          settle(err);
        },
      });
    },
    silent,
  );
  return { held, unsettled: () => open, ingest };
}

async function publishAll(url: string, count: number): Promise<void> {
  const device = await mqtt.connectAsync(url, { clientId: 'pipe-device', clean: true, reconnectPeriod: 0 });
  try {
    await Promise.all(Array.from({ length: count }, (_, n) => device.publishAsync('pipe/d', String(n), { qos: 1 })));
  } finally {
    await device.endAsync();
  }
}

test(
  'mqtt.js hands a connection its messages before their PUBACKs; each PUBACK waits for its own commit, in arrival order',
  { timeout: 30_000 },
  async (t) => {
    const { url, broker } = await inProcessBroker(t);
    const acked: number[] = [];
    broker.on('ack', (packet, client) => {
      if (client?.id === 'edgehaul-pipe' && packet !== undefined && 'payload' in packet)
        acked.push(Number(String(packet.payload)));
    });
    const subscribed = new Promise<void>((resolve) => broker.once('subscribe', () => resolve()));
    const { held, ingest } = holdingIngest(url, 30);
    await ingest.start();
    t.after(() => ingest.close());
    // a message published before the subscription lands would not be ours
    await subscribed;
    await publishAll(url, 50);

    // 30 (the window) handed over while none is committed: pipelined, not one at a time
    await waitFor('30 messages in flight at once', () => held.length === 30);
    assert.deepEqual(
      held.map((h) => Number(String(h.message.payload))),
      Array.from({ length: 30 }, (_, n) => n),
    );
    assert.deepEqual(acked, []);

    // commits finishing out of order: 10..19 first, then 0..9; PUBACKs still leave in arrival order
    for (const h of held.slice(10, 20)) h.settle(null);
    for (const h of held.slice(0, 10)) h.settle(null);
    await waitFor('20 PUBACKs', () => acked.length === 20);
    assert.deepEqual(
      acked,
      Array.from({ length: 20 }, (_, n) => n),
    );

    // room in the window: the rest comes in; commit all
    await waitFor('all 50 handed over', () => held.length === 50);
    for (const h of held.slice(20)) h.settle(null);
    await waitFor('50 PUBACKs', () => acked.length === 50);
    assert.deepEqual(
      acked,
      Array.from({ length: 50 }, (_, n) => n),
    );
  },
);

test(
  'a failed commit sends no PUBACK: the connection is dropped and the broker delivers the message again',
  { timeout: 30_000 },
  async (t) => {
    const { url, broker } = await inProcessBroker(t);
    const acked: number[] = [];
    broker.on('ack', (packet, client) => {
      if (client?.id === 'edgehaul-pipe' && packet !== undefined && 'payload' in packet)
        acked.push(Number(String(packet.payload)));
    });
    const subscribed = new Promise<void>((resolve) => broker.once('subscribe', () => resolve()));
    const { held, ingest } = holdingIngest(url, 10);
    await ingest.start();
    t.after(() => ingest.close());
    // a message published before the subscription lands would not be ours
    await subscribed;
    await publishAll(url, 5);
    await waitFor('5 messages in flight', () => held.length === 5);
    held[0]!.settle(new Error('disk full'));
    for (const h of held.slice(1, 5)) h.settle(null); // committed, but behind a failed one: not acknowledged either
    await waitFor('the 5 delivered again on a new connection', () => held.length === 10);
    assert.deepEqual(
      held.slice(5).map((h) => Number(String(h.message.payload))),
      [0, 1, 2, 3, 4],
    );
    assert.deepEqual(acked, []);
    for (const h of held.slice(5)) h.settle(null);
    await waitFor('5 PUBACKs', () => acked.length === 5);
    assert.deepEqual(acked, [0, 1, 2, 3, 4]);
  },
);

const kafka = useSharedKafka();

/**
 * Everything the upstream broker took from the devices reaches Kafka, and a
 * device's first deliveries are in publish order. Duplicates are allowed: a
 * message committed but whose PUBACK the kill cut off is delivered again.
 */
function assertAllInOrder(
  records: readonly ConsumedRecord[],
  runs: readonly DeviceRun[],
): { resent: number; redelivered: number } {
  const firstSeen = new Map<string, number[]>();
  const seen = new Set<string>();
  const seqs = new Set<number>();
  let resent = 0;
  let redelivered = 0;
  const ordered = [...records].sort((a, b) => a.partition - b.partition || Number(BigInt(a.offset) - BigInt(b.offset)));
  for (const r of ordered) {
    for (const e of r.batch.events) {
      const msg = JSON.parse(e.payload.toString()) as { device: string; n: number };
      const id = `${msg.device}/${msg.n}`;
      if (seen.has(id)) {
        // the same seq: sent to Kafka again from the buffer; a new one: the upstream broker delivered it again
        if (seqs.has(e.seq)) resent++;
        else redelivered++;
        continue;
      }
      seqs.add(e.seq);
      seen.add(id);
      let list = firstSeen.get(msg.device);
      if (list === undefined) firstSeen.set(msg.device, (list = []));
      list.push(msg.n);
    }
  }
  for (const run of runs) {
    const got = firstSeen.get(run.device) ?? [];
    const missing = run.acked.filter((n) => !seen.has(`${run.device}/${n}`));
    assert.deepEqual(
      missing.slice(0, 10),
      [],
      `${run.device}: ${missing.length} messages the upstream broker acknowledged are missing`,
    );
    for (let i = 1; i < got.length; i++)
      assert.ok(got[i]! > got[i - 1]!, `${run.device}: out of order at ${i}: ${got[i - 1]} then ${got[i]}`);
  }
  return { resent, redelivered };
}

async function committedEvents(daemon: Daemon): Promise<number> {
  const text = await (await fetch(`${daemon.httpUrl}/metrics`)).text();
  return Number(/^edgehaul_committed_events_total (\S+)$/m.exec(text)?.[1] ?? 0);
}

const upstreams: Array<{ name: string; start: (dir: string) => Promise<{ url: string; stop: () => Promise<void> }> }> =
  [
    { name: 'aedes', start: async () => startUpstreamBroker() },
    ...(MOSQUITTO_BIN !== null
      ? [
          {
            name: 'mosquitto (README settings)',
            start: (dir: string) => startMosquitto(join(dir, 'mosquitto'), RECOMMENDED),
          },
        ]
      : []),
  ];
test('Mosquitto is installed for these tests (.ci/run installs it)', () => {
  assert.notEqual(MOSQUITTO_BIN, null);
});

for (const upstream of upstreams) {
  test(
    `client mode against ${upstream.name}: SIGKILLs under load lose nothing the upstream broker acknowledged, per-device order holds`,
    { timeout: 240_000 },
    async (t) => {
      const dir = Daemon.tempDir();
      const broker = await upstream.start(dir);
      t.after(() => broker.stop());
      const topic = `it.client.pipe.${upstream.name.split(' ')[0]}.${Date.now()}`;
      const daemon = new Daemon(
        dir,
        testConfig(kafka.brokers, {
          ingest: {
            mode: 'client',
            client: { url: broker.url, client_id: 'edgehaul-pipe-kill', max_in_flight: 200, reconnect_ms: 200 },
          },
          routes: [{ name: 'telemetry', match: 'devices/+device/#', topic, key: '{device}' }],
        }),
      );
      t.after(() => daemon.stop('SIGKILL').catch(() => undefined));
      await daemon.start();
      await waitFor('the subscription', () => daemon.lines.some((l) => l.msg === 'subscribed'), 10_000);

      const devices = ['dev-a', 'dev-b', 'dev-c', 'dev-d'];
      const publishing = Promise.all(devices.map((d) => runDevice(broker.url, d, 2500, { window: 50 })));
      let published = false;
      void publishing.then(
        () => (published = true),
        () => undefined,
      );
      for (let kill = 0; kill < 2; kill++) {
        // mid-stream: commits running, PUBACKs in flight; once the devices are done (a fast machine, or the
        // upstream broker had little left for a restarted daemon) the kill comes at once, wherever that is
        await waitFor(
          'commits under load',
          async () => published || (await committedEvents(daemon)) >= 1000,
          60_000,
          20,
        );
        await daemon.stop('SIGKILL');
        await daemon.start();
      }
      const runs = await publishing;
      const expected = runs.reduce((n, r) => n + r.acked.length, 0);
      assert.equal(expected, devices.length * 2500, 'the upstream broker acknowledged every publish');
      const records = await consumeUntil(
        kafka.brokers,
        topic,
        (rs) => {
          const ids = new Set<string>();
          for (const r of rs) for (const e of r.batch.events) ids.add(e.payload.toString());
          return ids.size >= expected;
        },
        120_000,
      );
      const { resent, redelivered } = assertAllInOrder(records, runs);
      t.diagnostic(
        `${expected} messages; after the kills ${resent} sent to Kafka again from the buffer, ${redelivered} delivered again by the upstream broker`,
      );
      assert.equal((await daemon.stop('SIGTERM')).code, 0, daemon.describe());
    },
  );
}
