import assert from 'node:assert/strict';
import { test } from 'node:test';
import mqtt from 'mqtt';
import { assertDelivered } from '../support/assertions.js';
import { Daemon, testConfig, type LogLine } from '../support/daemon.js';
import type { DeviceRun } from '../support/devices.js';
import { consumeUntil, eventCount } from '../support/kafka.js';
import { useSharedKafka } from '../support/shared-kafka.js';
import { waitFor } from '../support/poll.js';

const kafka = useSharedKafka();

/**
 * A device on one MQTT connection for its whole run, publishing numbered QoS 1
 * readings (at most `window` in flight) until `stop()` or `max` messages. It
 * reconnects if the connection drops, and counts every `connect`: a reload
 * that kept the listener must leave that count at 1.
 */
function startDevice(
  url: string,
  device: string,
  stop: () => boolean,
  opts: { window?: number; max?: number } = {},
): { acked: number[]; connects: () => number; finished: Promise<DeviceRun> } {
  const acked: number[] = [];
  let connects = 0;
  const client = mqtt.connect(url, { clientId: device, clean: true, reconnectPeriod: 200, connectTimeout: 5000 });
  client.on('connect', () => connects++);
  client.on('error', () => undefined);
  const finished = (async (): Promise<DeviceRun> => {
    await waitFor(`${device} to connect`, () => connects > 0, 10_000);
    let next = 0;
    const max = opts.max ?? 20_000;
    const worker = async (): Promise<void> => {
      while (!stop() && next < max) {
        const n = next++;
        await client.publishAsync(`devices/${device}/telemetry`, JSON.stringify({ device, n }), { qos: 1 });
        acked.push(n);
      }
    };
    try {
      await Promise.all(Array.from({ length: opts.window ?? 10 }, worker));
    } finally {
      await client.endAsync();
    }
    return { device, acked: [...acked].sort((a, b) => a - b) };
  })();
  return { acked, connects: () => connects, finished };
}

function linesAfter(daemon: Daemon, from: number, msg: string | RegExp): LogLine[] {
  return daemon.lines.slice(from).filter((l) => (typeof msg === 'string' ? l.msg === msg : msg.test(l.msg)));
}

async function sighup(daemon: Daemon, config: Record<string, unknown> | string, done: RegExp): Promise<LogLine[]> {
  const from = daemon.lines.length;
  daemon.writeConfig(config);
  daemon.kill('SIGHUP');
  await waitFor(`the reload to be logged (${done})`, () => linesAfter(daemon, from, done).length > 0, 60_000);
  return daemon.lines.slice(from);
}

test(
  'reload under load: routes, Kafka and log level change live; no event lost, duplicated or reordered; device connections stay up',
  { timeout: 240_000 },
  async (t) => {
    const topic = `it.reload.${Date.now()}`;
    const otherTopic = `${topic}.other`;
    const route = { name: 'telemetry', match: 'devices/+device/#', topic, key: '{device}' };
    const base = testConfig(kafka.brokers, {
      routes: [route],
      kafka: { ...(testConfig(kafka.brokers).kafka as object), linger_ms: 100 },
    });
    const daemon = new Daemon(Daemon.tempDir(), base);
    t.after(() => daemon.stop('SIGKILL').catch(() => undefined));
    const url = await daemon.start();

    let stopping = false;
    const devices = ['r-0', 'r-1', 'r-2', 'r-3'].map((d) => startDevice(url, d, () => stopping));
    const ackedNow = (): number => devices.reduce((n, d) => n + d.acked.length, 0);
    await waitFor('load to be flowing', () => ackedNow() >= 400, 60_000);

    // 1: a new route, a different Kafka linger and batch size, debug logging
    const second = {
      ...base,
      routes: [route, { name: 'other', match: 'other/#', topic: otherTopic, key: '{client_id}' }],
      kafka: { ...(base.kafka as object), linger_ms: 5, max_events_per_record: 50 },
      log: { level: 'debug', stats_interval_secs: 0 },
    };
    const atFirst = ackedNow();
    const first = await sighup(daemon, second, /^config reloaded/);
    const reloaded = first.find((l) => /^config reloaded/.test(l.msg))!;
    assert.deepEqual([...(reloaded.applied as string[])].sort(), [
      'kafka.linger_ms',
      'kafka.max_events_per_record',
      'log.level',
      'routes',
    ]);
    assert.deepEqual(reloaded.restart_required, []);
    assert.equal(reloaded.level, 'info');
    await waitFor('more events acknowledged after the first reload', () => ackedNow() >= atFirst + 400, 60_000);
    assert.ok(
      daemon.lines.some((l) => l.level === 'debug'),
      'log level debug applied live',
    );

    // 2: the Kafka producer is replaced again while devices keep publishing
    const atSecond = ackedNow();
    await sighup(
      daemon,
      {
        ...second,
        kafka: { ...(base.kafka as object), linger_ms: 50, compression: 'gzip' },
        log: { level: 'info', stats_interval_secs: 0 },
      },
      /^config reloaded/,
    );
    await waitFor('more events acknowledged after the second reload', () => ackedNow() >= atSecond + 400, 60_000);
    stopping = true;
    const runs = await Promise.all(devices.map((d) => d.finished));

    // the new route is live: a publish it matches reaches its topic
    const probe = await mqtt.connectAsync(url, { clientId: 'probe', reconnectPeriod: 0 });
    await probe.publishAsync('other/x', JSON.stringify({ device: 'probe', n: 0 }), { qos: 1 });
    await probe.endAsync();

    const total = runs.reduce((n, r) => n + r.acked.length, 0);
    const records = await consumeUntil(kafka.brokers, topic, (rs) => eventCount(rs) >= total, 90_000);
    const check = assertDelivered(records, runs, { exactlyOnce: true, gatewayId: 'gw-test' });
    assert.equal(check.delivered, total);
    const other = await consumeUntil(kafka.brokers, otherTopic, (rs) => eventCount(rs) >= 1);
    assert.equal(other[0]!.batch.events[0]!.topic, 'other/x');
    for (const d of devices) assert.equal(d.connects(), 1, 'the device connection stayed up through both reloads');

    const exit = await daemon.stop('SIGTERM');
    assert.equal(exit.code, 0, daemon.describe());
    const stats = daemon.lastStats();
    assert.equal(stats.dropped_unrouted_total, 0);
    assert.equal(stats.sent_events_total, total + 1);
  },
);

test(
  'an invalid reload is rejected with key and line; the old config keeps running',
  { timeout: 120_000 },
  async (t) => {
    const topic = `it.reload.bad.${Date.now()}`;
    const config = testConfig(kafka.brokers, {
      routes: [{ name: 'telemetry', match: 'devices/+device/#', topic, key: '{device}' }],
    });
    const daemon = new Daemon(Daemon.tempDir(), config);
    t.after(() => daemon.stop('SIGKILL').catch(() => undefined));
    const url = await daemon.start();

    // broken YAML: an unclosed flow sequence on line 3
    const yaml = await sighup(daemon, 'kafka:\n  brokers:\n    - [oops\nroutes: []\n', /^config reload rejected/);
    const yamlLine = yaml.find((l) => l.code === 'EH_ERR_CONFIG_RELOAD')!;
    assert.equal(yamlLine.level, 'error');
    assert.equal(yamlLine.reason, 'EH_ERR_CONFIG_YAML');
    assert.equal(typeof yamlLine.line, 'number');

    // a schema error: the route topic is not a Kafka topic name, on line 5 of this file
    const schemaText = [
      'kafka:',
      `  brokers: [${kafka.brokers.map((b) => `"${b}"`).join(', ')}]`,
      'routes:',
      '  - name: telemetry',
      '    topic: "not a topic!"',
      '    match: "devices/+device/#"',
      '',
    ].join('\n');
    const schema = await sighup(daemon, schemaText, /^config reload rejected/);
    const schemaLine = schema.find((l) => l.code === 'EH_ERR_CONFIG_RELOAD')!;
    assert.equal(schemaLine.reason, 'EH_ERR_CONFIG_INVALID');
    assert.equal(schemaLine.key, 'routes[0].topic');
    assert.equal(schemaLine.line, 5);
    assert.match(schemaLine.msg, /line 5: routes\[0\]\.topic/);
    assert.ok(!daemon.lines.some((l) => /^config reloaded/.test(l.msg)), 'nothing was applied');

    // still running the old routes
    const probe = await mqtt.connectAsync(url, { clientId: 'dev-old', reconnectPeriod: 0 });
    await probe.publishAsync('devices/dev-old/telemetry', JSON.stringify({ device: 'dev-old', n: 0 }), { qos: 1 });
    await probe.endAsync();
    const records = await consumeUntil(kafka.brokers, topic, (rs) => eventCount(rs) >= 1);
    assert.equal(records[0]!.batch.key, 'dev-old');
    assert.equal((await daemon.stop('SIGTERM')).code, 0, daemon.describe());
  },
);

test(
  'a change that needs a restart is reported and not applied; the live part of the same edit is',
  { timeout: 120_000 },
  async (t) => {
    const topic = `it.reload.restart.${Date.now()}`;
    const config = testConfig(kafka.brokers, {
      routes: [{ name: 'telemetry', match: 'devices/+device/#', topic, key: '{device}' }],
    });
    const daemon = new Daemon(Daemon.tempDir(), config);
    t.after(() => daemon.stop('SIGKILL').catch(() => undefined));
    const url = await daemon.start();
    const client = mqtt.connect(url, { clientId: 'dev-stay', reconnectPeriod: 200 });
    let connects = 0;
    client.on('connect', () => connects++);
    await waitFor('the device to connect', () => connects > 0);

    const edited = {
      ...config,
      ingest: { mode: 'embedded', embedded: { host: '127.0.0.1', port: 1, auth: { allow_anonymous: true } } },
      buffer: { path: 'elsewhere.db', synchronous: 'normal' },
      kafka: { ...(config.kafka as object), linger_ms: 7 },
    };
    const lines = await sighup(daemon, edited, /^config reloaded/);
    const reloaded = lines.find((l) => /^config reloaded/.test(l.msg))!;
    assert.equal(reloaded.level, 'warn');
    assert.deepEqual(reloaded.applied, ['kafka.linger_ms']);
    assert.deepEqual([...(reloaded.restart_required as string[])].sort(), [
      'buffer.path',
      'buffer.synchronous',
      'ingest.embedded.port',
    ]);
    assert.match(reloaded.msg, /not applied until a restart: .*ingest\.embedded\.port/);

    // the listener is the old one and the device is still connected on it
    await client.publishAsync('devices/dev-stay/telemetry', JSON.stringify({ device: 'dev-stay', n: 0 }), { qos: 1 });
    assert.equal(connects, 1);
    await client.endAsync();
    const records = await consumeUntil(kafka.brokers, topic, (rs) => eventCount(rs) >= 1);
    assert.equal(records[0]!.batch.key, 'dev-stay');

    // the same file again: the pending restart-only keys are reported again, nothing new applied
    const again = await sighup(daemon, edited, /^config reloaded|nothing changed/);
    const second = again.find((l) => /^config reloaded/.test(l.msg))!;
    assert.deepEqual(second.applied, []);
    assert.deepEqual([...(second.restart_required as string[])].sort(), [
      'buffer.path',
      'buffer.synchronous',
      'ingest.embedded.port',
    ]);
    assert.equal((await daemon.stop('SIGTERM')).code, 0, daemon.describe());
  },
);

test('with reload.watch, saving the file reloads it', { timeout: 120_000 }, async (t) => {
  const config = testConfig(kafka.brokers, { reload: { watch: true, debounce_ms: 200 } });
  const daemon = new Daemon(Daemon.tempDir(), config);
  t.after(() => daemon.stop('SIGKILL').catch(() => undefined));
  await daemon.start();
  await waitFor('the watch to start', () => daemon.lines.some((l) => l.msg === 'watching the config file for edits'));
  const from = daemon.lines.length;
  daemon.writeConfig({ ...config, log: { level: 'debug', stats_interval_secs: 0 } });
  const line = await waitFor('the watch to reload', () => linesAfter(daemon, from, /^config reloaded/)[0], 30_000);
  assert.equal(line.trigger, 'watch');
  assert.deepEqual(line.applied, ['log.level']);
  assert.equal((await daemon.stop('SIGTERM')).code, 0, daemon.describe());
});
