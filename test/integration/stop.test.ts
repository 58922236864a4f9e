import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { assertDelivered } from '../support/assertions.js';
import { allAckedSeen } from '../support/consume.js';
import { Daemon, testConfig } from '../support/daemon.js';
import { consumeUntil, sharedKafka } from '../support/kafka.js';
import { startLoadDevice } from '../support/load.js';
import { waitFor } from '../support/poll.js';
import { freePort } from '../support/ports.js';

let kafka: Awaited<ReturnType<typeof sharedKafka>>;
before(async () => {
  kafka = await sharedKafka();
});
after(async () => {
  await kafka.stop();
});

const DEVICES = 8;
const STOPS = 3;

test(`SIGTERM under QoS 1 load from ${DEVICES} devices, ${STOPS} times: the PUBACKs the devices receive are exactly the publishes the daemon counted as acknowledged, and all of them reach Kafka`, { timeout: 240_000 }, async (t) => {
  const topic = `it.stop.${Date.now()}`;
  const dir = Daemon.tempDir();
  const port = await freePort();
  const config = testConfig(kafka.brokers, {
    ingest: { mode: 'embedded', embedded: { host: '127.0.0.1', port } },
    routes: [{ name: 'r', match: 'devices/+device/#', topic, key: '{device}' }],
  });
  let daemon = new Daemon(dir, config);
  t.after(() => daemon.stop('SIGKILL').catch(() => undefined));
  const url = await daemon.start();

  let stopped = false;
  // devices that reconnect and go on after each restart: what was in flight at the stop is simply not acknowledged
  const devices = Array.from({ length: DEVICES }, (_, i) => startLoadDevice(url, `st${i}`, () => stopped, { window: 20, payloadBytes: 100 }));
  const received = (): number => devices.reduce((n, d) => n + d.acked.length, 0);
  const rounds: string[] = [];
  try {
    let daemonAcked = 0;
    for (let stop = 1; stop <= STOPS; stop++) {
      const base = received();
      await waitFor(`acknowledgements before stop ${stop}`, () => received() >= base + 3000, 60_000);
      assert.equal((await daemon.stop('SIGTERM')).code, 0, daemon.describe());
      // the daemon is gone: no PUBACK can arrive any more, so the devices' count is final for this round
      const counted = daemon.lastStats().acked_messages_total!;
      daemonAcked += counted;
      rounds.push(`stop ${stop}: daemon ${counted}, devices ${received() - base}`);
      assert.equal(received(), daemonAcked, `PUBACKs received by the devices = acknowledged by the daemon (${rounds.join('; ')})`);
      if (stop < STOPS) {
        daemon = new Daemon(dir, config);
        await daemon.start();
      }
    }
  } finally {
    stopped = true;
  }
  const runs = await Promise.all(devices.map((d) => d.finished));
  daemon = new Daemon(dir, config);
  await daemon.start();
  const records = await consumeUntil(kafka.brokers, topic, allAckedSeen(runs), 90_000);
  const check = assertDelivered(records, runs, { exactlyOnce: false, gatewayId: 'gw-test' });
  assert.equal((await daemon.stop('SIGTERM')).code, 0);
  t.diagnostic(`${rounds.join('; ')}; ${check.delivered} events read, ${check.duplicates} duplicates by sequence number`);
});
