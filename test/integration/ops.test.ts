import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { Daemon, testConfig } from '../support/daemon.js';
import { runDevice } from '../support/devices.js';
import { consumeUntil, eventCount, ROOT, startKafka } from '../support/kafka.js';
import { useSharedKafka } from '../support/shared-kafka.js';
import { waitFor } from '../support/poll.js';
import { freePort } from '../support/ports.js';
import { parsePrometheus, type PromSample } from '../support/prometheus.js';
import type { StatusReport } from '../../src/ops/status.js';
import type { HealthRecord } from '../../src/ops/telemetry.js';

const run = promisify(execFile);
const CLI = join(ROOT, 'dist/src/cli/main.js');

const kafka = useSharedKafka();

async function metrics(daemon: Daemon): Promise<PromSample[]> {
  const res = await fetch(`${daemon.httpUrl}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return parsePrometheus(await res.text()).samples;
}

function sample(samples: readonly PromSample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

async function healthz(daemon: Daemon): Promise<{ code: number; body: { status: string; reasons: string[] } }> {
  const res = await fetch(`${daemon.httpUrl}/healthz`);
  return { code: res.status, body: (await res.json()) as { status: string; reasons: string[] } };
}

async function status(daemon: Daemon): Promise<StatusReport> {
  const res = await fetch(`${daemon.httpUrl}/status`);
  assert.equal(res.status, 200);
  return (await res.json()) as StatusReport;
}

/** Runs the CLI; resolves with its exit code and output whatever the code. */
async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

test(
  '/metrics after N published events: Prometheus text whose counters equal N, per route and per reason; edgehaul status prints the same daemon',
  { timeout: 120_000 },
  async (t) => {
    const topic = `it.metrics.${Date.now()}`;
    const dir = Daemon.tempDir();
    const httpPort = await freePort();
    const daemon = new Daemon(
      dir,
      testConfig(kafka.brokers, {
        routes: [{ name: 'telemetry', match: 'devices/+device/#', topic, key: '{device}' }],
        http: { host: '127.0.0.1', port: httpPort },
      }),
    );
    t.after(async () => {
      await daemon.stop('SIGKILL').catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    });
    const url = await daemon.start();
    assert.equal(daemon.httpUrl, `http://127.0.0.1:${httpPort}`);

    const N = 120;
    const runs = await Promise.all(['m1', 'm2', 'm3'].map((d) => runDevice(url, d, N / 3, { window: 10 })));
    assert.equal(
      runs.reduce((n, r) => n + r.acked.length, 0),
      N,
    );
    await consumeUntil(kafka.brokers, topic, (rs) => eventCount(rs) >= N);
    const m = await waitFor('sent_events_total to reach N on /metrics', async () => {
      const s = await metrics(daemon);
      return (sample(s, 'edgehaul_sent_events_total') ?? 0) >= N ? s : undefined;
    });
    assert.equal(sample(m, 'edgehaul_received_messages_total'), N);
    assert.equal(sample(m, 'edgehaul_acked_messages_total'), N);
    assert.equal(sample(m, 'edgehaul_committed_events_total'), N);
    assert.equal(sample(m, 'edgehaul_sent_events_total'), N);
    assert.ok(sample(m, 'edgehaul_sent_bytes_total')! > 0);
    assert.equal(sample(m, 'edgehaul_upstream_up'), 1);
    assert.equal(sample(m, 'edgehaul_buffer_events', { route: 'telemetry' }), 0);
    for (const reason of ['dropped_full', 'expired', 'rejected', 'corrupt', 'dead_letter']) {
      assert.equal(sample(m, 'edgehaul_lost_events_total', { reason, route: 'telemetry' }), 0, reason);
    }
    assert.equal(sample(m, 'edgehaul_health_status', { status: 'ok' }), 1);
    assert.equal(sample(m, 'edgehaul_upload_window_open'), 1);
    assert.ok(sample(m, 'edgehaul_disk_free_bytes')! > 0);
    assert.ok(sample(m, 'process_resident_memory_bytes')! > 0);
    assert.equal(sample(m, 'edgehaul_info', { gateway_id: 'gw-test' }), 1);
    assert.equal(
      m.some((s) => Object.keys(s.labels).some((l) => /device|client/.test(l))),
      false,
      'no per-device labels',
    );

    // an unrouted message is counted under its own name
    const probe = await runDevice(url, 'probe', 1, { topic: () => 'nowhere/probe' });
    assert.equal(probe.acked.length, 1);
    assert.equal(sample(await metrics(daemon), 'edgehaul_dropped_unrouted_messages_total'), 1);

    const health = await healthz(daemon);
    assert.deepEqual(health, { code: 200, body: { status: 'ok', reasons: [] } });

    // edgehaul status, with the address from the config file, and as JSON
    const human = await cli(['status', '--config', daemon.configFile]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^edgehaul gw-test \(\d+\.\d+\.\d+\): ok$/m);
    for (const label of [
      'uptime',
      'devices',
      'rates',
      'buffer',
      'upstream',
      'drops',
      'dead letters',
      'cpu',
      'memory',
      'disk',
    ]) {
      assert.match(human.stdout, new RegExp(`^${label} +\\S`, 'm'), `line "${label}" in:\n${human.stdout}`);
    }
    assert.match(human.stdout, /^upstream +kafka connected/m);
    assert.match(human.stdout, /^buffer +0 events/m);
    const json = await cli(['status', '--url', daemon.httpUrl, '--json']);
    assert.equal(json.code, 0, json.stderr);
    const report = JSON.parse(json.stdout) as StatusReport;
    assert.equal(report.gateway_id, 'gw-test');
    assert.equal(report.health.status, 'ok');
    assert.equal(report.stats.received_messages_total, N + 1);
    assert.equal(report.buffer.events, 0);
    assert.deepEqual(report.drops.by_reason, {
      dropped_full: 0,
      expired: 0,
      rejected: 0,
      corrupt: 0,
      dead_letter: 0,
      downsampled: 0,
    });
    assert.equal(report.drops.unrouted_messages, 1);
    assert.deepEqual(report.dead_letters, { total: 0, stored: 0, recent: [] });
    assert.equal(report.upstream.connected, true);
    assert.ok(report.system.memory.process_rss_bytes > 0);
    assert.ok(report.system.disk!.free_bytes > 0);
    assert.ok(
      report.system.cpu_temperature_celsius === null || typeof report.system.cpu_temperature_celsius === 'number',
    );

    // and once it is gone: a clear message and exit 69
    assert.equal((await daemon.stop('SIGTERM')).code, 0, daemon.describe());
    const none = await cli(['status', '--config', daemon.configFile]);
    assert.equal(none.code, 69, `${none.stdout}${none.stderr}`);
    assert.match(
      none.stderr,
      new RegExp(
        `edgehaul is not running, or not answering at http://127\\.0\\.0\\.1:${httpPort}/status \\(ECONNREFUSED\\) \\[EH_ERR_STATUS_UNREACHABLE\\]`,
      ),
    );
    assert.equal(none.stdout, '');
  },
);

test(
  '/healthz: ok, degraded with upstream_down while Kafka is stopped and events wait, ok again once Kafka is back (and the backlog drains)',
  { timeout: 300_000 },
  async (t) => {
    const own = await startKafka();
    t.after(async () => {
      await own.stop().catch(() => undefined);
      rmSync(own.dir, { recursive: true, force: true });
    });
    const topic = `it.healthz.${Date.now()}`;
    const dir = Daemon.tempDir();
    const daemon = new Daemon(
      dir,
      testConfig(own.brokers, { routes: [{ name: 'r', match: 'devices/+device/#', topic, key: '{device}' }] }),
    );
    t.after(async () => {
      await daemon.stop('SIGKILL').catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    });
    const url = await daemon.start();
    await runDevice(url, 'h1', 10);
    await waitFor(
      'the first events delivered',
      async () => ((await status(daemon)).stats.sent_events_total as number) >= 10,
    );
    assert.deepEqual(await healthz(daemon), { code: 200, body: { status: 'ok', reasons: [] } });

    await own.stop();
    const during = await runDevice(url, 'h1', 20);
    assert.equal(during.acked.length, 20, 'acknowledged while Kafka is away: they wait in the buffer');
    const degraded = await waitFor(
      '/healthz degraded',
      async () => {
        const h = await healthz(daemon);
        return h.body.status === 'degraded' ? h : undefined;
      },
      120_000,
      200,
    );
    assert.equal(degraded.code, 200, 'degraded still answers 200');
    assert.deepEqual(degraded.body.reasons, ['upstream_down: kafka unreachable; events are waiting']);
    const m = await metrics(daemon);
    assert.equal(sample(m, 'edgehaul_health_reason', { reason: 'upstream_down' }), 1);
    assert.equal(sample(m, 'edgehaul_upstream_up'), 0);
    assert.equal(sample(m, 'edgehaul_buffer_events', { route: 'r' }), 20);

    await own.start();
    // ok again as soon as the producer is back; the backlog drains meanwhile
    await waitFor('/healthz ok again', async () => (await healthz(daemon)).body.status === 'ok', 120_000, 200);
    const s = await waitFor(
      'the backlog delivered',
      async () => {
        const r = await status(daemon);
        return r.buffer.events === 0 ? r : undefined;
      },
      60_000,
      200,
    );
    assert.equal(s.stats.sent_events_total, 30);
    assert.deepEqual(await healthz(daemon), { code: 200, body: { status: 'ok', reasons: [] } });
    const records = await consumeUntil(own.brokers, topic, (rs) => eventCount(rs) >= 30);
    assert.equal(new Set(records.flatMap((r) => r.batch.events.map((e) => e.seq))).size, 30);
  },
);

test(
  'health telemetry: records with the box figures arrive in Kafka on a short interval, through the pipeline',
  { timeout: 120_000 },
  async (t) => {
    const topic = `it.health.${Date.now()}`;
    const dir = Daemon.tempDir();
    const daemon = new Daemon(
      dir,
      testConfig(kafka.brokers, { telemetry: { enabled: true, interval_secs: 1, topic } }),
    );
    t.after(async () => {
      await daemon.stop('SIGKILL').catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    });
    await daemon.start();
    const records = await consumeUntil(kafka.brokers, topic, (rs) => eventCount(rs) >= 3, 60_000);
    const events = records.flatMap((r) => r.batch.events.map((e) => ({ record: r, event: e })));
    for (const { record, event } of events) {
      assert.equal(record.key, 'gw-test', 'one key per gateway: its records stay in order');
      assert.equal(record.batch.route, 'edgehaul.health');
      assert.equal(event.topic, '$edgehaul/health');
      const h = JSON.parse(event.payload.toString()) as HealthRecord;
      assert.equal(h.type, 'edgehaul.health');
      assert.equal(h.version, 1);
      assert.equal(h.gateway_id, 'gw-test');
      assert.ok(!Number.isNaN(Date.parse(h.at)));
      assert.ok(['ok', 'degraded', 'failing'].includes(h.health.status));
      assert.equal(typeof h.system.load_avg_1m, 'number');
      assert.ok(h.system.cpu_load_percent === null || typeof h.system.cpu_load_percent === 'number');
      assert.ok(h.system.cpu_temperature_celsius === null || typeof h.system.cpu_temperature_celsius === 'number');
      assert.ok(
        h.system.memory.total_bytes! > 0 &&
          h.system.memory.available_bytes! > 0 &&
          h.system.memory.process_rss_bytes > 0,
      );
      assert.ok(h.system.disk!.free_bytes > 0 && h.system.disk!.size_bytes >= h.system.disk!.free_bytes);
      assert.ok(
        h.system.network === null || (h.system.network.rx_bytes >= 0 && typeof h.system.network.iface === 'string'),
      );
      assert.ok(h.system.os_uptime_secs > 0);
      assert.equal(typeof h.buffer.events, 'number');
      assert.equal(h.buffer.max_bytes, 268_435_456);
      assert.equal(typeof h.upstream.connected, 'boolean');
      assert.equal(typeof h.counters.sent_events_total, 'number');
    }
    const seqs = events.map((e) => e.event.seq);
    assert.deepEqual(
      seqs,
      [...seqs].sort((a, b) => a - b),
      'in order',
    );
    // counted like any event
    const s = await status(daemon);
    assert.ok((s.stats.received_messages_total as number) >= 3);
    assert.ok((s.stats.sent_events_total as number) >= 3);
  },
);

/**
 * A six-field cron window over the seconds of every minute: closed from now
 * for at least CLOSED_SECS, then open for OPEN_SECS. The test never sleeps:
 * it waits for the window state the daemon reports.
 */
function windowFromNow(closedSecs: number, openSecs: number): { cron: string; opensAt: number } {
  const now = Date.now();
  const start = Math.ceil((now + closedSecs * 1000) / 1000);
  const seconds = Array.from({ length: openSecs }, (_, i) => (start + i) % 60).sort((a, b) => a - b);
  return { cron: `${seconds.join(',')} * * * * *`, opensAt: start * 1000 };
}

test(
  'upload window: outside it only the exempt high-priority route is delivered; the rest waits and goes once it opens',
  { timeout: 180_000 },
  async (t) => {
    const stamp = Date.now();
    const alarmsTopic = `it.window.alarms.${stamp}`;
    const telemetryTopic = `it.window.telemetry.${stamp}`;
    const CLOSED_SECS = 35;
    const window = windowFromNow(CLOSED_SECS, 20);
    const dir = Daemon.tempDir();
    const daemon = new Daemon(
      dir,
      testConfig(kafka.brokers, {
        kafka: {
          brokers: kafka.brokers,
          retry: { initial_ms: 100, max_ms: 1000 },
          connection_timeout_ms: 1000,
          request_timeout_ms: 10_000,
          upload_windows: [{ cron: window.cron, timezone: 'UTC' }],
          upload_exempt_priority: 10,
        },
        routes: [
          { name: 'alarms', match: 'devices/+device/alarm', topic: alarmsTopic, key: '{device}', priority: 10 },
          { name: 'telemetry', match: 'devices/+device/telemetry', topic: telemetryTopic, key: '{device}' },
        ],
      }),
    );
    t.after(async () => {
      await daemon.stop('SIGKILL').catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    });
    const url = await daemon.start();
    assert.ok(
      daemon.lines.some((l) => l.msg === 'upload window closed'),
      daemon.describe(),
    );

    const [telemetry, alarms] = await Promise.all([
      runDevice(url, 'w1', 40, { topic: (d) => `devices/${d}/telemetry` }),
      runDevice(url, 'w2', 5, { topic: (d) => `devices/${d}/alarm` }),
    ]);
    assert.equal(telemetry.acked.length + alarms.acked.length, 45);
    await consumeUntil(kafka.brokers, alarmsTopic, (rs) => eventCount(rs) >= 5);
    // the alarms went while the window was closed, and the telemetry waited
    const closed = await status(daemon);
    assert.ok(
      Date.now() < window.opensAt,
      `the window opened before the check (machine too slow for a ${CLOSED_SECS} s window)`,
    );
    assert.equal(closed.upstream.upload_window.configured, true);
    assert.equal(closed.upstream.upload_window.open, false);
    assert.equal(closed.buffer.routes.telemetry?.events, 40);
    assert.equal(closed.buffer.routes.alarms, undefined, 'nothing of the exempt route waits');
    assert.equal(closed.stats.sent_events_total, 5);
    assert.equal(closed.health.status, 'ok', 'waiting for a window is not a health problem');
    assert.equal(sample(await metrics(daemon), 'edgehaul_upload_window_open'), 0);

    await waitFor(
      'the upload window to open',
      async () => (await status(daemon)).upstream.upload_window.open,
      CLOSED_SECS * 1000 + 30_000,
      250,
    );
    const records = await consumeUntil(kafka.brokers, telemetryTopic, (rs) => eventCount(rs) >= 40, 60_000);
    assert.equal(eventCount(records), 40);
    const firstSent = daemon.lines.findIndex((l) => l.msg === 'upload window open');
    assert.ok(firstSent >= 0, 'the opening is logged');
    await waitFor('the buffer to be empty', async () => (await status(daemon)).buffer.events === 0, 30_000);
  },
);

test('edgehaul status without a daemon: clear message and exit 69; with http off: says so', async (t) => {
  const dir = Daemon.tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const none = await cli(['status', '--url', `http://127.0.0.1:${port}`]);
  assert.equal(none.code, 69);
  assert.match(none.stderr, /edgehaul is not running, or not answering at .*\/status \(ECONNREFUSED\)/);
  const file = join(dir, 'off.yaml');
  writeFileSync(file, stringify({ http: { enabled: false } }));
  const off = await cli(['status', '--config', file]);
  assert.equal(off.code, 78);
  assert.match(off.stderr, /http\.enabled is false/);
});

test(
  'schedules from the config: cron TTL sweeps, store maintenance and cron telemetry run (with schedules.timezone set)',
  { timeout: 120_000 },
  async (t) => {
    const dir = Daemon.tempDir();
    const daemon = new Daemon(
      dir,
      testConfig(['127.0.0.1:1'], {
        routes: [{ name: 'short', match: 'devices/+device/#', topic: 'it.never', key: '{device}', ttl_secs: 1 }],
        schedules: { timezone: 'Asia/Kathmandu', ttl_sweep: '* * * * * *', store_maintenance: '*/2 * * * * *' },
        telemetry: { enabled: true, cron: '* * * * * *', interval_secs: 3600 },
      }),
    );
    t.after(async () => {
      await daemon.stop('SIGKILL').catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    });
    const url = await daemon.start();
    const run = await runDevice(url, 's1', 5);
    assert.equal(run.acked.length, 5);
    // Kafka never answers: the events wait, pass their TTL and a sweep drops them, counted
    await waitFor(
      'the TTL sweep to expire the 5 events',
      async () =>
        sample(await metrics(daemon), 'edgehaul_lost_events_total', { reason: 'expired', route: 'short' }) === 5,
      30_000,
      200,
    );
    await waitFor(
      'a store maintenance run',
      () => daemon.lines.some((l) => l.msg === 'store maintenance done'),
      30_000,
    );
    // health records every second by cron, into the pipeline: received, committed and waiting in their route
    const s = await waitFor(
      'health records buffered',
      async () => {
        const r = await status(daemon);
        return (r.buffer.routes['edgehaul.health']?.events ?? 0) >= 2 ? r : undefined;
      },
      30_000,
      200,
    );
    assert.ok((s.stats.received_messages_total as number) >= 7);
    assert.equal(s.health.status, 'degraded');
    assert.deepEqual(s.health.reasons.map((r) => r.split(':')[0]).sort(), ['events_lost', 'upstream_down']);
    assert.equal((await daemon.stop('SIGTERM')).code, 0, daemon.describe());
  },
);

test(
  'reload: telemetry, health thresholds and upload windows change live; the HTTP listener needs a restart and keeps its port',
  { timeout: 120_000 },
  async (t) => {
    const topic = `it.reload-health.${Date.now()}`;
    const dir = Daemon.tempDir();
    const base = testConfig(kafka.brokers, {
      routes: [{ name: 'r', match: 'devices/+device/#', topic: `${topic}.events`, key: '{device}' }],
    });
    const daemon = new Daemon(dir, base);
    t.after(async () => {
      await daemon.stop('SIGKILL').catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    });
    await daemon.start();
    const before = daemon.httpUrl;
    assert.equal((await status(daemon)).upstream.upload_window.configured, false);

    const from = daemon.lines.length;
    daemon.writeConfig({
      ...base,
      telemetry: { enabled: true, interval_secs: 1, topic },
      health: { disk_min_free_bytes: Number.MAX_SAFE_INTEGER },
      kafka: { ...(base.kafka as Record<string, unknown>), upload_windows: [{ hours: '00:00-24:00' }] },
      http: { host: '127.0.0.1', port: 1 },
    });
    daemon.kill('SIGHUP');
    const reloaded = await waitFor(
      'the reload to be logged',
      () => daemon.lines.slice(from).find((l) => /^config reloaded/.test(l.msg)),
      60_000,
    );
    assert.deepEqual((reloaded.restart_required as string[]).sort(), ['http.port']);
    for (const key of ['telemetry', 'health.disk_min_free_bytes', 'kafka.upload_windows']) {
      assert.ok(
        (reloaded.applied as string[]).some((k) => k === key || k.startsWith(`${key}.`)),
        `${key} applied: ${JSON.stringify(reloaded.applied)}`,
      );
    }
    assert.equal(daemon.httpUrl, before, 'the listener stays where it was');
    const h = await healthz(daemon);
    assert.equal(h.code, 200);
    assert.equal(h.body.status, 'degraded');
    assert.ok(
      h.body.reasons.some((r) => r.startsWith('disk_low: ')),
      h.body.reasons.join('; '),
    );
    const s = await status(daemon);
    assert.deepEqual(s.upstream.upload_window, { configured: true, open: true, exempt_priority: 1001 });
    const records = await consumeUntil(kafka.brokers, topic, (rs) => eventCount(rs) >= 2, 60_000);
    assert.equal(records[0]!.batch.route, 'edgehaul.health');
  },
);
