import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertDelivered } from '../support/assertions.js';
import { allAckedSeen } from '../support/consume.js';
import { Daemon, testConfig } from '../support/daemon.js';
import { startStubbornDevice } from '../support/devices.js';
import { consumeUntil, eventCount } from '../support/kafka.js';
import { useSharedKafka } from '../support/shared-kafka.js';
import { killLoop, LoadedDaemon } from '../support/kill-loop.js';
import { freePort } from '../support/ports.js';
import { prng, testSeed } from '../support/random.js';

const kafka = useSharedKafka();

const KILLS = 10;

test(
  `SIGKILL under QoS 1 load, ${KILLS} times: every acknowledged event arrives; duplicates repeat a sequence number; per-device order holds`,
  { timeout: 240_000 },
  async (t) => {
    const seed = testSeed();
    t.diagnostic(`seed ${seed} (kill moments; EDGEHAUL_TEST_SEED repeats them)`);
    const topic = `it.crash.${Date.now()}`;
    const port = await freePort();
    const config = testConfig(kafka.brokers, {
      ingest: { mode: 'embedded', embedded: { host: '127.0.0.1', port } },
      routes: [{ name: 'r', match: 'devices/+device/#', topic, key: '{device}' }],
    });
    const load = await LoadedDaemon.start(t, {
      dir: Daemon.tempDir(),
      config,
      ids: ['d1', 'd2', 'd3', 'd4'],
      device: startStubbornDevice,
    });
    const runs = await killLoop(load, { kills: KILLS, random: prng(seed), maxDelayMs: 500 });
    const acked = runs.reduce((n, r) => n + r.acked.length, 0);
    const records = await consumeUntil(kafka.brokers, topic, allAckedSeen(runs), 90_000);
    const check = assertDelivered(records, runs, { exactlyOnce: false, gatewayId: 'gw-test' });
    t.diagnostic(
      `${KILLS} kills: acknowledged ${acked}, ${eventCount(records)} events in Kafka, ${check.duplicates} of them duplicates by sequence number`,
    );
    assert.equal((await load.stop('SIGTERM')).code, 0);
  },
);
