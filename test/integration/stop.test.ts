import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertDelivered } from '../support/assertions.js';
import { allAckedSeen } from '../support/consume.js';
import { Daemon, testConfig } from '../support/daemon.js';
import { consumeUntil } from '../support/kafka.js';
import { useSharedKafka } from '../support/shared-kafka.js';
import { startLoadDevice } from '../support/load.js';
import { LoadedDaemon } from '../support/kill-loop.js';
import { freePort } from '../support/ports.js';

const kafka = useSharedKafka();

const DEVICES = 8;
const STOPS = 3;

test(
  `SIGTERM under QoS 1 load from ${DEVICES} devices, ${STOPS} times: the PUBACKs the devices receive are exactly the publishes the daemon counted as acknowledged, and all of them reach Kafka`,
  { timeout: 240_000 },
  async (t) => {
    const topic = `it.stop.${Date.now()}`;
    const port = await freePort();
    const config = testConfig(kafka.brokers, {
      ingest: { mode: 'embedded', embedded: { host: '127.0.0.1', port } },
      routes: [{ name: 'r', match: 'devices/+device/#', topic, key: '{device}' }],
    });
    // devices that reconnect and go on after each restart: what was in flight at the stop is simply not acknowledged
    const load = await LoadedDaemon.start(t, {
      dir: Daemon.tempDir(),
      config,
      ids: Array.from({ length: DEVICES }, (_, i) => `st${i}`),
      device: (url, id, stop) => startLoadDevice(url, id, stop, { window: 20, payloadBytes: 100 }),
    });
    const rounds: string[] = [];
    let daemonAcked = 0;
    for (let stop = 1; stop <= STOPS; stop++) {
      const base = load.acked();
      await load.moreAcked(`acknowledgements before stop ${stop}`, 3000, 60_000);
      assert.equal((await load.stop('SIGTERM')).code, 0, load.daemon.describe());
      // the daemon is gone: no PUBACK can arrive any more, so the devices' count is final for this round
      const counted = load.daemon.lastStats().acked_messages_total!;
      daemonAcked += counted;
      rounds.push(`stop ${stop}: daemon ${counted}, devices ${load.acked() - base}`);
      assert.equal(
        load.acked(),
        daemonAcked,
        `PUBACKs received by the devices = acknowledged by the daemon (${rounds.join('; ')})`,
      );
      if (stop < STOPS) await load.start();
    }
    const runs = await load.finish();
    await load.start();
    const records = await consumeUntil(kafka.brokers, topic, allAckedSeen(runs), 90_000);
    const check = assertDelivered(records, runs, { exactlyOnce: false, gatewayId: 'gw-test' });
    assert.equal((await load.stop('SIGTERM')).code, 0);
    t.diagnostic(
      `${rounds.join('; ')}; ${check.delivered} events read, ${check.duplicates} duplicates by sequence number`,
    );
  },
);
