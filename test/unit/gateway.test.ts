import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { diffConfig } from '../../src/config/diff.js';
import {
  deepFreeze,
  loadResolvedConfig,
  parseConfig,
  resolveSecrets,
  type ResolvedConfig,
} from '../../src/config/load.js';
import { createLogger } from '../../src/core/log.js';
import { decodeBatch } from '../../src/forward/format.js';
import type { Confirmation, OutRecord, RecordSink } from '../../src/forward/sink.js';
import { Gateway, type RecordSinkFactory, type ResolvedKafkaConfig } from '../../src/gateway.js';
import { SystemdNotifier } from '../../src/ops/notify.js';
import { ConfigReloader } from '../../src/ops/reload.js';
import { waitFor } from '../support/poll.js';
import { makePki } from '../support/tls.js';

/**
 * The Gateway in-process with a fake RecordSink (the seam for running without
 * Kafka): a real SQLite buffer in a temp dir, the real embedded broker on
 * 127.0.0.1 port 0, a real mqtt.js device over TCP.
 */

interface FakeSink extends RecordSink {
  readonly generation: number;
  readonly kafka: ResolvedKafkaConfig;
  readonly records: OutRecord[];
  closed: boolean;
}

/** Confirms every record (partition 0, increasing offsets) and notes what happened, in order, in `events`. */
function fakeSinks(
  events: string[],
  onClose: () => void = () => undefined,
): { factory: RecordSinkFactory; made: FakeSink[] } {
  const made: FakeSink[] = [];
  let offset = 0;
  const factory: RecordSinkFactory = (kafka, onConnected) => {
    const generation = made.length + 1;
    const sink: FakeSink = {
      generation,
      kafka,
      records: [],
      closed: false,
      connect: async () => {
        events.push(`sink ${generation} connected`);
        onConnected(true);
      },
      send: async (records) => {
        if (sink.closed) throw new Error('closed');
        sink.records.push(...records);
        events.push(`sink ${generation} sent ${records.length}`);
        return records.map((): Confirmation => ({ partition: 0, offset: String(offset++) }));
      },
      close: async () => {
        if (sink.closed) return;
        sink.closed = true;
        events.push(`sink ${generation} closed`);
        onClose();
        onConnected(false);
      },
    };
    made.push(sink);
    return sink;
  };
  return { factory, made };
}

/** The config as the daemon loads it, secrets read (from `env` for `{ env }` ones). */
function loaded(dir: string, yaml: string, env: NodeJS.ProcessEnv = {}): ResolvedConfig {
  const config = parseConfig(yaml, 'gateway-test.yaml');
  return resolveSecrets(
    {
      config: deepFreeze(config),
      file: join(dir, 'edgehaul.yaml'),
      gatewayId: 'gw-test',
      bufferPath: join(dir, 'buffer.db'),
    },
    env,
  );
}

const BASE = `
gateway: { id: gw-test }
ingest:
  embedded: { host: 127.0.0.1, port: 0, auth: { allow_anonymous: true } }
http: { enabled: true, host: 127.0.0.1, port: 0 }
log: { stats_interval_secs: 0 }
kafka: { brokers: ["127.0.0.1:9"], linger_ms: 0 }
`;

async function device(address: string, events: string[]): Promise<MqttClient> {
  const client = await mqtt.connectAsync(address, { clientId: 'dev-1', reconnectPeriod: 0, clean: true });
  client.on('close', () => events.push('device disconnected'));
  return client;
}

/** Topic and payloads of the events in records, in order. */
function sentEvents(records: readonly OutRecord[]): string[] {
  return records.flatMap((r) =>
    decodeBatch(r.value).events.map((e) => `${r.topic}:${e.topic}:${Buffer.from(e.payload).toString()}`),
  );
}

test('a config reload applies the diff: live keys at once over the same connection, restart-only keys reported and kept', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'edgehaul-gateway-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const events: string[] = [];
  const { factory, made } = fakeSinks(events);
  const first = loaded(
    dir,
    `${BASE}
routes:
  - { name: a, match: "a/#", topic: ta }
`,
  );
  const gateway = new Gateway(first, createLogger('warn', new PassThrough()), factory);
  await gateway.start();
  t.after(() => gateway.stop(Date.now() + 5000));
  const client = await device(gateway.address, events);
  t.after(() => client.endAsync(true));

  await client.publishAsync('a/1', 'one', { qos: 1 });
  await waitFor('a/1 sent by the first sink', () => sentEvents(made[0]!.records).length === 1);
  assert.deepEqual(sentEvents(made[0]!.records), ['ta:a/1:one']);

  const address = gateway.address;
  const next = loaded(
    dir,
    `${BASE.replace('linger_ms: 0', 'linger_ms: 1').replace('port: 0, auth', 'port: 1, auth')}
routes:
  - { name: a, match: "a/#", topic: ta }
  - { name: b, match: "b/#", topic: tb }
`,
  );
  const report = await gateway.apply(diffConfig(gateway.config, next.config), next.secrets);

  assert.deepEqual([...report.applied].sort(), ['kafka.linger_ms', 'routes']);
  assert.deepEqual(report.restartRequired, ['ingest.embedded.port']);
  // restart-only: the listener keeps its port; live: the new routes and Kafka settings run
  assert.equal(gateway.address, address);
  assert.equal(gateway.config.ingest.embedded.port, 0);
  assert.equal(gateway.config.kafka.linger_ms, 1);
  assert.equal(gateway.config.routes.length, 2);
  // a Kafka change makes a new producer; the old one finished and closed
  assert.equal(made.length, 2);
  assert.equal(made[0]!.closed, true);
  assert.equal(made[1]!.kafka.linger_ms, 1);

  // the device was not disconnected: the same connection publishes to the new route
  await client.publishAsync('b/1', 'two', { qos: 1 });
  await client.publishAsync('a/2', 'three', { qos: 1 });
  await waitFor('b/1 and a/2 sent by the second sink', () => sentEvents(made[1]!.records).length === 2);
  assert.deepEqual(sentEvents(made[1]!.records), ['tb:b/1:two', 'ta:a/2:three']);
  assert.equal(sentEvents(made[0]!.records).length, 1, 'nothing sent twice');
  assert.ok(!events.includes('device disconnected'));

  // observation reads the running gateway
  const status = (await (await fetch(`http://${gateway.httpAddress}/status`)).json()) as {
    upstream: { connected: boolean };
    buffer: { events: number };
  };
  assert.equal(status.upstream.connected, true);
  await waitFor(
    'the buffer empty once sent',
    async () =>
      ((await (await fetch(`http://${gateway.httpAddress}/status`)).json()) as typeof status).buffer.events === 0,
  );
});

test('shutdown goes in reverse: ingest stops, the last PUBACK is flushed, the device disconnected, then the forwarder, the buffer closed last', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'edgehaul-gateway-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const events: string[] = [];
  const cfg = loaded(
    dir,
    `${BASE}
buffer: { commit: { max_wait_ms: 1000, min_events: 1000 } }
routes:
  - { name: a, match: "a/#", topic: ta }
`,
  );
  // the SQLite WAL file exists while the buffer is open and is removed when it closes
  const wal = `${cfg.bufferPath}-wal`;
  let walAtSinkClose: boolean | null = null;
  const { factory, made } = fakeSinks(events, () => {
    walAtSinkClose = existsSync(wal);
  });
  const gateway = new Gateway(cfg, createLogger('warn', new PassThrough()), factory);
  await gateway.start();
  let stopped = false;
  t.after(async () => {
    if (!stopped) await gateway.stop(Date.now() + 5000);
  });
  const client = await device(gateway.address, events);
  t.after(() => client.endAsync(true));

  // a QoS 1 publish waits for its group commit (max_wait_ms 1000, min_events 1000): no PUBACK yet
  const acked = client.publishAsync('a/1', 'last', { qos: 1 }).then(() => events.push('puback'));
  await waitFor('the publish read by the gateway', () => gateway.stats.received_messages_total === 1, 5000, 5);
  assert.equal(gateway.stats.commits_total, 0, 'the commit waits for max_wait_ms');
  assert.ok(existsSync(wal));

  events.push('stop');
  const report = await gateway.stop(Date.now() + 10_000);
  stopped = true;
  events.push('stopped');
  await acked;

  // the final commit made it durable and acknowledged it before the connection closed;
  // the forwarder sent it (at once or in its final flush) and closed its producer after
  // ingest closed; the buffer closed after that
  const at = (e: string): number => {
    const i = events.indexOf(e);
    assert.notEqual(i, -1, `${e} in ${events.join(', ')}`);
    return i;
  };
  assert.ok(at('stop') < at('puback'), events.join(', '));
  assert.ok(at('puback') < at('device disconnected'), events.join(', '));
  assert.ok(at('device disconnected') < at('sink 1 closed'), events.join(', '));
  assert.ok(at('sink 1 sent 1') < at('sink 1 closed'), events.join(', '));
  assert.ok(at('sink 1 closed') < at('stopped'), events.join(', '));
  assert.equal(walAtSinkClose, true, 'the buffer was still open when the forwarder closed');
  assert.equal(existsSync(wal), false, 'the buffer was closed at the end');
  assert.deepEqual(sentEvents(made[0]!.records), ['ta:a/1:last']);
  assert.deepEqual(report, { buffered: 0, timedOut: false });
  assert.equal(gateway.stats.acked_messages_total, 1);
});

test('secrets inline, from the environment and from a file reach the stages resolved, and appear in no log line, /status, /metrics or reload message', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'edgehaul-gateway-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const pki = makePki();
  t.after(() => rmSync(pki.dir, { recursive: true, force: true }));
  const tag = randomBytes(6).toString('hex');
  const saslPassword = `sasl-pw-${tag}`;
  const inlineCa = `inline-ca-${tag}`;
  process.env.EH_TEST_GW_SASL = saslPassword;
  t.after(() => delete process.env.EH_TEST_GW_SASL);
  // the listener's private key from a file: its PEM body is the file secret to look for
  const keyFile = join(dir, 'server.key');
  copyFileSync(pki.serverKey, keyFile);
  const keyLines = readFileSync(keyFile, 'utf8')
    .split('\n')
    .filter((l) => l.length >= 16 && !l.startsWith('-----'));
  assert.ok(keyLines.length > 0);
  const secrets = [saslPassword, inlineCa, ...keyLines];

  const file = join(dir, 'edgehaul.yaml');
  const yaml = (lingerMs: number): string => `
gateway: { id: gw-test }
ingest:
  embedded:
    host: 127.0.0.1
    port: 0
    auth: { allow_anonymous: true }
    tls: { enabled: true, host: 127.0.0.1, port: 0, cert: { file: ${pki.serverCert} }, key: { file: ${keyFile} } }
buffer: { path: ${join(dir, 'buffer.db')} }
http: { enabled: true, host: 127.0.0.1, port: 0 }
log: { level: debug, stats_interval_secs: 1 }
kafka:
  brokers: ["127.0.0.1:9"]
  linger_ms: ${lingerMs}
  tls: { enabled: true, ca: { value: ${inlineCa} } }
  sasl: { mechanism: plain, username: gw, password: { env: EH_TEST_GW_SASL } }
routes:
  - { name: a, match: "a/#", topic: ta }
`;
  writeFileSync(file, yaml(0));

  let logText = '';
  const out = new PassThrough();
  out.on('data', (chunk: Buffer) => (logText += chunk.toString()));
  const log = createLogger('debug', out);
  const events: string[] = [];
  const { factory, made } = fakeSinks(events);
  const gateway = new Gateway(loadResolvedConfig(file), log, factory);
  await gateway.start();
  let stopped = false;
  t.after(async () => {
    if (!stopped) await gateway.stop(Date.now() + 5000);
  });
  const reloader = new ConfigReloader(file, gateway, log, SystemdNotifier.fromEnv(log, {}));
  t.after(() => reloader.close());

  // the stages got the values: the sink its SASL password and CA, the TLS listener its key and certificate
  assert.equal(made[0]!.kafka.sasl?.password, saslPassword);
  assert.equal(made[0]!.kafka.tls.ca, inlineCa);
  const tlsLine = await waitFor('the TLS listener', () =>
    logText
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as { msg: string; transport?: string; port?: number })
      .find((l) => l.msg === 'mqtt listener ready' && l.transport === 'tls'),
  );
  const client = await mqtt.connectAsync(`mqtts://127.0.0.1:${tlsLine.port}`, {
    clientId: 'dev-tls',
    reconnectPeriod: 0,
    ca: pki.pem(pki.caCert),
    servername: 'localhost',
  });
  t.after(() => client.endAsync(true));
  await client.publishAsync('a/1', 'one', { qos: 1 });
  await waitFor('a/1 sent', () => sentEvents(made[0]!.records).length === 1);
  await waitFor('a stats line', () => logText.includes('"msg":"stats"'));
  const status = await (await fetch(`http://${gateway.httpAddress}/status`)).text();
  const metrics = await (await fetch(`http://${gateway.httpAddress}/metrics`)).text();
  assert.match(status, /"gateway_id"/);
  assert.match(metrics, /edgehaul_/);

  // a reload that changes kafka: a new producer with the secrets read at this load
  writeFileSync(file, yaml(1));
  assert.equal((await reloader.reload('SIGHUP')).status, 'applied');
  assert.equal(made.length, 2);
  assert.equal(made[1]!.kafka.sasl?.password, saslPassword);
  // a missing secret file, then a missing variable: rejected by key and name, the running config kept
  rmSync(keyFile);
  writeFileSync(file, yaml(2));
  assert.equal((await reloader.reload('SIGHUP')).status, 'rejected');
  copyFileSync(pki.serverKey, keyFile);
  delete process.env.EH_TEST_GW_SASL;
  assert.equal((await reloader.reload('SIGHUP')).status, 'rejected');
  assert.equal(made.length, 2);
  assert.equal(gateway.config.kafka.linger_ms, 1);
  assert.match(logText, /ingest\.embedded\.tls\.key: secret file .*server\.key cannot be read: ENOENT/);
  assert.match(logText, /kafka\.sasl\.password: environment variable EH_TEST_GW_SASL is not set/);

  // the gateway logs its last stats line when it stops
  const before = logText.length;
  await gateway.stop(Date.now() + 5000);
  stopped = true;
  assert.match(logText.slice(before), /"msg":"stats"/);
  for (const secret of secrets) {
    assert.ok(!logText.includes(secret), `a secret in the log: ${secret.slice(0, 12)}...`);
    assert.ok(!status.includes(secret), 'a secret in /status');
    assert.ok(!metrics.includes(secret), 'a secret in /metrics');
  }
});
