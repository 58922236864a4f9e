import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Daemon, testConfig } from '../support/daemon.js';
import { runDevice } from '../support/devices.js';
import { consumeUntil, eventCount, startKafka, type KafkaBroker } from '../support/kafka.js';
import { waitFor } from '../support/poll.js';
import { makePki, type TestPki } from '../support/tls.js';

let pki: TestPki;
let kafka: KafkaBroker;
before(async () => {
  pki = makePki();
  // Kafka's PEM keystore: the key, then the certificate chain, in one file
  const keystore = join(pki.dir, 'kafka-keystore.pem');
  writeFileSync(keystore, pki.pem(pki.serverKey) + pki.pem(pki.serverCert));
  kafka = await startKafka({ tlsPem: keystore });
});
after(async () => {
  await kafka.stop();
});

function tlsConfig(topic: string, ca: string): Record<string, unknown> {
  return testConfig(kafka.tlsBrokers, {
    kafka: {
      brokers: kafka.tlsBrokers,
      tls: { enabled: true, ca: { value: ca } },
      retry: { initial_ms: 100, max_ms: 1000 },
      connection_timeout_ms: 3000,
      request_timeout_ms: 10_000,
    },
    routes: [{ name: 'r', match: 'devices/+device/#', topic, key: '{device}' }],
  });
}

test(
  'Kafka over TLS: the broker certificate checked against kafka.tls.ca, every event delivered',
  { timeout: 90_000 },
  async (t) => {
    const topic = `it.tls.${Date.now()}`;
    const daemon = new Daemon(Daemon.tempDir(), tlsConfig(topic, pki.pem(pki.caCert)));
    t.after(() => daemon.stop('SIGKILL').catch(() => undefined));
    const url = await daemon.start();
    const run = await runDevice(url, 'dev-tls', 300, { window: 20 });
    assert.equal(run.acked.length, 300);
    const records = await consumeUntil(kafka.brokers, topic, (rs) => eventCount(rs) >= 300);
    assert.equal(eventCount(records), 300);
    assert.equal((await daemon.stop('SIGTERM')).code, 0, daemon.describe());
  },
);

test(
  'Kafka over TLS with a CA that did not sign the broker: refused, logged, nothing lost from the buffer',
  { timeout: 90_000 },
  async (t) => {
    const topic = `it.tls.wrongca.${Date.now()}`;
    const foreign = pki.client('someone', { foreign: true });
    // the foreign CA's certificate sits next to the client certificate it signed
    const foreignCa = pki.pem(join(pki.dir, 'foreign-ca.pem'));
    assert.ok(foreign.cert.length > 0);
    const daemon = new Daemon(Daemon.tempDir(), tlsConfig(topic, foreignCa));
    t.after(() => daemon.stop('SIGKILL').catch(() => undefined));
    const url = await daemon.start();
    const run = await runDevice(url, 'dev-x', 20);
    assert.equal(run.acked.length, 20);
    await waitFor('a send error', () => daemon.lines.some((l) => l.code === 'EH_ERR_UPSTREAM_SEND'), 30_000);
    assert.equal((await daemon.stop('SIGTERM')).code, 0, daemon.describe());
    assert.equal(daemon.lines.find((l) => l.msg === 'stopped')?.buffered_events, 20, 'the events stay buffered');
  },
);
