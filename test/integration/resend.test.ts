import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allAckedSeen } from '../support/consume.js';
import { Daemon, testConfig } from '../support/daemon.js';
import { startResendingDevice } from '../support/devices.js';
import { consumeUntil, eventCount } from '../support/kafka.js';
import { useSharedKafka } from '../support/shared-kafka.js';
import { prng, testSeed } from '../support/random.js';
import { killLoop, LoadedDaemon } from '../support/kill-loop.js';
import { freePort } from '../support/ports.js';

const kafka = useSharedKafka();

const KILLS = 8;

test(
  `SIGKILL under load, ${KILLS} times, devices that keep their session and re-send: no message becomes two events`,
  { timeout: 300_000 },
  async (t) => {
    const seed = testSeed();
    t.diagnostic(`seed ${seed} (kill moments; EDGEHAUL_TEST_SEED repeats them)`);
    const random = prng(seed);
    const topic = `it.resend.${Date.now()}`;
    const port = await freePort();
    const config = testConfig(kafka.brokers, {
      ingest: { mode: 'embedded', embedded: { host: '127.0.0.1', port } },
      routes: [{ name: 'r', match: 'devices/+device/#', topic, key: '{device}' }],
    });
    const load = await LoadedDaemon.start(t, {
      dir: Daemon.tempDir(),
      config,
      ids: ['d1', 'd2', 'd3', 'd4'],
      device: startResendingDevice,
    });
    const runs = await killLoop(load, { kills: KILLS, random, maxDelayMs: 300 });
    const resent = load.devices.reduce((n, d) => n + d.resent(), 0);
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
    t.diagnostic(
      `${KILLS} kills: acknowledged ${acked}, re-sent by the devices ${resent}, ${eventCount(records)} events in Kafka, ${twice.length} messages with two sequence numbers`,
    );
    assert.ok(resent > 0, 'the devices re-sent what was in flight (else this test shows nothing)');
    for (const run of runs) {
      const missing = run.acked.filter((n) => !ids.has(`${run.device}/${n}`));
      assert.deepEqual(missing.slice(0, 10), [], `${run.device}: ${missing.length} acknowledged messages missing`);
    }
    assert.deepEqual(
      twice.slice(0, 5).map(([k, s]) => `${k}: ${[...s].join(' ')}`),
      [],
      `${twice.length} messages became two events`,
    );
    assert.equal((await load.stop('SIGTERM')).code, 0);
  },
);
