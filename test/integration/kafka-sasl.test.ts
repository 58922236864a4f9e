import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Daemon, testConfig, type LogLine } from '../support/daemon.js';
import { runDevice } from '../support/devices.js';
import { consumeUntil, eventCount, startKafka, type KafkaBroker } from '../support/kafka.js';
import { latestStats } from '../support/stats.js';
import { waitFor } from '../support/poll.js';

const USER = 'edge';
const PASSWORD = 'kafka-s3cret-pw';
let kafka: KafkaBroker;
before(async () => {
  // a broker of its own: a plaintext listener (for the test's consumer) and a SASL_PLAINTEXT one
  kafka = await startKafka({ sasl: { username: USER, password: PASSWORD } });
});
after(async () => {
  await kafka.stop();
});

for (const mechanism of ['plain', 'scram-sha-256', 'scram-sha-512'] as const) {
  test(
    `Kafka SASL ${mechanism}: events reach Kafka through the SASL listener, password from the environment, never logged`,
    { timeout: 90_000 },
    async (t) => {
      const topic = `it.sasl.${mechanism}.${Date.now()}`;
      process.env.EH_TEST_KAFKA_PW = PASSWORD;
      const daemon = new Daemon(
        Daemon.tempDir(),
        testConfig(kafka.saslBrokers, {
          kafka: {
            brokers: kafka.saslBrokers,
            sasl: { mechanism, username: USER, password: { env: 'EH_TEST_KAFKA_PW' } },
            retry: { initial_ms: 100, max_ms: 1000 },
            connection_timeout_ms: 3000,
            request_timeout_ms: 10_000,
          },
          routes: [{ name: 'r', match: 'devices/+device/#', topic, key: '{device}' }],
          log: { level: 'debug', stats_interval_secs: 0 },
        }),
      );
      t.after(() => daemon.stop('SIGKILL').catch(() => undefined));
      const url = await daemon.start();
      const run = await runDevice(url, 'dev-s', 200, { window: 10 });
      assert.equal(run.acked.length, 200);
      await consumeUntil(kafka.brokers, topic, (rs) => eventCount(rs) >= 200);
      assert.equal((await daemon.stop('SIGTERM')).code, 0, daemon.describe());
      assert.equal(daemon.lastStats().sent_events_total, 200);
      assert.ok(
        !daemon.lines.some((l) => JSON.stringify(l).includes(PASSWORD)),
        'the password is in no log line (debug level)',
      );
    },
  );
}

test(
  'Kafka SASL with a wrong password: a clear error, degraded health, events stay buffered and are sent once the password is right',
  { timeout: 120_000 },
  async (t) => {
    const topic = `it.sasl.wrong.${Date.now()}`;
    const dir = Daemon.tempDir();
    const config = (password: string): Record<string, unknown> =>
      testConfig(kafka.saslBrokers, {
        kafka: {
          brokers: kafka.saslBrokers,
          sasl: { mechanism: 'scram-sha-512', username: USER, password: { value: password } },
          retry: { initial_ms: 100, max_ms: 1000 },
          connection_timeout_ms: 3000,
          request_timeout_ms: 10_000,
        },
        routes: [{ name: 'r', match: 'devices/+device/#', topic, key: '{device}' }],
        log: { level: 'info', stats_interval_secs: 1 },
      });
    const wrong = new Daemon(dir, config('not-the-password'));
    t.after(() => wrong.stop('SIGKILL').catch(() => undefined));
    const url = await wrong.start();
    const run = await runDevice(url, 'dev-w', 50, { window: 5 });
    assert.equal(run.acked.length, 50, 'ingest keeps accepting while Kafka refuses us');
    const line = await waitFor(
      'the auth error',
      () => wrong.lines.find((l) => l.code === 'EH_ERR_UPSTREAM_AUTH'),
      30_000,
    );
    assert.equal(line.mechanism, 'scram-sha-512');
    assert.equal(line.username, USER);
    const degraded = await waitFor(
      'degraded health naming the credentials',
      () => {
        const s = latestStats(wrong);
        return s !== undefined && s.health.status === 'degraded' && s.health.reasons.some((r) => /credentials/.test(r))
          ? s
          : undefined;
      },
      30_000,
    );
    assert.ok((degraded.stats.upstream_auth_failures_total as number) >= 1);
    assert.ok(!wrong.lines.some((l) => JSON.stringify(l).includes('not-the-password')));
    assert.equal((await wrong.stop('SIGTERM')).code, 0, wrong.describe());
    assert.equal(wrong.lines.find((l) => l.msg === 'stopped')?.buffered_events, 50);

    // the right password: the buffered events go out
    const right = new Daemon(dir, config(PASSWORD));
    t.after(() => right.stop('SIGKILL').catch(() => undefined));
    await right.start();
    const records = await consumeUntil(kafka.brokers, topic, (rs) => eventCount(rs) >= 50);
    assert.equal(eventCount(records), 50);
    assert.equal((await right.stop('SIGTERM')).code, 0, right.describe());
  },
);

test(
  'Kafka SASL password from a file: read at each load, used by the producer a reload makes; a reload while the file is missing is rejected and sending goes on',
  { timeout: 180_000 },
  async (t) => {
    const topic = `it.sasl.file.${Date.now()}`;
    const dir = Daemon.tempDir();
    const pwFile = join(dir, 'kafka-password');
    writeFileSync(pwFile, 'an-old-wrong-pw\n');
    const config = (lingerMs: number): Record<string, unknown> =>
      testConfig(kafka.saslBrokers, {
        kafka: {
          brokers: kafka.saslBrokers,
          sasl: { mechanism: 'scram-sha-256', username: USER, password: { file: pwFile } },
          retry: { initial_ms: 100, max_ms: 1000 },
          connection_timeout_ms: 3000,
          request_timeout_ms: 10_000,
          linger_ms: lingerMs,
        },
        routes: [{ name: 'r', match: 'devices/+device/#', topic, key: '{device}' }],
        log: { level: 'debug', stats_interval_secs: 0 },
      });
    const daemon = new Daemon(dir, config(10));
    t.after(() => daemon.stop('SIGKILL').catch(() => undefined));
    const url = await daemon.start();
    const sighup = async (cfg: Record<string, unknown>, done: RegExp): Promise<LogLine[]> => {
      const from = daemon.lines.length;
      daemon.writeConfig(cfg);
      daemon.kill('SIGHUP');
      await waitFor(`a reload logged as ${done}`, () => daemon.lines.slice(from).some((l) => done.test(l.msg)), 30_000);
      return daemon.lines.slice(from);
    };

    assert.equal((await runDevice(url, 'dev-f1', 20, { window: 5 })).acked.length, 20);
    await waitFor('the auth error', () => daemon.lines.find((l) => l.code === 'EH_ERR_UPSTREAM_AUTH'), 30_000);

    // the right password in the file: a reload of the same config text changes nothing (the config
    // is compared as written) and keeps the running producer
    writeFileSync(pwFile, `${PASSWORD}\n`);
    await sighup(config(10), /^config reload: nothing changed$/);
    // a reload that changes kafka makes a new producer with the password read at this load
    await sighup(config(20), /^config reloaded$/);
    await consumeUntil(kafka.brokers, topic, (rs) => eventCount(rs) >= 20);

    // the file gone: the reload is rejected by key and file, the running producer keeps sending
    rmSync(pwFile);
    const rejected = await sighup(config(30), /^config reload (rejected|failed)/);
    const line = rejected.find((l) => l.code === 'EH_ERR_CONFIG_RELOAD');
    assert.ok(line !== undefined, 'an EH_ERR_CONFIG_RELOAD line');
    assert.equal(line.reason, 'EH_ERR_CONFIG_SECRET', JSON.stringify(line));
    assert.equal(line.key, 'kafka.sasl.password');
    assert.match(line.msg, /^config reload rejected, running config kept: .*kafka-password cannot be read: ENOENT/);
    assert.equal((await runDevice(url, 'dev-f2', 20, { window: 5 })).acked.length, 20);
    const records = await consumeUntil(kafka.brokers, topic, (rs) => eventCount(rs) >= 40);
    assert.equal(eventCount(records), 40);

    assert.equal((await daemon.stop('SIGTERM')).code, 0, daemon.describe());
    for (const secret of [PASSWORD, 'an-old-wrong-pw'])
      assert.ok(!daemon.lines.some((l) => JSON.stringify(l).includes(secret)), 'no password in any log line');
  },
);
