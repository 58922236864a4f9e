import { z } from 'zod';
import { stepSchema } from '../transform/steps/index.js';
import { describeHashProblem } from '../security/password.js';
import { validate as validCron } from 'node-cron';

const port = z.number().int().min(0).max(65535);
const durationMs = (max: number) => z.number().int().min(0).max(max);

/** A secret given inline (discouraged), from an environment variable or from a file (systemd LoadCredential). */
export const secretSchema = z
  .strictObject({
    value: z.string().optional(),
    env: z.string().min(1).optional(),
    file: z.string().min(1).optional(),
  })
  .refine((s) => [s.value, s.env, s.file].filter((v) => v !== undefined).length === 1, {
    message: 'give exactly one of value, env or file',
  });

/** TLS material: PEM from a file, an environment variable or systemd LoadCredential (see secretSchema). */
const pemSchema = secretSchema;
const topicFilter = z
  .string()
  .min(1)
  .max(65_535)
  .refine(
    (f) =>
      f
        .split('/')
        .every((level, i, all) => level === '+' || (level === '#' && i === all.length - 1) || !/[+#]/.test(level)),
    {
      message: 'an MQTT filter: "+" and "#" fill a whole level, "#" only last',
    },
  );

/** A user of the embedded broker: a password hash (`edgehaul hash-password`), a client certificate (CN = username), or both. */
export const brokerUserSchema = z.strictObject({
  username: z.string().min(1).max(256),
  /** `scrypt$N$r$p$salt$hash`; absent: this user can only log in with a client certificate. */
  password_hash: z
    .string()
    .optional()
    .superRefine((v, ctx) => {
      const problem = v === undefined ? null : describeHashProblem(v);
      if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
    }),
  /** Shorthand for an acl rule with this username. */
  publish: z.array(topicFilter).optional(),
  subscribe: z.array(topicFilter).optional(),
});

/** A login of the HTTP endpoint (status page, /status, /metrics, /healthz). */
export const httpUserSchema = z.strictObject({
  username: z
    .string()
    .min(1)
    .max(256)
    .refine((u) => !u.includes(':'), { message: 'HTTP Basic user names cannot hold ":"' }),
  password_hash: z.string().superRefine((v, ctx) => {
    const problem = describeHashProblem(v);
    if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
  }),
});

export const aclRuleSchema = z.strictObject({
  /** exact username, or `*`: any authenticated user; absent: anyone (anonymous too) */
  username: z.string().min(1).optional(),
  /** glob with `*` (and `%u`), e.g. `sensor-*` */
  client_id: z.string().min(1).optional(),
  /** topics this rule lets clients publish to: MQTT filters with %u (username) and %c (client id) */
  publish: z.array(topicFilter).default([]),
  /** filters clients may subscribe to (or to narrower ones) */
  subscribe: z.array(topicFilter).default([]),
});

export const embeddedTlsSchema = z.strictObject({
  enabled: z.boolean().default(false),
  host: z.string().min(1).default('0.0.0.0'),
  port: port.default(8883),
  cert: pemSchema.optional(),
  key: pemSchema.optional(),
  /** CA certificates that sign client certificates (for certificate login) */
  ca: pemSchema.optional(),
  /** true: the TLS handshake fails without a client certificate signed by `ca` */
  require_client_cert: z.boolean().default(false),
});

export const embeddedWebSocketSchema = z.strictObject({
  enabled: z.boolean().default(false),
  host: z.string().min(1).default('0.0.0.0'),
  port: port.default(8080),
  path: z.string().regex(/^\//, 'starts with /').default('/mqtt'),
});

export const brokerAuthSchema = z.strictObject({
  /** Clients without credentials may connect (still subject to acl rules without a username). */
  allow_anonymous: z.boolean().default(false),
  users: z.array(brokerUserSchema).default([]),
  acl: z.array(aclRuleSchema).default([]),
});

export const tlsClientSchema = z.strictObject({
  enabled: z.boolean().default(false),
  /** CA certificates to trust; absent: the system's */
  ca: pemSchema.optional(),
  /** client certificate and key, for brokers that ask for one */
  cert: pemSchema.optional(),
  key: pemSchema.optional(),
  /** name to check the server certificate against (and SNI); absent: the host */
  servername: z.string().min(1).optional(),
  /** false accepts any server certificate: tests only */
  reject_unauthorized: z.boolean().default(true),
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
  /**
   * When the buffer (or this route's max_bytes) is full: hold acks, drop the oldest, drop the new events,
   * or replace the oldest by aggregates per key and time bucket (downsample).
   */
  when_full: z.enum(['block', 'drop_oldest', 'drop_newest', 'downsample']).default('block'),
  /** when_full: downsample: the first bucket length; it doubles while the route stays full. */
  downsample: z
    .strictObject({
      bucket_secs: z.number().int().min(1).max(86_400).default(60),
    })
    .prefault({}),
  /** This route's share of the buffer at most; unset: only buffer.max_bytes applies. */
  max_bytes: z.number().int().min(4096).optional(),
  /** Events older than this are dropped (counted as expired); unset: buffer.ttl_secs. */
  ttl_secs: z.number().int().min(1).optional(),
  /** disk: acknowledged after an fsync'd commit. memory: acknowledged from RAM, written only if the uplink falls behind. */
  durability: z.enum(['disk', 'memory']).default('disk'),
  /** Transform steps, in order (README "Transform reference"); none: the payload is forwarded as received. */
  steps: z.array(stepSchema).default([]),
});

/** An IANA time zone name (Intl knows it); empty: the system's zone. */
const timezone = z
  .string()
  .refine((tz) => tz === '' || validTimezone(tz), { message: 'an IANA time zone such as "Europe/Berlin" or "UTC"' });

/** A node-cron expression: 5 fields (minute first) or 6 (second first). */
const cronExpression = z.string().refine((c) => validCron(c), {
  message: 'a cron expression: "minute hour day-of-month month day-of-week", optionally with seconds first',
});

/** One upload window: forward while the clock (in `timezone`) is inside `hours`, or during every minute (second) `cron` matches. */
export const uploadWindowSchema = z
  .strictObject({
    /** "HH:MM-HH:MM", local to `timezone`; may span midnight ("22:00-06:00"); the end is excluded. */
    hours: z
      .string()
      .regex(/^([01]\d|2[0-3]):[0-5]\d-(([01]\d|2[0-3]):[0-5]\d|24:00)$/, '"HH:MM-HH:MM", e.g. "01:00-05:00"')
      .optional(),
    /** Open during every minute (5 fields) or second (6 fields) the expression matches, e.g. "* 1-4 * * 1-5". */
    cron: cronExpression.optional(),
    /** Empty: schedules.timezone. */
    timezone: timezone.default(''),
  })
  .refine((w) => (w.hours === undefined) !== (w.cron === undefined), { message: 'give exactly one of hours or cron' })
  .refine((w) => w.hours === undefined || w.hours.slice(0, 5) !== w.hours.slice(6), {
    message: 'the window is empty: start equals end',
  });

export const configSchema = z
  .strictObject({
    gateway: z
      .strictObject({
        /** Empty: the machine id (/etc/machine-id), else the hostname. */
        id: z
          .string()
          .regex(/^[A-Za-z0-9._:-]{0,128}$/, 'letters, digits, . _ : - (at most 128)')
          .default(''),
      })
      .prefault({}),
    ingest: z
      .strictObject({
        mode: z.enum(['embedded', 'client']).default('embedded'),
        max_payload_bytes: z.number().int().min(1).max(268_435_455).default(262_144),
        embedded: z
          .strictObject({
            host: z.string().min(1).default('0.0.0.0'),
            port: port.default(1883),
            /** false: no plain-TCP listener (only TLS and/or WebSocket) */
            plain_tcp: z.boolean().default(true),
            tls: embeddedTlsSchema.prefault({}),
            websocket: embeddedWebSocketSchema.prefault({}),
            auth: brokerAuthSchema.prefault({}),
            /** Connections at most, all listeners together; more get CONNACK 3 (server unavailable). 0: no limit. */
            max_connections: z.number().int().min(0).max(1_000_000).default(1000),
            /** MQTT packets above this close the connection before they are buffered; 0: ingest.max_payload_bytes + 65,600 (room for the topic). */
            max_packet_bytes: z.number().int().min(0).max(268_435_455).default(0),
            /** PUBLISH packets per second per connection; a faster client is slowed (its packets wait), others are not. 0: no limit. */
            max_publish_per_sec: z.number().min(0).max(1_000_000).default(0),
            /** Burst above the rate a client may send at once; 0: one second's worth. */
            publish_burst: z.number().int().min(0).max(1_000_000).default(0),
          })
          .prefault({}),
        client: z
          .strictObject({
            url: z
              .string()
              .regex(/^(mqtt|mqtts|tcp|tls|ws|wss):\/\//, 'an mqtt:// or mqtts:// URL')
              .default('mqtt://127.0.0.1:1883'),
            /** Empty: `edgehaul-<gateway id>`; with several connections a suffix `-<n>` is added. */
            client_id: z.string().default(''),
            username: z.string().optional(),
            password: secretSchema.optional(),
            /** for mqtts:// (or wss://) URLs: CA, client certificate, server name */
            tls: tlsClientSchema.prefault({}),
            /** Topic filters to subscribe to (plain MQTT filters); empty: the filters of the routes. */
            topics: z.array(z.string().min(1)).default([]),
            qos: z.union([z.literal(0), z.literal(1), z.literal(2)]).default(1),
            /**
             * Several connections, each with its own filters. A device's topics must stay within one
             * entry to keep its order. Empty: one connection with `topics`.
             */
            connections: z
              .array(z.array(z.string().min(1)).min(1))
              .max(64)
              .default([]),
            /**
             * Messages of one connection taken in before their commit acknowledged them, at most: set it
             * to the broker's in-flight window (Mosquitto's `max_inflight_messages`). A full window
             * commits at once; more are not read until acknowledgements make room.
             */
            max_in_flight: z.number().int().min(1).max(65535).default(20),
            keepalive_secs: z.number().int().min(0).max(65535).default(30),
            reconnect_ms: durationMs(600_000).default(2000),
          })
          .prefault({}),
      })
      .prefault({}),
    buffer: z
      .strictObject({
        /** SQLite file; relative paths resolve against $STATE_DIRECTORY (systemd) or ./.edgehaul */
        path: z.string().min(1).default('buffer.db'),
        /** full: every commit survives a power cut. normal: survives a crash of the process, not of the OS. */
        synchronous: z.enum(['full', 'normal']).default('full'),
        /** Stored bytes at most (all routes); the database file stays within about 1.1x of it. */
        max_bytes: z.number().int().min(1_048_576).default(268_435_456),
        /**
         * Free space the buffer leaves on its filesystem: when the disk is smaller than max_bytes (or
         * filled by others), the full policy applies once only this much is left.
         */
        disk_reserve_bytes: z.number().int().min(0).default(8_388_608),
        /** Events older than this are dropped (counted as expired); 0: kept until delivered. */
        ttl_secs: z.number().int().min(0).default(0),
        /** For routes with durability: memory. */
        memory: z
          .strictObject({
            /** RAM for events not yet sent; above it, the oldest go to disk. */
            max_bytes: z.number().int().min(65_536).default(8_388_608),
            /** Events still unsent after this long go to disk: the uplink is not keeping up. */
            spill_after_ms: durationMs(3_600_000).default(2000),
          })
          .prefault({}),
        /**
         * Bytes a day the daemon may write to storage, on average (its /proc/self/io write_bytes): group
         * commits wait for the budget, so a quiet gateway commits less often and PUBACKs wait longer
         * instead of the flash wearing. 0: no budget. docs/configuration.md suggests figures per card size.
         */
        flash_budget_bytes_per_day: z.number().int().min(0).default(0),
        /** Under a budget, a message waits at most this long for its commit (and so its PUBACK). */
        flash_budget_max_wait_ms: durationMs(60_000).default(1000),
        commit: z
          .strictObject({
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
            max_bytes: z
              .number()
              .int()
              .min(1024)
              .max(64 * 1024 * 1024)
              .default(1_048_576),
          })
          .prefault({}),
      })
      .prefault({}),
    kafka: z
      .strictObject({
        brokers: z
          .array(z.string().regex(/^[^\s:]+:\d+$/, 'host:port'))
          .min(1)
          .default(['127.0.0.1:9092']),
        client_id: z.string().min(1).default('edgehaul'),
        compression: z.enum(['none', 'gzip', 'snappy', 'lz4', 'zstd']).default('none'),
        connection_timeout_ms: durationMs(120_000).default(3000),
        request_timeout_ms: durationMs(300_000).default(30_000),
        /**
         * How long the producer keeps retrying a record (through leader elections and reconnects) before
         * the send counts as failed and the forwarder's own backoff takes over; the rows stay buffered.
         */
        delivery_timeout_ms: durationMs(3_600_000).default(120_000),
        /** Events per Kafka record (one CBOR batch) at most. */
        max_events_per_record: z.number().int().min(1).max(100_000).default(1000),
        /** Events read from the buffer per send at most. */
        max_events_per_send: z.number().int().min(1).max(1_000_000).default(20_000),
        /**
         * Bytes of record values per produce request at most. Kafka refuses a partition's record
         * batch above the topic's max.message.bytes (1 MiB by default), so stay below it.
         */
        max_send_bytes: z
          .number()
          .int()
          .min(16_384)
          .max(100 * 1024 * 1024)
          .default(900_000),
        /** Wait this long after new events arrive before sending, to fill batches. */
        linger_ms: durationMs(60_000).default(100),
        /** Upload cap for metered links, in record bytes per second; 0: as fast as Kafka takes it. */
        max_bytes_per_sec: z.number().int().min(0).default(0),
        tls: tlsClientSchema.prefault({}),
        sasl: z
          .strictObject({
            mechanism: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']),
            username: z.string().min(1),
            password: secretSchema,
          })
          .optional(),
        retry: z
          .strictObject({
            initial_ms: durationMs(600_000).default(250),
            max_ms: durationMs(3_600_000).default(30_000),
          })
          .prefault({}),
        /** Metered links: forward only inside these windows (any of them); empty: always. */
        upload_windows: z.array(uploadWindowSchema).max(32).default([]),
        /** Routes with at least this priority (alarms) are forwarded outside the upload windows too. */
        upload_exempt_priority: z.number().int().min(-1000).max(1001).default(1001),
      })
      .prefault({}),
    routes: z
      .array(routeSchema)
      .min(1)
      .default([
        {
          name: 'default',
          match: '#',
          topic: 'edgehaul.events',
          key: '{client_id}',
          priority: 0,
          when_full: 'block' as const,
          downsample: { bucket_secs: 60 },
          durability: 'disk' as const,
          steps: [],
        },
      ]),
    dead_letters: z
      .strictObject({
        /** Send dead letters to Kafka (besides keeping the newest for `edgehaul inspect`). */
        forward: z.boolean().default(true),
        topic: z
          .string()
          .regex(/^[A-Za-z0-9._-]{1,249}$/, 'a Kafka topic name: letters, digits, . _ - (at most 249)')
          .default('edgehaul.deadletters'),
        /** Buffer bytes dead letters may hold while waiting for Kafka (at most buffer.max_bytes); the oldest go first. */
        max_bytes: z.number().int().min(65_536).default(16_777_216),
        /** Dead letters kept for `edgehaul inspect --dead-letters` (payloads cut to 4 KiB). */
        keep: z.number().int().min(0).max(100_000).default(1000),
      })
      .prefault({}),
    log: z
      .strictObject({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
        /** A `stats` line with counters and buffer depth every so often; 0 turns it off. */
        stats_interval_secs: z.number().min(0).max(86_400).default(60),
      })
      .prefault({}),
    reload: z
      .strictObject({
        /** Also reload when the config file changes (SIGHUP and `systemctl reload` always work). */
        watch: z.boolean().default(false),
        /** Editors write a file in several steps: reload once it has been quiet this long. */
        debounce_ms: durationMs(60_000).default(500),
      })
      .prefault({}),
    shutdown: z
      .strictObject({
        /** How long SIGTERM may take in all, including flushing to Kafka. */
        timeout_secs: z.number().min(1).max(600).default(15),
      })
      .prefault({}),
    /** The local HTTP endpoint: the status page (/), /metrics (Prometheus), /healthz, /status (edgehaul status). */
    http: z
      .strictObject({
        enabled: z.boolean().default(true),
        /** Loopback by default (no login). Any other address needs auth.users: every path then asks for a login. */
        host: z.string().min(1).default('127.0.0.1'),
        /** 0 picks a free port (tests); the bound address is logged ("http listening"). */
        port: port.default(9464),
        auth: z
          .strictObject({
            /** HTTP Basic logins: the same scrypt hashes as the broker's users (`edgehaul hash-password`). */
            users: z.array(httpUserSchema).default([]),
          })
          .prefault({}),
        /** HTTPS with PEM cert and key, as ingest.embedded.tls. */
        tls: z
          .strictObject({
            enabled: z.boolean().default(false),
            cert: pemSchema.optional(),
            key: pemSchema.optional(),
          })
          .prefault({}),
      })
      .prefault({}),
    health: z
      .strictObject({
        /** degraded when the buffer holds more than this share of buffer.max_bytes. */
        buffer_ratio: z.number().min(0).max(1).default(0.8),
        /** degraded when the buffer's filesystem has less free space than this. */
        disk_min_free_bytes: z.number().int().min(0).default(104_857_600),
        /** degraded for this long after any counted loss. */
        loss_window_secs: z.number().int().min(1).max(86_400).default(300),
        /**
         * Bytes the buffer's flash device is rated to take (its TBW). The default, 10 TB, is an estimate
         * for a typical 32 GB consumer SD card (about 300 full writes); use the vendor's figure.
         */
        flash_endurance_bytes: z.number().int().min(0).default(10_000_000_000_000),
        /** degraded (flash_wear) when the device has fewer days of life left at its current write rate; 0: never. */
        flash_min_days: z.number().min(0).max(36_500).default(30),
      })
      .prefault({}),
    /** Gateway health records (CPU, memory, disk, temperature, network, buffer) sent to Kafka through the normal pipeline. */
    telemetry: z
      .strictObject({
        enabled: z.boolean().default(false),
        /** A record this often; ignored when `cron` is set. */
        interval_secs: z.number().int().min(1).max(86_400).default(60),
        /** A cron expression instead of the interval (schedules.timezone applies). */
        cron: cronExpression.or(z.literal('')).default(''),
        /** Kafka topic of the internal route `edgehaul.health`. */
        topic: z
          .string()
          .regex(/^[A-Za-z0-9._-]{1,249}$/, 'a Kafka topic name: letters, digits, . _ - (at most 249)')
          .default('edgehaul.health'),
        /** Priority of the internal route: at or above kafka.upload_exempt_priority it is sent outside upload windows. */
        priority: z.number().int().min(-1000).max(1000).default(0),
      })
      .prefault({}),
    schedules: z
      .strictObject({
        /** Time zone of every cron expression and upload window without its own; empty: the system's. */
        timezone: timezone.default(''),
        /** When TTL sweeps run; empty: every quarter of the shortest TTL (1-10 s). */
        ttl_sweep: cronExpression.or(z.literal('')).default(''),
        /** SQLite WAL checkpoint (TRUNCATE) and PRAGMA optimize; empty: never. */
        store_maintenance: cronExpression.or(z.literal('')).default('30 3 * * *'),
      })
      .prefault({}),
  })
  .superRefine((cfg, ctx) => {
    const seen = new Set<string>();
    cfg.routes.forEach((r, i) => {
      if (seen.has(r.name))
        ctx.addIssue({ code: 'custom', path: ['routes', i, 'name'], message: `duplicate route name "${r.name}"` });
      seen.add(r.name);
    });
    if (cfg.ingest.max_payload_bytes > cfg.kafka.max_send_bytes - 4096) {
      ctx.addIssue({
        code: 'custom',
        path: ['ingest', 'max_payload_bytes'],
        message: `must be at most kafka.max_send_bytes - 4096 (${cfg.kafka.max_send_bytes - 4096}): a larger event could never be sent`,
      });
    }
    cfg.routes.forEach((r, i) => {
      if (r.when_full === 'downsample' && r.durability === 'memory') {
        ctx.addIssue({
          code: 'custom',
          path: ['routes', i, 'when_full'],
          message: 'downsample needs durability: disk (aggregates replace rows of the SQLite buffer)',
        });
      }
      if (r.max_bytes !== undefined && r.max_bytes > cfg.buffer.max_bytes) {
        ctx.addIssue({
          code: 'custom',
          path: ['routes', i, 'max_bytes'],
          message: `must be at most buffer.max_bytes (${cfg.buffer.max_bytes})`,
        });
      }
    });
    const emb = cfg.ingest.embedded;
    if (emb.tls.enabled && (emb.tls.cert === undefined || emb.tls.key === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['ingest', 'embedded', 'tls'],
        message: 'a TLS listener needs cert and key',
      });
    }
    if (emb.tls.require_client_cert && emb.tls.ca === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['ingest', 'embedded', 'tls', 'ca'],
        message: 'require_client_cert needs the CA that signs the client certificates',
      });
    }
    if (cfg.ingest.mode === 'embedded' && !emb.plain_tcp && !emb.tls.enabled && !emb.websocket.enabled) {
      ctx.addIssue({
        code: 'custom',
        path: ['ingest', 'embedded', 'plain_tcp'],
        message: 'no listener left: enable plain_tcp, tls or websocket',
      });
    }
    if (emb.max_packet_bytes !== 0 && emb.max_packet_bytes < cfg.ingest.max_payload_bytes) {
      ctx.addIssue({
        code: 'custom',
        path: ['ingest', 'embedded', 'max_packet_bytes'],
        message: `must be 0 or at least ingest.max_payload_bytes (${cfg.ingest.max_payload_bytes})`,
      });
    }
    const names = new Set<string>();
    emb.auth.users.forEach((u, i) => {
      if (names.has(u.username))
        ctx.addIssue({
          code: 'custom',
          path: ['ingest', 'embedded', 'auth', 'users', i, 'username'],
          message: `duplicate user "${u.username}"`,
        });
      names.add(u.username);
    });
    if (cfg.http.tls.enabled && (cfg.http.tls.cert === undefined || cfg.http.tls.key === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['http', 'tls'], message: 'HTTPS needs cert and key' });
    }
    const httpNames = new Set<string>();
    cfg.http.auth.users.forEach((u, i) => {
      if (httpNames.has(u.username))
        ctx.addIssue({
          code: 'custom',
          path: ['http', 'auth', 'users', i, 'username'],
          message: `duplicate user "${u.username}"`,
        });
      httpNames.add(u.username);
    });
    for (const which of ['ingest', 'kafka'] as const) {
      const tls = which === 'ingest' ? cfg.ingest.client.tls : cfg.kafka.tls;
      if ((tls.cert === undefined) !== (tls.key === undefined)) {
        ctx.addIssue({
          code: 'custom',
          path: which === 'ingest' ? ['ingest', 'client', 'tls'] : ['kafka', 'tls'],
          message: 'give both cert and key, or neither',
        });
      }
    }
    cfg.routes.forEach((r, i) => {
      if (r.name === HEALTH_ROUTE)
        ctx.addIssue({
          code: 'custom',
          path: ['routes', i, 'name'],
          message: `"${HEALTH_ROUTE}" is the internal route of telemetry; choose another name`,
        });
    });
    if (cfg.kafka.delivery_timeout_ms <= cfg.kafka.request_timeout_ms) {
      ctx.addIssue({
        code: 'custom',
        path: ['kafka', 'delivery_timeout_ms'],
        message: 'must be above request_timeout_ms',
      });
    }
    if (cfg.kafka.retry.max_ms < cfg.kafka.retry.initial_ms) {
      ctx.addIssue({ code: 'custom', path: ['kafka', 'retry', 'max_ms'], message: 'must be >= initial_ms' });
    }
  });

export type Config = z.infer<typeof configSchema>;
export type UploadWindowConfig = z.infer<typeof uploadWindowSchema>;

/** Name of the internal route that carries telemetry records. */
export const HEALTH_ROUTE = 'edgehaul.health';

export function validTimezone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}
export type RouteConfig = z.infer<typeof routeSchema>;
export type Secret = z.infer<typeof secretSchema>;
export type TlsClientConfig = z.infer<typeof tlsClientSchema>;
export type EmbeddedConfig = Config['ingest']['embedded'];
