import assert from 'node:assert/strict';
import { connect as netConnect } from 'node:net';
import { after, before, test } from 'node:test';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { connectPacket, remainingLength } from '../support/mqtt-raw.js';
import { hashPassword } from '../../src/security/password.js';
import { Daemon, testConfig, type LogLine } from '../support/daemon.js';
import { runDevice } from '../support/devices.js';
import { consumeUntil, eventCount, sharedKafka } from '../support/kafka.js';
import { consumeAll } from '../support/consume.js';
import { waitFor } from '../support/poll.js';
import { makePki } from '../support/tls.js';

let kafka: Awaited<ReturnType<typeof sharedKafka>>;
let aliceHash: string;
before(async () => {
  kafka = await sharedKafka();
  aliceHash = await hashPassword('alice-pw');
});
after(async () => {
  await kafka.stop();
});

/** The CONNACK return code of a refused connect (0 when it was accepted). */
async function connackCode(url: string, opts: IClientOptions): Promise<number> {
  try {
    const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
    await c.endAsync(true);
    return 0;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'number') return code;
    throw err;
  }
}

/**
 * A QoS 1 publish's outcome as it stands: read it once the connection has
 * closed, when no PUBACK can come any more (no waiting for one).
 */
function outcome(publish: Promise<unknown>): () => 'pending' | 'acked' | 'failed' {
  let state: 'pending' | 'acked' | 'failed' = 'pending';
  publish.then(
    () => (state = 'acked'),
    () => (state = 'failed'),
  );
  return () => state;
}

function closed(client: MqttClient): Promise<void> {
  return new Promise((resolve) => client.once('close', () => resolve()));
}

function listenerPort(daemon: Daemon, transport: string): number {
  const line = daemon.lines.find((l: LogLine) => l.msg === 'mqtt listener ready' && l.transport === transport);
  assert.ok(line, `no ${transport} listener line: ${daemon.describe()}`);
  return line.port as number;
}

test(
  'logins: anonymous, unknown user and wrong password are refused with CONNACK codes and counted; a right password and max_connections are honoured',
  { timeout: 90_000 },
  async (t) => {
    const topic = `it.sec.auth.${Date.now()}`;
    const daemon = new Daemon(
      Daemon.tempDir(),
      testConfig(kafka.brokers, {
        ingest: {
          embedded: {
            host: '127.0.0.1',
            port: 0,
            max_connections: 3,
            auth: { allow_anonymous: false, users: [{ username: 'alice', password_hash: aliceHash }] },
          },
        },
        routes: [{ name: 'r', match: 'devices/+device/#', topic, key: '{device}' }],
      }),
    );
    t.after(() => daemon.stop('SIGKILL').catch(() => undefined));
    const url = await daemon.start();

    assert.equal(await connackCode(url, { clientId: 'anon' }), 5, 'anonymous: not authorized');
    assert.equal(
      await connackCode(url, { clientId: 'x', username: 'alice', password: 'not-alices-pw-123' }),
      4,
      'wrong password',
    );
    assert.equal(
      await connackCode(url, { clientId: 'y', username: 'mallory', password: 'alice-pw' }),
      4,
      'unknown user',
    );
    assert.equal(await connackCode(url, { clientId: 'z', username: 'alice' }), 4, 'no password');
    assert.equal(await connackCode(url, { clientId: 'ok', username: 'alice', password: 'alice-pw' }), 0);

    // three connections are allowed; the fourth gets "server unavailable"
    const held = await Promise.all(
      [1, 2, 3].map((i) =>
        mqtt.connectAsync(url, { clientId: `held-${i}`, username: 'alice', password: 'alice-pw', reconnectPeriod: 0 }),
      ),
    );
    assert.equal(await connackCode(url, { clientId: 'fourth', username: 'alice', password: 'alice-pw' }), 3);
    await Promise.all(held.map((c) => c.endAsync()));
    await waitFor(
      'a slot to be free again',
      async () => (await connackCode(url, { clientId: 'again', username: 'alice', password: 'alice-pw' })) === 0,
      10_000,
      100,
    );

    const exit = await daemon.stop('SIGTERM');
    assert.equal(exit.code, 0, daemon.describe());
    const stats = daemon.lastStats();
    assert.equal(stats.auth_failures_total, 4);
    assert.equal(stats.connections_refused_total, 1);
    const logged = daemon.lines.filter((l) => l.code === 'EH_ERR_AUTH_FAILED');
    assert.ok(logged.length >= 1, 'login failures are logged');
    assert.ok(
      !daemon.lines.some(
        (l) => JSON.stringify(l).includes('alice-pw') || JSON.stringify(l).includes('not-alices-pw-123'),
      ),
      'no password in any log line',
    );
  },
);

test(
  'ACLs: a publish outside the ACL closes the connection, is counted and never reaches Kafka; allowed ones do; subscriptions outside it fail',
  { timeout: 90_000 },
  async (t) => {
    const topic = `it.sec.acl.${Date.now()}`;
    const daemon = new Daemon(
      Daemon.tempDir(),
      testConfig(kafka.brokers, {
        ingest: {
          embedded: {
            host: '127.0.0.1',
            port: 0,
            auth: {
              allow_anonymous: true,
              users: [
                {
                  username: 'alice',
                  password_hash: aliceHash,
                  publish: ['devices/%u/#'],
                  subscribe: ['commands/%u/#'],
                },
              ],
              acl: [{ client_id: 'sensor-*', publish: ['devices/%c/#'] }],
            },
          },
        },
        routes: [{ name: 'r', match: 'devices/+device/#', topic, key: '{device}' }],
      }),
    );
    t.after(() => daemon.stop('SIGKILL').catch(() => undefined));
    const url = await daemon.start();

    const alice = await mqtt.connectAsync(url, {
      clientId: 'alice-1',
      username: 'alice',
      password: 'alice-pw',
      reconnectPeriod: 0,
    });
    await alice.publishAsync('devices/alice/t', 'allowed-1', { qos: 1 });
    // mqtt.js rejects a SUBACK holding a failure; the packet says which filter failed
    const suback = await alice.subscribeAsync(['commands/alice/+', 'commands/#']).then(
      () => null,
      (err: { packet?: { granted?: number[] } }) => err.packet?.granted,
    );
    assert.deepEqual(suback, [0, 128]);
    // outside the ACL: no PUBACK, the connection is closed
    const gone = closed(alice);
    const denied = outcome(alice.publishAsync('devices/bob/t', 'denied-1', { qos: 1 }));
    await gone;
    assert.notEqual(denied(), 'acked', 'the connection closed without a PUBACK');
    alice.end(true);

    // an anonymous sensor: allowed under its own client id, refused elsewhere (QoS 0 too)
    const sensor = await mqtt.connectAsync(url, { clientId: 'sensor-7', reconnectPeriod: 0 });
    await sensor.publishAsync('devices/sensor-7/t', 'allowed-2', { qos: 1 });
    const sensorGone = closed(sensor);
    sensor.publish('devices/alice/t', 'denied-2', { qos: 0 });
    await sensorGone;
    sensor.end(true);
    // a client no rule names may publish nothing
    const stranger = await mqtt.connectAsync(url, { clientId: 'stranger', reconnectPeriod: 0 });
    const strangerGone = closed(stranger);
    stranger.publish('devices/stranger/t', 'denied-3', { qos: 1 });
    await strangerGone;
    stranger.end(true);

    const alice2 = await mqtt.connectAsync(url, {
      clientId: 'alice-2',
      username: 'alice',
      password: 'alice-pw',
      reconnectPeriod: 0,
    });
    await alice2.publishAsync('devices/alice/t', 'allowed-3', { qos: 1 });
    await alice2.endAsync();

    await consumeUntil(kafka.brokers, topic, (rs) => eventCount(rs) >= 3);
    const exit = await daemon.stop('SIGTERM');
    assert.equal(exit.code, 0, daemon.describe());
    const all = await consumeAll(kafka.brokers, topic);
    const payloads = all.flatMap((r) => r.batch.events.map((e) => e.payload.toString())).sort();
    assert.deepEqual(payloads, ['allowed-1', 'allowed-2', 'allowed-3'], 'nothing denied reached Kafka');
    const stats = daemon.lastStats();
    assert.equal(stats.acl_denied_total, 3);
    assert.equal(stats.acl_denied_subscriptions_total, 1);
    assert.equal(stats.received_messages_total, 3, 'denied publishes never entered the pipeline');
    assert.ok(
      daemon.lines.some((l) => l.code === 'EH_ERR_ACL_PUBLISH' && l.topic === 'devices/bob/t'),
      daemon.describe(),
    );
    assert.ok(daemon.lines.some((l) => l.code === 'EH_ERR_ACL_SUBSCRIBE'));
  },
);

test(
  'TLS listener with a test CA: server verified, client certificate logs in as its CN, WebSocket listener works; client mode over TLS with a password from the environment',
  { timeout: 120_000 },
  async (t) => {
    const pki = makePki();
    const topic = `it.sec.tls.${Date.now()}`;
    const relayTopic = `it.sec.tls.relay.${Date.now()}`;
    const daemon = new Daemon(
      Daemon.tempDir(),
      testConfig(kafka.brokers, {
        ingest: {
          embedded: {
            host: '127.0.0.1',
            port: 0,
            plain_tcp: false,
            tls: {
              enabled: true,
              host: '127.0.0.1',
              port: 0,
              cert: { file: pki.serverCert },
              key: { file: pki.serverKey },
              ca: { file: pki.caCert },
            },
            websocket: { enabled: true, host: '127.0.0.1', port: 0 },
            auth: {
              allow_anonymous: false,
              users: [
                { username: 'sensor-9' },
                { username: 'alice', password_hash: aliceHash },
                { username: 'relay', password_hash: await hashPassword('relay-pw') },
              ],
              acl: [
                { username: '*', publish: ['devices/%u/#'] },
                { username: 'relay', subscribe: ['devices/#'] },
              ],
            },
          },
        },
        routes: [{ name: 'r', match: 'devices/+device/#', topic, key: '{device}' }],
      }),
    );
    t.after(() => daemon.stop('SIGKILL').catch(() => undefined));
    const url = await daemon.start();
    assert.match(url, /^mqtts:\/\//, 'with plain TCP off the TLS listener is the address');
    const tlsPort = listenerPort(daemon, 'tls');
    const wsPort = listenerPort(daemon, 'ws');
    assert.ok(!daemon.lines.some((l) => l.msg === 'mqtt listener ready' && l.transport === 'tcp'));
    const ca = pki.pem(pki.caCert);
    const tlsUrl = `mqtts://127.0.0.1:${tlsPort}`;

    // a second daemon in client mode relays over TLS, verifying the server by the CA, password from env
    process.env.EH_TEST_RELAY_PW = 'relay-pw';
    const relay = new Daemon(
      Daemon.tempDir(),
      testConfig(kafka.brokers, {
        gateway: { id: 'gw-relay' },
        ingest: {
          mode: 'client',
          client: {
            url: tlsUrl,
            username: 'relay',
            password: { env: 'EH_TEST_RELAY_PW' },
            topics: ['devices/#'],
            tls: { enabled: true, ca: { file: pki.caCert }, servername: 'localhost' },
          },
        },
        routes: [{ name: 'relay', match: 'devices/+device/#', topic: relayTopic, key: '{device}' }],
      }),
    );
    t.after(() => relay.stop('SIGKILL').catch(() => undefined));
    await relay.start();
    await waitFor('the relay to be subscribed', () => relay.lines.some((l) => l.msg === 'subscribed'), 20_000);

    // certificate login: no username, no password
    const cert = pki.client('sensor-9');
    const bycert = await mqtt.connectAsync(tlsUrl, {
      clientId: 'c-9',
      ca,
      cert: cert.cert,
      key: cert.key,
      reconnectPeriod: 0,
    });
    await bycert.publishAsync('devices/sensor-9/t', 'by-cert', { qos: 1 });
    await bycert.endAsync();
    // password over TLS
    const bypw = await mqtt.connectAsync(tlsUrl, {
      clientId: 'a-1',
      ca,
      username: 'alice',
      password: 'alice-pw',
      reconnectPeriod: 0,
    });
    await bypw.publishAsync('devices/alice/t', 'by-password', { qos: 1 });
    await bypw.endAsync();
    // WebSocket with a password
    const ws = await mqtt.connectAsync(`ws://127.0.0.1:${wsPort}/mqtt`, {
      clientId: 'w-1',
      username: 'alice',
      password: 'alice-pw',
      reconnectPeriod: 0,
    });
    await ws.publishAsync('devices/alice/ws', 'by-websocket', { qos: 1 });
    await ws.endAsync();

    // refused: a certificate of another CA (falls back to username/password: none), a CN that is no user, no CA trust at all
    const foreign = pki.client('sensor-9', { foreign: true });
    assert.equal(await connackCode(tlsUrl, { clientId: 'f', ca, cert: foreign.cert, key: foreign.key }), 5);
    const stranger = pki.client('nobody');
    assert.equal(await connackCode(tlsUrl, { clientId: 's', ca, cert: stranger.cert, key: stranger.key }), 5);
    await assert.rejects(
      mqtt.connectAsync(tlsUrl, {
        clientId: 'u',
        username: 'alice',
        password: 'alice-pw',
        reconnectPeriod: 0,
        connectTimeout: 5000,
      }),
      /certificate/,
    );

    const records = await consumeUntil(kafka.brokers, topic, (rs) => eventCount(rs) >= 3);
    assert.deepEqual(records.flatMap((r) => r.batch.events.map((e) => e.payload.toString())).sort(), [
      'by-cert',
      'by-password',
      'by-websocket',
    ]);
    const relayed = await consumeUntil(kafka.brokers, relayTopic, (rs) => eventCount(rs) >= 3);
    assert.deepEqual(relayed.flatMap((r) => r.batch.events.map((e) => e.payload.toString())).sort(), [
      'by-cert',
      'by-password',
      'by-websocket',
    ]);

    assert.equal((await relay.stop('SIGTERM')).code, 0, relay.describe());
    assert.equal((await daemon.stop('SIGTERM')).code, 0, daemon.describe());
    const stats = daemon.lastStats();
    assert.equal(stats.auth_failures_total, 2);
    assert.ok((stats.tls_errors_total ?? 0) >= 1, 'the untrusting client aborted the handshake');
    assert.ok(!relay.lines.some((l) => JSON.stringify(l).includes('relay-pw')), 'the relay password is never logged');
  },
);

test(
  'an oversize packet closes only its own connection, before it is buffered; other clients keep flowing',
  { timeout: 90_000 },
  async (t) => {
    const topic = `it.sec.size.${Date.now()}`;
    const daemon = new Daemon(
      Daemon.tempDir(),
      testConfig(kafka.brokers, {
        ingest: { max_payload_bytes: 4096, embedded: { host: '127.0.0.1', port: 0, max_packet_bytes: 8192 } },
        routes: [{ name: 'r', match: 'devices/+device/#', topic, key: '{device}' }],
      }),
    );
    t.after(() => daemon.stop('SIGKILL').catch(() => undefined));
    const url = await daemon.start();
    const port = Number(new URL(url).port);

    const good = runDevice(url, 'steady', 300, { window: 5 });
    // a payload above the packet limit: the connection is closed, no PUBACK
    const big = await mqtt.connectAsync(url, { clientId: 'big', reconnectPeriod: 0 });
    const bigGone = closed(big);
    const bigAck = outcome(big.publishAsync('devices/big/t', Buffer.alloc(100_000, 0x42), { qos: 1 }));
    await bigGone;
    big.end(true);
    // a raw PUBLISH header announcing 200 MB: closed as soon as the length is read
    const raw = netConnect(port, '127.0.0.1');
    await new Promise<void>((resolve) => raw.once('connect', () => resolve()));
    const connect = Buffer.from('101000044d5154540402003c000472617721', 'hex'); // CONNECT, client id "raw!"
    const header = Buffer.from([0x32, 0x80, 0x80, 0x80, 0x60]); // PUBLISH QoS 1, remaining length 201,326,592
    raw.write(Buffer.concat([connect, header, Buffer.alloc(1024)]));
    await new Promise<void>((resolve) => raw.once('close', () => resolve()));

    const run = await good;
    assert.equal(run.acked.length, 300, 'the steady client was not harmed');
    assert.notEqual(bigAck(), 'acked', 'the closed connection never got a PUBACK');
    await consumeUntil(kafka.brokers, topic, (rs) => eventCount(rs) >= 300);
    assert.equal((await daemon.stop('SIGTERM')).code, 0, daemon.describe());
    const stats = daemon.lastStats();
    assert.equal(stats.oversize_packets_total, 2);
    assert.equal(stats.committed_events_total, 300);
    assert.ok(daemon.lines.some((l) => l.code === 'EH_ERR_INGEST_PACKET_TOO_LARGE'));
  },
);

test(
  'a flood from one client is slowed to max_publish_per_sec and does not starve a well-behaved client',
  { timeout: 120_000 },
  async (t) => {
    const topic = `it.sec.flood.${Date.now()}`;
    const daemon = new Daemon(
      Daemon.tempDir(),
      testConfig(kafka.brokers, {
        ingest: { embedded: { host: '127.0.0.1', port: 0, max_publish_per_sec: 500, publish_burst: 500 } },
        routes: [{ name: 'r', match: 'devices/+device/#', topic, key: '{device}' }],
      }),
    );
    t.after(() => daemon.stop('SIGKILL').catch(() => undefined));
    const url = await daemon.start();

    // the flooder: 30,000 QoS 1 publishes written as fast as the socket takes them (bounded in count)
    const flooder = await mqtt.connectAsync(url, { clientId: 'flooder', reconnectPeriod: 0 });
    let floodAcked = 0;
    const payload = Buffer.alloc(100, 0x46);
    for (let i = 0; i < 30_000; i++)
      flooder.publish('devices/flooder/t', payload, { qos: 1 }, (err) => {
        if (!err) floodAcked++;
      });
    await waitFor('the flood to be rate limited', () => floodAcked >= 500, 20_000);

    // meanwhile a well-behaved device: every PUBACK within the deadline
    const steady = await mqtt.connectAsync(url, { clientId: 'steady', reconnectPeriod: 0 });
    const latencies: number[] = [];
    for (let n = 0; n < 100; n++) {
      const t0 = Date.now();
      await steady.publishAsync('devices/steady/t', JSON.stringify({ device: 'steady', n }), { qos: 1 });
      latencies.push(Date.now() - t0);
    }
    await steady.endAsync();
    const worst = Math.max(...latencies);
    assert.ok(worst < 3000, `every PUBACK of the steady client within 3 s (worst ${worst} ms)`);
    const floodAckedMeanwhile = floodAcked;
    flooder.end(true);

    await consumeUntil(
      kafka.brokers,
      topic,
      (rs) => rs.flatMap((r) => r.batch.events).filter((e) => e.topic === 'devices/steady/t').length >= 100,
    );
    assert.equal((await daemon.stop('SIGTERM')).code, 0, daemon.describe());
    const stats = daemon.lastStats();
    assert.ok((stats.rate_limited_total ?? 0) > 0, 'the flooder was held back');
    assert.ok(
      floodAckedMeanwhile < 30_000,
      `the flood did not get through at full speed (${floodAckedMeanwhile} acked)`,
    );
    assert.ok(daemon.lines.some((l) => l.code === 'EH_ERR_INGEST_RATE_LIMITED' && l.client_id === 'flooder'));
    assert.ok(!daemon.lines.some((l) => l.code === 'EH_ERR_INGEST_RATE_LIMITED' && l.client_id === 'steady'));
  },
);

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

/** A QoS 1 PUBLISH written byte by byte, so the topic may be any bytes at all. */
function rawPublish(topic: Buffer, packetId: number, payload: string): Buffer {
  const body = Buffer.concat([u16(topic.length), topic, u16(packetId), Buffer.from(payload)]);
  return Buffer.concat([Buffer.from([0x32]), remainingLength(body.length), body]);
}

/**
 * A raw TCP client: CONNECT, wait for the CONNACK, write `publish`, then wait
 * until the PUBACK arrives or the server closes the connection.
 */
async function rawPublishOutcome(port: number, clientId: string, publish: Buffer): Promise<'puback' | 'closed'> {
  const socket = netConnect(port, '127.0.0.1');
  let received = Buffer.alloc(0);
  let closedByServer = false;
  socket.on('data', (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
  socket.on('close', () => (closedByServer = true));
  socket.on('error', () => undefined);
  try {
    await new Promise<void>((resolve, reject) => socket.once('connect', () => resolve()).once('error', reject));
    socket.write(connectPacket(clientId, 60));
    await waitFor(`CONNACK for ${clientId}`, () => received.length >= 4 || closedByServer, 10_000, 10);
    assert.deepEqual([...received.subarray(0, 4)], [0x20, 0x02, 0x00, 0x00], `${clientId}: CONNACK accepted`);
    socket.write(publish);
    // a PUBACK is 0x40 0x02 <packet id>; anything else before the close would be a protocol error of ours
    return await waitFor(
      `PUBACK or close for ${clientId}`,
      () =>
        received.length >= 8 && received[4] === 0x40
          ? ('puback' as const)
          : closedByServer
            ? ('closed' as const)
            : undefined,
      10_000,
      10,
    );
  } finally {
    socket.destroy();
  }
}

test(
  'malformed PUBLISH packets (topic not well-formed UTF-8, topic with U+0000, QoS 1 with packet id 0) close their connection, are counted and logged, and are neither acknowledged nor forwarded',
  { timeout: 90_000 },
  async (t) => {
    const topic = `it.sec.malformed.${Date.now()}`;
    const daemon = new Daemon(
      Daemon.tempDir(),
      testConfig(kafka.brokers, {
        routes: [{ name: 'r', match: 'devices/+device/#', topic, key: '{device}' }],
      }),
    );
    t.after(() => daemon.stop('SIGKILL').catch(() => undefined));
    const url = await daemon.start();
    const port = Number(new URL(url).port);
    const reading = (device: string): string => JSON.stringify({ device, n: 0 });

    const cases = [
      {
        device: 'bad-utf8',
        topic: Buffer.concat([Buffer.from('devices/bad-utf8/t'), Buffer.from([0xc3, 0x28])]),
        packetId: 7,
      },
      {
        device: 'bad-surrogate',
        topic: Buffer.concat([Buffer.from('devices/bad-surrogate/'), Buffer.from([0xed, 0xa0, 0x80])]),
        packetId: 7,
      },
      { device: 'bad-nul', topic: Buffer.from('devices/bad-nul/a\u0000b'), packetId: 7 },
      { device: 'bad-id', topic: Buffer.from('devices/bad-id/t'), packetId: 0 },
    ];
    for (const c of cases) {
      assert.equal(
        await rawPublishOutcome(port, c.device, rawPublish(c.topic, c.packetId, reading(c.device))),
        'closed',
        `${c.device}: the connection is closed without a PUBACK`,
      );
    }
    // the same raw client with a well-formed packet is acknowledged: the refusals above are the checks, not the client
    assert.equal(
      await rawPublishOutcome(port, 'good', rawPublish(Buffer.from('devices/good/t'), 7, reading('good'))),
      'puback',
    );

    await consumeUntil(kafka.brokers, topic, (rs) => eventCount(rs) >= 1);
    assert.equal((await daemon.stop('SIGTERM')).code, 0, daemon.describe());
    const records = await consumeAll(kafka.brokers, topic);
    const keys = records.flatMap((r) => r.batch.events.map(() => r.batch.key));
    assert.deepEqual(keys, ['good'], 'only the well-formed publish reaches Kafka');
    const stats = daemon.lastStats();
    assert.equal(stats.malformed_publishes_total, cases.length);
    assert.equal(stats.committed_events_total, 1);
    assert.equal(stats.connection_errors_total, 0, 'counted as malformed, not as a generic client error');
    const logged = daemon.lines.filter((l) => l.code === 'EH_ERR_INGEST_MALFORMED').map((l) => String(l.reason));
    // two cases break MQTT-1.5.3-1: its second line within the interval is suppressed
    assert.equal(logged.length, 3, `one line per kind (rate-limited per kind): ${logged.join('; ')}`);
    assert.ok(
      logged.some((r) => /MQTT-1\.5\.3-1/.test(r)) &&
        logged.some((r) => /MQTT-1\.5\.3-2/.test(r)) &&
        logged.some((r) => /MQTT-2\.3\.1-1/.test(r)),
      logged.join('; '),
    );
  },
);
