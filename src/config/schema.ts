import { z } from 'zod';
import { stepSchema } from '../transform/steps/index.js';

const port = z.number().int().min(0).max(65535);
const durationMs = (max: number) => z.number().int().min(0).max(max);

/** A secret given inline (discouraged), from an environment variable or from a file (systemd LoadCredential). */
export const secretSchema = z.strictObject({
  value: z.string().optional(),
  env: z.string().min(1).optional(),
  file: z.string().min(1).optional(),
}).refine((s) => [s.value, s.env, s.file].filter((v) => v !== undefined).length === 1, {
  message: 'give exactly one of value, env or file',
});

export const routeSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . - only'),
  /** MQTT topic filters; `+name` and `#name` capture levels into fields. */
  match: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
  /** Kafka topic for this route's batches. */
  topic: z.string().regex(/^[A-Za-z0-9._-]{1,249}$/, 'a Kafka topic name: letters, digits, . _ - (at most 249)'),
  /** Partition key template: `{field}` from captures, `{client_id}` or `{topic}`; events with one key stay in order. */
  key: z.string().min(1).default('{client_id}'),
  /** Higher first: sent before, and evicts the data of, lower-priority routes. */
  priority: z.number().int().min(-1000).max(1000).default(0),
  /** When the buffer (or this route's max_bytes) is full: hold acks, drop the oldest, or drop the new events. */
  when_full: z.enum(['block', 'drop_oldest', 'drop_newest']).default('block'),
  /** This route's share of the buffer at most; unset: only buffer.max_bytes applies. */
  max_bytes: z.number().int().min(4096).optional(),
  /** Events older than this are dropped (counted as expired); unset: buffer.ttl_secs. */
  ttl_secs: z.number().int().min(1).optional(),
  /** disk: acknowledged after an fsync'd commit. memory: acknowledged from RAM, written only if the uplink falls behind. */
  durability: z.enum(['disk', 'memory']).default('disk'),
  /** Transform steps, in order (README "Transform reference"); none: the payload is forwarded as received. */
  steps: z.array(stepSchema).default([]),
});

export const configSchema = z.strictObject({
  gateway: z.strictObject({
    /** Empty: the machine id (/etc/machine-id), else the hostname. */
    id: z.string().regex(/^[A-Za-z0-9._:-]{0,128}$/, 'letters, digits, . _ : - (at most 128)').default(''),
  }).prefault({}),
  ingest: z.strictObject({
    mode: z.enum(['embedded', 'client']).default('embedded'),
    max_payload_bytes: z.number().int().min(1).max(268_435_455).default(262_144),
    embedded: z.strictObject({
      host: z.string().min(1).default('0.0.0.0'),
      port: port.default(1883),
    }).prefault({}),
    client: z.strictObject({
      url: z.string().regex(/^(mqtt|mqtts|tcp|tls|ws|wss):\/\//, 'an mqtt:// or mqtts:// URL').default('mqtt://127.0.0.1:1883'),
      /** Empty: `edgehaul-<gateway id>`; with several connections a suffix `-<n>` is added. */
      client_id: z.string().default(''),
      username: z.string().optional(),
      password: secretSchema.optional(),
      /** Topic filters to subscribe to (plain MQTT filters); empty: the filters of the routes. */
      topics: z.array(z.string().min(1)).default([]),
      qos: z.union([z.literal(0), z.literal(1), z.literal(2)]).default(1),
      /**
       * Several connections, each with its own filters, to commit in parallel: mqtt.js hands a
       * connection's next message over only after the previous one was acknowledged. A device's
       * topics must stay within one entry to keep its order. Empty: one connection with `topics`.
       */
      connections: z.array(z.array(z.string().min(1)).min(1)).max(64).default([]),
      keepalive_secs: z.number().int().min(0).max(65535).default(30),
      reconnect_ms: durationMs(600_000).default(2000),
    }).prefault({}),
  }).prefault({}),
  buffer: z.strictObject({
    /** SQLite file; relative paths resolve against $STATE_DIRECTORY (systemd) or ./.edgehaul */
    path: z.string().min(1).default('buffer.db'),
    /** full: every commit survives a power cut. normal: survives a crash of the process, not of the OS. */
    synchronous: z.enum(['full', 'normal']).default('full'),
    /** Stored bytes at most (all routes); the database file stays within about 1.1x of it. */
    max_bytes: z.number().int().min(1_048_576).default(268_435_456),
    /** Events older than this are dropped (counted as expired); 0: kept until delivered. */
    ttl_secs: z.number().int().min(0).default(0),
    /** For routes with durability: memory. */
    memory: z.strictObject({
      /** RAM for events not yet sent; above it, the oldest go to disk. */
      max_bytes: z.number().int().min(65_536).default(8_388_608),
      /** Events still unsent after this long go to disk: the uplink is not keeping up. */
      spill_after_ms: durationMs(3_600_000).default(2000),
    }).prefault({}),
    commit: z.strictObject({
      /**
       * How long a group commit gathers events. Each commit rewrites a few SQLite pages whatever it
       * holds, so this is the trade between PUBACK latency and flash writes per event; 0 commits as
       * soon as the current burst of packets is read.
       */
      max_wait_ms: durationMs(1000).default(10),
      /** Once this many events wait, commit without waiting max_wait_ms: a busy gateway never waits. */
      min_events: z.number().int().min(1).max(100_000).default(64),
      max_events: z.number().int().min(1).max(100_000).default(5000),
      /** Commit at once when this many payload bytes are waiting. */
      max_bytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(1_048_576),
    }).prefault({}),
  }).prefault({}),
  kafka: z.strictObject({
    brokers: z.array(z.string().regex(/^[^\s:]+:\d+$/, 'host:port')).min(1).default(['127.0.0.1:9092']),
    client_id: z.string().min(1).default('edgehaul'),
    compression: z.enum(['none', 'gzip']).default('none'),
    connection_timeout_ms: durationMs(120_000).default(3000),
    request_timeout_ms: durationMs(300_000).default(30_000),
    /** Events per Kafka record (one CBOR batch) at most. */
    max_events_per_record: z.number().int().min(1).max(100_000).default(1000),
    /** Events read from the buffer per send at most. */
    max_events_per_send: z.number().int().min(1).max(1_000_000).default(20_000),
    /**
     * Bytes of record values per produce request at most. Kafka refuses a partition's record
     * batch above the topic's max.message.bytes (1 MiB by default), so stay below it.
     */
    max_send_bytes: z.number().int().min(16_384).max(100 * 1024 * 1024).default(900_000),
    /** Wait this long after new events arrive before sending, to fill batches. */
    linger_ms: durationMs(60_000).default(100),
    /** Upload cap for metered links, in record bytes per second; 0: as fast as Kafka takes it. */
    max_bytes_per_sec: z.number().int().min(0).default(0),
    retry: z.strictObject({
      initial_ms: durationMs(600_000).default(250),
      max_ms: durationMs(3_600_000).default(30_000),
    }).prefault({}),
  }).prefault({}),
  routes: z.array(routeSchema).min(1).default([
    { name: 'default', match: '#', topic: 'edgehaul.events', key: '{client_id}', priority: 0, when_full: 'block' as const, durability: 'disk' as const, steps: [] },
  ]),
  dead_letters: z.strictObject({
    /** Send dead letters to Kafka (besides keeping the newest for `edgehaul inspect`). */
    forward: z.boolean().default(true),
    topic: z.string().regex(/^[A-Za-z0-9._-]{1,249}$/, 'a Kafka topic name: letters, digits, . _ - (at most 249)').default('edgehaul.deadletters'),
    /** Buffer bytes dead letters may hold while waiting for Kafka; the oldest go first. */
    max_bytes: z.number().int().min(65_536).default(16_777_216),
    /** Dead letters kept for `edgehaul inspect --dead-letters` (payloads cut to 4 KiB). */
    keep: z.number().int().min(0).max(100_000).default(1000),
  }).prefault({}),
  log: z.strictObject({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
    /** A `stats` line with counters and buffer depth every so often; 0 turns it off. */
    stats_interval_secs: z.number().min(0).max(86_400).default(60),
  }).prefault({}),
  reload: z.strictObject({
    /** Also reload when the config file changes (SIGHUP and `systemctl reload` always work). */
    watch: z.boolean().default(false),
    /** Editors write a file in several steps: reload once it has been quiet this long. */
    debounce_ms: durationMs(60_000).default(500),
  }).prefault({}),
  shutdown: z.strictObject({
    /** How long SIGTERM may take in all, including flushing to Kafka. */
    timeout_secs: z.number().min(1).max(600).default(15),
  }).prefault({}),
}).superRefine((cfg, ctx) => {
  const seen = new Set<string>();
  cfg.routes.forEach((r, i) => {
    if (seen.has(r.name)) ctx.addIssue({ code: 'custom', path: ['routes', i, 'name'], message: `duplicate route name "${r.name}"` });
    seen.add(r.name);
  });
  if (cfg.ingest.max_payload_bytes > cfg.kafka.max_send_bytes - 4096) {
    ctx.addIssue({ code: 'custom', path: ['ingest', 'max_payload_bytes'], message: `must be at most kafka.max_send_bytes - 4096 (${cfg.kafka.max_send_bytes - 4096}): a larger event could never be sent` });
  }
  if (cfg.dead_letters.max_bytes > cfg.buffer.max_bytes) {
    ctx.addIssue({ code: 'custom', path: ['dead_letters', 'max_bytes'], message: `must be at most buffer.max_bytes (${cfg.buffer.max_bytes})` });
  }
  cfg.routes.forEach((r, i) => {
    if (r.max_bytes !== undefined && r.max_bytes > cfg.buffer.max_bytes) {
      ctx.addIssue({ code: 'custom', path: ['routes', i, 'max_bytes'], message: `must be at most buffer.max_bytes (${cfg.buffer.max_bytes})` });
    }
  });
  if (cfg.kafka.retry.max_ms < cfg.kafka.retry.initial_ms) {
    ctx.addIssue({ code: 'custom', path: ['kafka', 'retry', 'max_ms'], message: 'must be >= initial_ms' });
  }
});

export type Config = z.infer<typeof configSchema>;
export type RouteConfig = z.infer<typeof routeSchema>;
export type Secret = z.infer<typeof secretSchema>;
