import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RouteUsage } from '../buffer/store.js';
import { HEALTH_REASONS, type Health, type HealthReason } from './health.js';
import { LOSS_REASONS, type Stats } from './stats.js';
import type { FlashReport } from './flash.js';
import type { DiskSample } from './system.js';

/** What one scrape reads; built once per scrape by the observer (nothing is counted on the hot path for metrics). */
export interface OpsSnapshot {
  readonly now: number;
  readonly stats: Stats;
  /** configured routes (with the internal health route), so every loss series exists from the start */
  readonly routes: readonly string[];
  readonly usage: ReadonlyMap<string, RouteUsage> | null;
  readonly fileBytes: number | null;
  readonly maxBytes: number;
  /** the bound the full policy applies now: maxBytes, or less where the filesystem cannot take that much */
  readonly limitBytes?: number;
  readonly health: Health;
  readonly uploadWindowOpen: boolean;
  readonly disk: DiskSample | null;
  readonly cpuTemperature: number | null;
  readonly startedAt: number;
  /** flash wear (ops/flash.ts); null before the first sample */
  readonly flash?: FlashReport | null;
}

export interface StatMetric {
  /** full metric name; default `edgehaul_<field>` */
  readonly name?: string;
  readonly help: string;
}

/**
 * Stats fields with a name or help of their own. Every other numeric or
 * boolean field of Stats is exported too, generically: `edgehaul_<field>`, a
 * counter when the field ends in `_total`, else a gauge. So a new counter
 * added to Stats appears on /metrics without touching this file; add it here
 * only to give it a better help text. `null`: not exported this way.
 */
export const STAT_METRICS: Readonly<Record<string, StatMetric | null>> = {
  received_messages_total: { help: 'MQTT PUBLISH packets handed to the pipeline' },
  acked_messages_total: { help: 'PUBLISH packets settled for acknowledgement (committed, or dropped by a rule)' },
  committed_events_total: { help: 'events committed to the buffer' },
  commits_total: { help: 'group commits' },
  commit_errors_total: { help: 'failed group commits (publishes not acknowledged)' },
  sent_events_total: { help: 'events delivered to Kafka (acks=all)' },
  sent_records_total: { help: 'Kafka records (CBOR batches) delivered' },
  sent_bytes_total: { help: 'record value bytes delivered to Kafka' },
  send_errors_total: { help: 'failed sends to Kafka (kept and retried)' },
  store_read_errors_total: { help: 'failed reads or deletes of buffered events by the forwarder (kept and retried)' },
  upstream_unconfirmed_records_total: {
    help: 'records Kafka did not confirm with a partition and an offset (kept and sent again)',
  },
  upstream_reordered_records_total: {
    help: 'records Kafka confirmed after an unconfirmed record of the same key (order broken upstream)',
  },
  upstream_unconfirmed_at: null, // health reason upstream_unconfirmed
  dropped_unrouted_total: { name: 'edgehaul_dropped_unrouted_messages_total', help: 'messages that matched no route' },
  dropped_oversize_total: {
    name: 'edgehaul_dropped_oversize_messages_total',
    help: 'payloads above ingest.max_payload_bytes',
  },
  resends_acked_total: {
    name: 'edgehaul_resends_acked_messages_total',
    help: 'QoS 1/2 re-sends (DUP) of a publish already committed, acknowledged without a second event',
  },
  connected_clients: { help: 'MQTT clients connected' },
  upstream_connected: { name: 'edgehaul_upstream_up', help: '1 while the Kafka producer is connected' },
  blocked_messages: { help: 'messages whose acknowledgement is held by a full block route' },
  store_damaged_total: { help: 'damaged buffer databases moved aside at start' },
  spilled_events_total: { help: 'durability: memory events written to disk because the uplink fell behind' },
  disk_written_bytes_total: { help: 'bytes this process made the kernel write to storage (/proc/self/io)' },
  flash_paced_commits_total: {
    help: 'group commits held back by the flash write budget (buffer.flash_budget_bytes_per_day)',
  },
  flash_paced_seconds_total: { help: 'time group commits were held back by the flash write budget, summed' },
  auth_failures_total: {
    help: 'MQTT logins refused (unknown user, wrong password, anonymous not allowed, certificate not a user)',
  },
  acl_denied_total: {
    name: 'edgehaul_acl_denied_publishes_total',
    help: "publishes outside the client's ACL (refused; the connection is closed)",
  },
  acl_denied_subscriptions_total: { help: "subscriptions outside the client's ACL (refused in the SUBACK)" },
  rate_limited_total: {
    name: 'edgehaul_rate_limited_publishes_total',
    help: 'publishes held back because their client exceeded max_publish_per_sec',
  },
  connections_refused_total: {
    name: 'edgehaul_refused_connections_total',
    help: 'connections refused before login (max_connections, too many logins at once, shutting down)',
  },
  oversize_packets_total: { help: 'MQTT packets above max_packet_bytes (the connection is closed)' },
  malformed_publishes_total: {
    help: 'PUBLISH packets with a topic that is not well-formed UTF-8 or holds U+0000, or packet id 0 at QoS 1/2 (the connection is closed)',
  },
  tls_errors_total: {
    name: 'edgehaul_tls_handshake_errors_total',
    help: 'failed TLS handshakes on the embedded TLS listener',
  },
  connection_errors_total: {
    help: 'connections closed for a client error (malformed packets, protocol violations, resets)',
  },
  http_auth_failures_total: {
    help: 'logins to the HTTP endpoint refused (no or malformed credentials, wrong password, too many at once)',
  },
  upstream_auth_failures_total: { help: 'Kafka refused our SASL credentials' },
  upstream_auth_failed: { help: '1 while the last Kafka connect failed on authentication' },
  transform_window_events_total: { help: 'window aggregates emitted' },
  lost_events_total: null, // labelled by reason and route below
  transform_dropped_total: null, // labelled by route and step below
  last_loss_at: null, // exported as edgehaul_last_loss_timestamp_seconds
};

export const HEALTH_STATES = ['ok', 'degraded', 'failing'] as const;

/** The Stats fields exported generically or by the table, with their metric name and type. */
export function statMetricDefinitions(
  stats: Stats,
): Array<{ field: string; name: string; help: string; type: 'counter' | 'gauge' }> {
  const out: Array<{ field: string; name: string; help: string; type: 'counter' | 'gauge' }> = [];
  for (const [field, value] of Object.entries(stats)) {
    if (typeof value !== 'number' && typeof value !== 'boolean') continue;
    const entry = STAT_METRICS[field];
    if (entry === null) continue;
    const name = entry?.name ?? `edgehaul_${field}`;
    out.push({
      field,
      name,
      help: entry?.help ?? `Stats.${field}`,
      type: name.endsWith('_total') && typeof value === 'number' ? 'counter' : 'gauge',
    });
  }
  return out;
}

/**
 * A Prometheus registry whose values are all read at scrape time (collect
 * callbacks) from one snapshot per scrape, plus prom-client's default process
 * and Node.js metrics. Labels are route and reason only: their values come
 * from the config and fixed lists, never from devices.
 */
/**
 * Time from a group commit's start until its publishes are settled (the SQLite
 * write and its fsync): the part of a device's PUBACK latency that
 * is the disk's. Observed once per commit, not per event.
 */
export function commitDurationHistogram(): Histogram {
  return new Histogram({
    name: 'edgehaul_commit_duration_seconds',
    help: 'group commit duration until its publishes are settled (SQLite write and fsync)',
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2],
    registers: [],
  });
}

export function createMetricsRegistry(
  stats: Stats,
  snapshot: () => Promise<OpsSnapshot>,
  labels: { gatewayId: string; version: string },
  observed: readonly Histogram[] = [],
): Registry {
  const registry = new Registry();
  for (const h of observed) registry.registerMetric(h);
  collectDefaultMetrics({ register: registry });
  // prom-client starts every metric's collect in one synchronous pass per scrape: they share the
  // snapshot taken by the first, which is dropped once it settles, so the next scrape reads anew
  let current: Promise<OpsSnapshot> | null = null;
  const snap = (): Promise<OpsSnapshot> => {
    if (current === null) {
      const taken = snapshot();
      current = taken;
      taken
        .then(
          () => undefined,
          () => undefined,
        )
        .finally(() => {
          if (current === taken) current = null;
        });
    }
    return current;
  };

  for (const def of statMetricDefinitions(stats)) {
    const read = (s: OpsSnapshot): number =>
      Number((s.stats as unknown as Record<string, number | boolean>)[def.field] ?? 0);
    if (def.type === 'counter') {
      new Counter({
        name: def.name,
        help: def.help,
        registers: [registry],
        async collect() {
          const s = await snap();
          this.reset();
          this.inc(read(s));
        },
      });
    } else {
      new Gauge({
        name: def.name,
        help: def.help,
        registers: [registry],
        async collect() {
          this.set(read(await snap()));
        },
      });
    }
  }

  new Counter({
    name: 'edgehaul_lost_events_total',
    help: 'events that left (or never entered) the buffer other than by delivery, by reason and route',
    labelNames: ['reason', 'route'],
    registers: [registry],
    async collect() {
      const s = await snap();
      this.reset();
      for (const reason of LOSS_REASONS) {
        const byRoute = s.stats.lost_events_total[reason];
        for (const route of new Set([...s.routes, ...Object.keys(byRoute)]))
          this.inc({ reason, route }, byRoute[route] ?? 0);
      }
    },
  });
  new Counter({
    name: 'edgehaul_transform_dropped_events_total',
    help: 'events a transform step took out on purpose (filter, deadband, dedupe, absorbed by a window), by route and step',
    labelNames: ['route', 'step'],
    registers: [registry],
    async collect() {
      const s = await snap();
      this.reset();
      const byStep =
        (s.stats as unknown as { transform_dropped_total?: Record<string, number> }).transform_dropped_total ?? {};
      for (const [key, n] of Object.entries(byStep)) {
        // `<route>/<index>:<step>`: route names cannot hold a slash
        const cut = key.indexOf('/');
        this.inc({ route: key.slice(0, cut), step: key.slice(cut + 1) }, n);
      }
    },
  });
  new Gauge({
    name: 'edgehaul_last_loss_timestamp_seconds',
    help: 'time of the last counted loss (0: none since start)',
    registers: [registry],
    async collect() {
      this.set((await snap()).stats.last_loss_at / 1000);
    },
  });

  const perRoute = (name: string, help: string, pick: (u: RouteUsage, now: number) => number): void => {
    new Gauge({
      name,
      help,
      labelNames: ['route'],
      registers: [registry],
      async collect() {
        const s = await snap();
        this.reset();
        if (s.usage === null) return;
        for (const route of new Set([...s.routes, ...s.usage.keys()])) {
          const u = s.usage.get(route) ?? { commits: 0, events: 0, bytes: 0, oldestReceivedAt: null };
          this.set({ route }, pick(u, s.now));
        }
      },
    });
  };
  perRoute(
    'edgehaul_buffer_events',
    'events in the buffer file (delivered ones until their delete is committed)',
    (u) => u.events,
  );
  perRoute(
    'edgehaul_buffer_bytes',
    'stored bytes in the buffer file (delivered ones until their delete is committed)',
    (u) => u.bytes,
  );
  perRoute('edgehaul_buffer_oldest_age_seconds', 'age of the oldest waiting event (0 when none)', (u, now) =>
    u.oldestReceivedAt === null ? 0 : Math.max(0, (now - u.oldestReceivedAt) / 1000),
  );

  const gauge = (name: string, help: string, read: (s: OpsSnapshot) => number | null): void => {
    new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        const v = read(await snap());
        // NaN says "unknown" in Prometheus text; 0 would be a wrong reading (a temperature, a free space)
        this.set(v === null ? Number.NaN : v);
      },
    });
  };
  gauge('edgehaul_buffer_limit_bytes', 'buffer.max_bytes', (s) => s.maxBytes);
  gauge(
    'edgehaul_buffer_effective_limit_bytes',
    "the bound the full policy applies now: buffer.max_bytes, or less where the buffer's filesystem cannot take that much (buffer.disk_reserve_bytes kept free)",
    (s) => s.limitBytes ?? s.maxBytes,
  );
  gauge('edgehaul_buffer_file_bytes', 'size of the buffer database file', (s) => s.fileBytes);
  gauge('edgehaul_upstream_lag_seconds', 'age of the oldest event not yet delivered to Kafka (0 when none)', (s) => {
    let oldest: number | null = null;
    for (const u of s.usage?.values() ?? [])
      if (u.oldestReceivedAt !== null && (oldest === null || u.oldestReceivedAt < oldest)) oldest = u.oldestReceivedAt;
    return oldest === null ? 0 : Math.max(0, (s.now - oldest) / 1000);
  });
  gauge(
    'edgehaul_upload_window_open',
    '1 while forwarding is allowed by kafka.upload_windows (always 1 without windows)',
    (s) => (s.uploadWindowOpen ? 1 : 0),
  );
  gauge(
    'edgehaul_disk_free_bytes',
    "free bytes (for unprivileged users) on the buffer's filesystem",
    (s) => s.disk?.free_bytes ?? null,
  );
  gauge('edgehaul_disk_size_bytes', "size of the buffer's filesystem", (s) => s.disk?.size_bytes ?? null);
  // no series at all where the machine has no CPU thermal zone (containers, most VMs)
  new Gauge({
    name: 'edgehaul_cpu_temperature_celsius',
    help: 'CPU temperature (absent where the machine reports none)',
    labelNames: ['sensor'],
    registers: [registry],
    async collect() {
      const t = (await snap()).cpuTemperature;
      this.reset();
      if (t !== null) this.set({ sensor: 'cpu' }, t);
    },
  });
  gauge(
    'edgehaul_flash_process_bytes_per_day',
    'bytes a day this process writes to storage at its rate over the last hour (/proc/self/io write_bytes)',
    (s) => s.flash?.process_bytes_per_day ?? null,
  );
  gauge(
    'edgehaul_flash_life_days_left',
    "days of rated life the buffer's flash device has left at its current write rate (health.flash_endurance_bytes)",
    (s) => s.flash?.days_left ?? null,
  );
  gauge('edgehaul_flash_endurance_bytes', 'health.flash_endurance_bytes: the rated writes of the flash device', (s) =>
    s.flash === undefined || s.flash === null ? null : s.flash.endurance_bytes,
  );
  gauge(
    'edgehaul_flash_budget_bytes_per_day',
    'buffer.flash_budget_bytes_per_day (0: no budget)',
    (s) => s.flash?.budget_bytes_per_day ?? 0,
  );
  // no series where the buffer is on no block device (tmpfs, overlay): there is no device to name
  const perDevice = (name: string, help: string, pick: (f: FlashReport) => number | null): void => {
    new Gauge({
      name,
      help,
      labelNames: ['disk'],
      registers: [registry],
      async collect() {
        const f = (await snap()).flash ?? null;
        this.reset();
        const v = f === null ? null : pick(f);
        if (f?.device != null && v !== null) this.set({ disk: f.device.name }, v);
      },
    });
  };
  perDevice(
    'edgehaul_flash_device_written_bytes',
    "bytes written to the buffer's block device by everything since boot (/sys/block/<disk>/stat)",
    (f) => f.device_written_bytes,
  );
  perDevice(
    'edgehaul_flash_device_bytes_per_day',
    "bytes a day written to the buffer's block device by everything, at the rate over the last hour",
    (f) => f.device_bytes_per_day,
  );
  gauge('edgehaul_uptime_seconds', 'seconds since the gateway started', (s) => (s.now - s.startedAt) / 1000);

  new Gauge({
    name: 'edgehaul_health_status',
    help: '1 for the current health state (ok, degraded, failing), 0 for the others',
    labelNames: ['status'],
    registers: [registry],
    async collect() {
      const h = (await snap()).health;
      for (const status of HEALTH_STATES) this.set({ status }, h.status === status ? 1 : 0);
    },
  });
  new Gauge({
    name: 'edgehaul_health_reason',
    help: '1 while a health reason holds',
    labelNames: ['reason'],
    registers: [registry],
    async collect() {
      const h = (await snap()).health;
      for (const reason of Object.keys(HEALTH_REASONS) as HealthReason[])
        this.set({ reason }, h.codes.includes(reason) ? 1 : 0);
    },
  });
  new Gauge({
    name: 'edgehaul_info',
    help: 'constant 1; labels name the gateway and the version',
    labelNames: ['gateway_id', 'version'],
    registers: [registry],
  }).set({ gateway_id: labels.gatewayId, version: labels.version }, 1);
  return registry;
}
