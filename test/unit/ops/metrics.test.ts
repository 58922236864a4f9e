import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  commitDurationHistogram,
  createMetricsRegistry,
  statMetricDefinitions,
  type OpsSnapshot,
} from '../../../src/ops/metrics.js';
import { evaluateHealth } from '../../../src/ops/health.js';
import { Stats } from '../../../src/ops/stats.js';
import { parsePrometheus } from '../../support/prometheus.js';

/** What another engineer adds to Stats later: it must show up without touching the exporter. */
class MoreStats extends Stats {
  example_added_events_total = 0;
  example_added_gauge = 0;
}

function snapshotOf(stats: Stats, now = 1_000_000): OpsSnapshot {
  return {
    now,
    stats,
    routes: ['alarms', 'telemetry'],
    usage: new Map([['telemetry', { commits: 2, events: 30, bytes: 4000, oldestReceivedAt: now - 12_500 }]]),
    fileBytes: 65_536,
    maxBytes: 1_048_576,
    health: evaluateHealth(
      {
        now,
        upstreamConnected: false,
        buffer: { events: 30, bytes: 4000 },
        maxBytes: 1_048_576,
        lastLossAt: 0,
        blockedMessages: 0,
        storeDamagedAt: 0,
        lastCommitAt: 1,
        lastCommitErrorAt: 0,
        diskFreeBytes: 5e9,
      },
      { bufferRatio: 0.8, diskMinFreeBytes: 1e8, lossWindowMs: 300_000 },
    ),
    uploadWindowOpen: false,
    disk: { path: '/var/lib/edgehaul', size_bytes: 1e10, free_bytes: 5e9 },
    cpuTemperature: null,
    startedAt: now - 60_000,
  };
}

test('every Stats counter is exported by name and type, new fields included without a table entry', () => {
  const stats = new MoreStats();
  const defs = new Map(statMetricDefinitions(stats).map((d) => [d.field, d]));
  assert.deepEqual(defs.get('example_added_events_total'), {
    field: 'example_added_events_total',
    name: 'edgehaul_example_added_events_total',
    help: 'Stats.example_added_events_total',
    type: 'counter',
  });
  assert.equal(defs.get('connected_clients')?.type, 'gauge');
  assert.equal(defs.get('upstream_connected')?.name, 'edgehaul_upstream_up');
  assert.equal(defs.get('last_loss_at'), undefined, 'a timestamp in ms is not exported as is');
  assert.equal(defs.get('lost_events_total'), undefined, 'exported with labels instead');
  for (const d of defs.values()) assert.match(d.name, /^edgehaul_[a-z0-9_]+$/);
});

test('the scrape has the expected names, units, labels and values', async () => {
  const stats = new MoreStats();
  stats.received_messages_total = 7;
  stats.sent_bytes_total = 1234;
  stats.example_added_events_total = 3;
  stats.loss('dropped_full', 'telemetry', 4);
  stats.loss('dead_letter', 'alarms', 2);
  stats.loss('rejected', '-', 1);
  stats.transform_dropped_total['telemetry/1:deadband'] = 6;
  const commits = commitDurationHistogram();
  commits.observe(0.0004);
  commits.observe(0.003);
  commits.observe(0.15);
  const registry = createMetricsRegistry(
    stats,
    async () => snapshotOf(stats),
    { gatewayId: 'gw-1', version: '9.9.9' },
    [commits],
  );
  const text = await registry.metrics();
  const m = parsePrometheus(text);
  const value = (name: string, labels: Record<string, string> = {}): number | undefined =>
    m.samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;

  assert.equal(value('edgehaul_received_messages_total'), 7);
  assert.equal(m.types.get('edgehaul_commit_duration_seconds'), 'histogram');
  assert.equal(value('edgehaul_commit_duration_seconds_bucket', { le: '0.0005' }), 1);
  assert.equal(value('edgehaul_commit_duration_seconds_bucket', { le: '0.005' }), 2);
  assert.equal(value('edgehaul_commit_duration_seconds_bucket', { le: '0.2' }), 3);
  assert.equal(value('edgehaul_commit_duration_seconds_count'), 3);
  assert.equal(m.types.get('edgehaul_received_messages_total'), 'counter');
  assert.equal(value('edgehaul_sent_bytes_total'), 1234);
  assert.equal(value('edgehaul_example_added_events_total'), 3, 'a new Stats field is picked up');
  assert.equal(value('edgehaul_lost_events_total', { reason: 'dropped_full', route: 'telemetry' }), 4);
  assert.equal(value('edgehaul_lost_events_total', { reason: 'dead_letter', route: 'alarms' }), 2);
  assert.equal(value('edgehaul_lost_events_total', { reason: 'rejected', route: '-' }), 1);
  assert.equal(
    value('edgehaul_lost_events_total', { reason: 'expired', route: 'alarms' }),
    0,
    'every reason and configured route exists from the start',
  );
  assert.equal(value('edgehaul_transform_dropped_events_total', { route: 'telemetry', step: '1:deadband' }), 6);
  assert.equal(value('edgehaul_buffer_events', { route: 'telemetry' }), 30);
  assert.equal(value('edgehaul_buffer_events', { route: 'alarms' }), 0);
  assert.equal(value('edgehaul_buffer_bytes', { route: 'telemetry' }), 4000);
  assert.equal(value('edgehaul_buffer_oldest_age_seconds', { route: 'telemetry' }), 12.5);
  assert.equal(value('edgehaul_upstream_lag_seconds'), 12.5);
  assert.equal(value('edgehaul_upstream_up'), 0);
  assert.equal(value('edgehaul_upload_window_open'), 0);
  assert.equal(value('edgehaul_disk_free_bytes'), 5e9);
  assert.equal(value('edgehaul_uptime_seconds'), 60);
  assert.equal(value('edgehaul_health_status', { status: 'degraded' }), 1);
  assert.equal(value('edgehaul_health_status', { status: 'ok' }), 0);
  assert.equal(value('edgehaul_health_reason', { reason: 'upstream_down' }), 1);
  assert.equal(value('edgehaul_info', { gateway_id: 'gw-1', version: '9.9.9' }), 1);
  assert.equal(
    m.samples.some((s) => s.name === 'edgehaul_cpu_temperature_celsius'),
    false,
    'no temperature series where none is known',
  );
  assert.ok(value('process_resident_memory_bytes')! > 0, 'default process metrics');

  // names: edgehaul_<name>_<unit>; counters end in _total; labels only from a small fixed set
  for (const [name, type] of m.types) {
    if (!name.startsWith('edgehaul_')) continue;
    if (type === 'counter') assert.match(name, /_total$/, name);
    assert.doesNotMatch(name, /[A-Z]/, name);
  }
  const labelNames = new Set(
    m.samples.filter((s) => s.name.startsWith('edgehaul_')).flatMap((s) => Object.keys(s.labels)),
  );
  const allowed = new Set(['route', 'reason', 'step', 'status', 'sensor', 'gateway_id', 'version', 'le']); // le: a histogram's fixed buckets
  assert.deepEqual(
    [...labelNames].filter((l) => !allowed.has(l)),
    [],
    'no per-device (or other unbounded) labels',
  );
});

test('values are read at scrape time, not pushed on the hot path; one snapshot per scrape', async () => {
  const stats = new Stats();
  let snapshots = 0;
  const registry = createMetricsRegistry(
    stats,
    async () => {
      snapshots++;
      return snapshotOf(stats);
    },
    { gatewayId: 'g', version: 'v' },
  );
  stats.sent_events_total = 5;
  assert.equal(
    parsePrometheus(await registry.metrics()).samples.find((s) => s.name === 'edgehaul_sent_events_total')?.value,
    5,
  );
  stats.sent_events_total = 9;
  assert.equal(
    parsePrometheus(await registry.metrics()).samples.find((s) => s.name === 'edgehaul_sent_events_total')?.value,
    9,
  );
  assert.equal(snapshots, 2, 'every metric of a scrape shares its snapshot');
});
