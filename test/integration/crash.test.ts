import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { assertDelivered } from '../support/assertions.js';
import { allAckedSeen } from '../support/consume.js';
import { Daemon, testConfig } from '../support/daemon.js';
import { startStubbornDevice } from '../support/devices.js';
import { consumeUntil, eventCount, sharedKafka } from '../support/kafka.js';
import { waitFor } from '../support/poll.js';
import { freePort } from '../support/ports.js';

let kafka: Awaited<ReturnType<typeof sharedKafka>>;
before(async () => {
  kafka = await sharedKafka();
});
after(async () => {
  await kafka.stop();
});

const KILLS = 10;

test(`SIGKILL under QoS 1 load, ${KILLS} times: every acknowledged event arrives; duplicates repeat a sequence number; per-device order holds`, { timeout: 240_000 }, async (t) => {
  const topic = `it.crash.${Date.now()}`;
  const port = await freePort();
  const dir = Daemon.tempDir();
  const config = testConfig(kafka.brokers, {
    ingest: { mode: 'embedded', embedded: { host: '127.0.0.1', port } },
    routes: [{ name: 'r', match: 'devices/+device/#', topic, key: '{device}' }],
  });
  let daemon = new Daemon(dir, config);
  t.after(() => daemon.stop('SIGKILL').catch(() => undefined));
  const url = await daemon.start();

  let stopped = false;
  const devices = ['d1', 'd2', 'd3', 'd4'].map((d) => startStubbornDevice(url, d, () => stopped));
  const total = (): number => devices.reduce((n, d) => n + d.acked.length, 0);
  try {
    for (let kill = 1; kill <= KILLS; kill++) {
      const base = total();
      // the daemon is taking load again: acknowledgements are flowing after the (re)start
      await waitFor(`acknowledgements after start ${kill}`, () => total() >= base + 500, 30_000);
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 500))); // a random moment mid-load
      assert.equal((await daemon.stop('SIGKILL')).signal, 'SIGKILL');
      daemon = new Daemon(dir, config);
      await daemon.start();
    }
    const base = total();
    await waitFor('acknowledgements after the last restart', () => total() >= base + 500, 30_000);
  } finally {
    stopped = true;
  }
  const runs = await Promise.all(devices.map((d) => d.finished));
  const acked = runs.reduce((n, r) => n + r.acked.length, 0);
  const records = await consumeUntil(kafka.brokers, topic, allAckedSeen(runs), 90_000);
  const check = assertDelivered(records, runs, { exactlyOnce: false, gatewayId: 'gw-test' });
  t.diagnostic(`${KILLS} kills: acknowledged ${acked}, ${eventCount(records)} events in Kafka, ${check.duplicates} of them duplicates by sequence number`);
  assert.equal((await daemon.stop('SIGTERM')).code, 0);
});
