import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { allAckedSeen } from '../support/consume.js';
import { Daemon, testConfig } from '../support/daemon.js';
import { startResendingDevice } from '../support/devices.js';
import { consumeUntil, eventCount, sharedKafka } from '../support/kafka.js';
import { prng, testSeed } from '../support/random.js';
import { waitFor } from '../support/poll.js';
import { freePort } from '../support/ports.js';

let kafka: Awaited<ReturnType<typeof sharedKafka>>;
before(async () => {
  kafka = await sharedKafka();
});
after(async () => {
  await kafka.stop();
});

const KILLS = 8;

test(`SIGKILL under load, ${KILLS} times, devices that keep their session and re-send: no message becomes two events`, { timeout: 300_000 }, async (t) => {
  const seed = testSeed();
  t.diagnostic(`seed ${seed} (kill moments; EDGEHAUL_TEST_SEED repeats them)`);
  const random = prng(seed);
  const topic = `it.resend.${Date.now()}`;
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
  const devices = ['d1', 'd2', 'd3', 'd4'].map((d) => startResendingDevice(url, d, () => stopped));
  const total = (): number => devices.reduce((n, d) => n + d.acked.length, 0);
  try {
    for (let kill = 1; kill <= KILLS; kill++) {
      const base = total();
      await waitFor(`acknowledgements after start ${kill}`, () => total() >= base + 500, 30_000);
      await new Promise((r) => setTimeout(r, Math.floor(random() * 300))); // a random moment mid-load
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
  const resent = devices.reduce((n, d) => n + d.resent(), 0);
  const records = await consumeUntil(kafka.brokers, topic, allAckedSeen(runs), 90_000);

  // each (device, n) must be one event: one (incarnation, seq), however often the record carrying it was sent
  const ids = new Map<string, Set<string>>();
  for (const r of records) {
    for (const e of r.batch.events) {
      const msg = JSON.parse(e.payload.toString()) as { device: string; n: number };
      const k = `${msg.device}/${msg.n}`;
      let s = ids.get(k);
      if (s === undefined) ids.set(k, (s = new Set()));
      s.add(`${r.batch.incarnation}/${e.seq}`);
    }
  }
  const twice = [...ids].filter(([, s]) => s.size > 1);
  const acked = runs.reduce((n, r) => n + r.acked.length, 0);
  t.diagnostic(`${KILLS} kills: acknowledged ${acked}, re-sent by the devices ${resent}, ${eventCount(records)} events in Kafka, ${twice.length} messages with two sequence numbers`);
  assert.ok(resent > 0, 'the devices re-sent what was in flight (else this test shows nothing)');
  for (const run of runs) {
    const missing = run.acked.filter((n) => !ids.has(`${run.device}/${n}`));
    assert.deepEqual(missing.slice(0, 10), [], `${run.device}: ${missing.length} acknowledged messages missing`);
  }
  assert.deepEqual(twice.slice(0, 5).map(([k, s]) => `${k}: ${[...s].join(' ')}`), [], `${twice.length} messages became two events`);
  assert.equal((await daemon.stop('SIGTERM')).code, 0);
});
