import { dirname } from 'node:path';
import { openBuffer } from './buffer/open.js';
import { BufferHousekeeping, type RouteTtl } from './buffer/housekeeping.js';
import type { BufferLimits, RouteLimits } from './buffer/policy.js';
import { DiskRoom } from './buffer/room.js';
import { publishDigest } from './buffer/store.js';
import { TieredStore, type SpillOptions } from './buffer/tiered.js';
import { FlashPacer } from './buffer/pacer.js';
import type { SqliteBufferStore } from './buffer/store.js';
import { GroupCommitWriter } from './buffer/writer.js';
import { changed, diffConfig, effectiveConfig, effectiveSecrets, type ConfigDiff } from './config/diff.js';
import { deepFreeze, type ResolvedConfig } from './config/load.js';
import { withPem } from './config/resolved.js';
import type { Config } from './config/schema.js';
import { processWriteBytes } from './core/blockdev.js';
import type { InboundMessage, MessageSink, SettleCallback } from './core/event.js';
import { LogThrottle, type Logger } from './core/log.js';
import { Forwarder } from './forward/forwarder.js';
import { createKafkaSink, type KafkaSinkConfig } from './forward/kafka.js';
import type { RecordSink } from './forward/sink.js';
import { createBrokerIngest } from './ingest/broker.js';
import { createClientIngest } from './ingest/client.js';
import type { Ingest } from './ingest/ingest.js';
import { Observer, type GatewayView } from './ops/observer.js';
import type { ApplyReport } from './ops/reload.js';
import { Scheduler } from './ops/schedule.js';
import { Stats } from './ops/stats.js';
import { effectiveRoutes } from './ops/telemetry.js';
import { UploadGate } from './ops/upload-gate.js';
import { tlsClientOptions } from './security/tls.js';
import { WindowClock, type GeneratedEventWriter } from './transform/clock.js';
import { DEAD_LETTER_ROUTE, Pipeline } from './transform/pipeline.js';

export type { ApplyReport } from './ops/reload.js';

export interface ShutdownReport {
  /** events still in the buffer, to be sent after the next start */
  readonly buffered: number;
  readonly timedOut: boolean;
}

type Secrets = ResolvedConfig['secrets'];

/** The `kafka` config section with its secrets' values in place of their specs: what the Kafka sink is made from. */
export type ResolvedKafkaConfig = Omit<Config['kafka'], 'tls' | 'sasl'> & Pick<KafkaSinkConfig, 'tls' | 'sasl'>;

/** Makes the upstream for a Kafka config; the seam a test uses to run without Kafka. */
export type RecordSinkFactory = (kafka: ResolvedKafkaConfig, onConnected: (up: boolean) => void) => RecordSink;

const NOTHING_LEASED: ReadonlySet<number> = new Set();

/**
 * Wires the stages and owns their order. The constructor compiles the
 * transform pipeline from the config and sets up observation; `start` opens
 * the buffer, applies the config as a diff from nothing (group-commit writer,
 * housekeeping, window clock, upload windows, schedules, forwarder), then
 * starts ingest last and the HTTP endpoint after it. `stop` goes the other
 * way: ingest stops accepting, pending commits are written and acknowledged,
 * ingest closes, the forwarder flushes within the deadline, the buffer closes
 * last. Observation lives in ops/observer.ts, buffer housekeeping in
 * buffer/housekeeping.ts, the window clock in transform/clock.ts.
 */
export class Gateway {
  readonly stats = new Stats();
  private store: TieredStore | null = null;
  /** what the buffer's filesystem can still take */
  private room: DiskRoom | null = null;
  private writer: GroupCommitWriter | null = null;
  /** the SQLite store under the tiered one: its delete delay follows the flash budget */
  private disk: SqliteBufferStore | null = null;
  /** paces group commits to buffer.flash_budget_bytes_per_day; null without a budget */
  private pacer: FlashPacer | null = null;
  private housekeeping: BufferHousekeeping | null = null;
  private forwarder: Forwarder | null = null;
  private ingest: Ingest | null = null;
  private pipeline: Pipeline;
  private readonly windowClock: WindowClock;
  private readonly uploads: UploadGate;
  private readonly observer: Observer;
  private scheduler: Scheduler | null = null;
  private limits: BufferLimits | null = null;
  private applying: Promise<unknown> = Promise.resolve();
  /** counts producers made: a replaced producer's late connection events are ignored */
  private sinkGeneration = 0;
  private stopping = false;
  private readonly throttle = new LogThrottle(10_000);

  constructor(
    private loaded: ResolvedConfig,
    private readonly log: Logger,
    private readonly createRecordSink: RecordSinkFactory = (kafka, onConnected) =>
      createKafkaSink(kafka, log, onConnected, this.stats),
  ) {
    const dl = loaded.config.dead_letters;
    this.pipeline = new Pipeline(
      effectiveRoutes(loaded.config),
      { gatewayId: loaded.gatewayId, deadLetterTopic: dl.forward ? dl.topic : null },
      {
        dropped: (route, step) => {
          const k = `${route}/${step}`;
          this.stats.transform_dropped_total[k] = (this.stats.transform_dropped_total[k] ?? 0) + 1;
        },
        deadLetter: (route, step, reason) => {
          this.stats.loss('dead_letter', route, 1);
          this.throttle.run(`dead:${route}:${step}`, (suppressed) => {
            this.log.warn(
              { code: 'EH_ERR_TRANSFORM_FAILED', route, step, reason, suppressed },
              'transform step failed; the input is a dead letter',
            );
          });
        },
      },
    );
    // closing windows can make dead letters too: the status page lists them like those of a message
    const windowWriter: GeneratedEventWriter = {
      submit: (events, settle, deadLetters) => {
        if (deadLetters !== undefined) this.observer.deadLetters(deadLetters);
        this.writer!.submit(events, settle, deadLetters);
      },
    };
    this.windowClock = new WindowClock(
      () => this.pipeline,
      () => (this.writer === null ? null : windowWriter),
      {
        windowEvents: (events) => {
          this.stats.transform_window_events_total += events;
        },
      },
    );
    this.uploads = new UploadGate(log, {
      bufferedEvents: () => this.observer.bufferStats()?.events,
      opened: () => this.forwarder?.notify(),
    });
    this.observer = new Observer(this.view(), this.stats, this.uploads, dirname(loaded.bufferPath), log);
  }

  get address(): string {
    return this.ingest?.address ?? '';
  }

  /** host:port of the HTTP endpoint; empty when it is off or not started. */
  get httpAddress(): string {
    return this.observer.httpAddress;
  }

  /** The config running now: the last one applied, with restart-only settings as they were at start. */
  get config(): Readonly<Config> {
    return this.loaded.config;
  }

  async start(): Promise<void> {
    const { config, gatewayId, bufferPath } = this.loaded;
    // the file may exceed the stored bytes by SQLite's page and index overhead; beyond this it refuses writes
    const opened = openBuffer(
      bufferPath,
      { synchronous: config.buffer.synchronous, maxFileBytes: Math.ceil(config.buffer.max_bytes * 1.25) + 8_388_608 },
      this.log,
    );
    const store = new TieredStore(opened.store);
    this.store = store;
    this.disk = opened.store;
    this.room = new DiskRoom(dirname(bufferPath), () => this.loaded.config.buffer.disk_reserve_bytes, store);
    if (opened.quarantined !== null) this.observer.storeDamaged(opened.quarantined.events ?? 0);
    this.pipeline.restore(opened.store.loadStates());
    const backlog = store.stats();
    this.log.info(
      {
        gateway_id: gatewayId,
        buffer: bufferPath,
        incarnation: opened.store.incarnation,
        buffered_events: backlog.events,
        buffered_bytes: backlog.bytes,
        max_bytes: config.buffer.max_bytes,
      },
      'buffer open',
    );
    this.housekeeping = new BufferHousekeeping(
      store,
      {
        inFlight: () => this.forwarder?.inFlight,
        freed: () => this.writer?.kick(),
      },
      {
        spilled: (events) => {
          this.stats.spilled_events_total += events;
        },
        expired: (route, events) => this.stats.loss('expired', route, events),
      },
      this.log,
    );

    await this.observer.sampleDisk();

    await this.apply(diffConfig(null, config), this.loaded.secrets);

    this.ingest = this.createIngest(this.handleMessage);
    await this.ingest.start();
    this.uploads.start();
    await this.observer.start();
  }

  /**
   * Applies a config change: at boot the diff from nothing, on reload the diff
   * from the running config. Live settings take effect between messages;
   * settings that need a restart keep their running values and are reported.
   * `secrets` are those the new config uses, read when it was loaded: the
   * stages rebuilt here get their values (no stage reads a secret itself).
   * One change at a time.
   */
  apply(diff: ConfigDiff, secrets: Secrets): Promise<ApplyReport> {
    const run = this.applying.then(() => this.applyNow(diff, secrets));
    this.applying = run.catch(() => undefined);
    return run;
  }

  private async applyNow(diff: ConfigDiff, next: Secrets): Promise<ApplyReport> {
    const config = deepFreeze(effectiveConfig(diff));
    const secrets = diff.from === null ? next : effectiveSecrets(this.loaded.secrets, next);
    const has = (key: string): boolean => changed(diff, key);
    const restartRequired = diff.changes.filter((c) => !c.live).map((c) => c.key);
    const previousFilters = this.pipeline.filters;
    this.loaded = Object.freeze({ ...this.loaded, config, secrets });

    if (has('log')) {
      this.log.level = config.log.level;
      this.observer.setStatsInterval(config.log.stats_interval_secs);
    }
    // the writer must exist before routes change: closed windows are committed through it
    if (
      has('buffer.commit') ||
      has('buffer.flash_budget_bytes_per_day') ||
      has('buffer.flash_budget_max_wait_ms') ||
      has('dead_letters.keep') ||
      this.writer === null
    )
      this.applyCommit(config);
    if (has('routes') && diff.from !== null) {
      this.applyRoutes(config);
      const c = config.ingest.client;
      const derived = config.ingest.mode === 'client' && c.topics.length === 0 && c.connections.length === 0;
      if (derived && !sameSet(previousFilters, this.pipeline.filters))
        restartRequired.push('ingest.client subscriptions (from routes)');
    }
    // the internal health route comes and goes with telemetry
    if (has('telemetry') && !has('routes') && diff.from !== null) this.applyRoutes(config);
    // the writer reads the limits through a callback: the next group commit sees the new ones
    if (has('routes') || has('buffer') || has('dead_letters') || has('telemetry')) this.limits = bufferLimits(config);
    if (has('routes') || has('buffer.memory')) this.housekeeping?.configureSpill(spillOptions(config));
    // a cron expression in schedules.ttl_sweep replaces the interval (applySchedules)
    if (has('routes') || has('buffer.ttl_secs') || has('schedules'))
      this.housekeeping?.configureSweep(routeTtls(config), config.schedules.ttl_sweep === '');
    if (has('kafka') || has('schedules')) this.uploads.apply(config.kafka, config.schedules.timezone);
    if (has('telemetry') || has('schedules') || has('routes') || has('buffer.ttl_secs')) this.applySchedules(config);
    if (has('routes')) this.windowClock.configure(config.routes.some((r) => r.steps.some((st) => 'window' in st)));
    // last: it waits for the batch in flight
    if (has('kafka')) await this.replaceForwarder(config, secrets);
    return { applied: diff.changes.filter((c) => c.live).map((c) => c.key), restartRequired };
  }

  /**
   * Swaps in the pipeline for the new routes in one assignment, so a message
   * is handled wholly by the old or the new routes. Unchanged routes keep their
   * state; the open windows of changed routes are closed and stored. At boot
   * the constructor's pipeline (restored from the buffer) is already right.
   */
  private applyRoutes(config: Config): void {
    const { pipeline, closed } = this.pipeline.replace(effectiveRoutes(config));
    this.pipeline = pipeline;
    this.windowClock.submit(closed);
  }

  /** Creates the group-commit writer at boot; on reload hands it the new commit settings. */
  private applyCommit(config: Config): void {
    const b = config.buffer;
    const budget = { bytesPerDay: b.flash_budget_bytes_per_day, maxWaitMs: b.flash_budget_max_wait_ms };
    if (budget.bytesPerDay === 0 || budget.maxWaitMs === 0) this.pacer = null;
    else if (this.pacer === null) this.pacer = new FlashPacer(budget, processWriteBytes);
    else this.pacer.reconfigure(budget);
    // delivered rows' deletes wait for a paced commit to carry them rather than take an fsync of their own
    this.disk?.setDeleteDelay(this.pacer === null ? 0 : budget.maxWaitMs * 2);
    const options = {
      pacer: this.pacer,
      maxWaitMs: config.buffer.commit.max_wait_ms,
      maxEvents: config.buffer.commit.max_events,
      minEvents: config.buffer.commit.min_events,
      maxBytes: config.buffer.commit.max_bytes,
      keepDeadLetters: config.dead_letters.keep,
      ...(config.ingest.mode === 'client'
        ? { maxMessages: Math.max(1, config.ingest.client.connections.length) * config.ingest.client.max_in_flight }
        : {}),
    };
    if (this.writer !== null) {
      this.writer.reconfigure(options);
      return;
    }
    this.writer = new GroupCommitWriter(
      this.store!,
      options,
      () => this.currentLimits(),
      () => this.forwarder?.inFlight ?? NOTHING_LEASED,
      {
        onCommit: (report) => {
          this.observer.committed(report);
          this.forwarder?.notify();
        },
        onError: (err, messages) => {
          this.observer.commitFailed();
          this.room?.invalidate();
          this.throttle.run('commit', (suppressed) => {
            this.log.error(
              { code: 'EH_ERR_STORE_WRITE', err: err.message, messages, suppressed },
              'buffer commit failed; publishes not acknowledged',
            );
          });
        },
        onFull: (route, events, how) => {
          this.stats.loss('dropped_full', route, events);
          this.throttle.run(`full:${route}:${how}`, (suppressed) => {
            this.log.warn(
              { code: 'EH_ERR_BUFFER_FULL', route, events, how, suppressed, ...this.bufferBounds() },
              how === 'evicted_oldest' ? 'buffer full: oldest events evicted' : 'buffer full: new events dropped',
            );
          });
        },
        onDownsampled: (route, events) => {
          this.stats.loss('downsampled', route, events);
          this.throttle.run(`full:${route}:downsampled`, (suppressed) => {
            this.log.warn(
              { code: 'EH_ERR_BUFFER_FULL', route, events, how: 'downsampled', suppressed, ...this.bufferBounds() },
              'buffer full: oldest events replaced by aggregates',
            );
          });
        },
        onHeld: (routes, messages) => {
          for (const route of routes) {
            this.throttle.run(`full:${route}:held`, (suppressed) => {
              this.log.warn(
                {
                  code: 'EH_ERR_BUFFER_FULL',
                  route,
                  how: 'held',
                  held_messages: messages,
                  suppressed,
                  ...this.bufferBounds(),
                },
                'buffer full: acknowledgements held',
              );
            });
          }
        },
        checkpoints: () => this.pipeline.checkpoints(),
        checkpointsLost: (states) => this.pipeline.checkpointsLost(states),
      },
    );
  }

  /** The full policy's bounds now: buffer.max_bytes, or less when the filesystem cannot take that much. */
  private currentLimits(): BufferLimits {
    const limits = this.limits ?? bufferLimits(this.loaded.config);
    const disk = this.room?.limitBytes() ?? Number.POSITIVE_INFINITY;
    return disk < limits.totalBytes ? { ...limits, diskBytes: Math.floor(disk) } : limits;
  }

  /** For EH_ERR_BUFFER_FULL lines: what is stored and the bound that applies. */
  private bufferBounds(): Record<string, unknown> {
    const max = this.loaded.config.buffer.max_bytes;
    const disk = this.room?.limitBytes() ?? Number.POSITIVE_INFINITY;
    return {
      buffered_bytes: this.store?.bytes() ?? 0,
      max_bytes: max,
      limit_bytes: Math.floor(Math.min(max, disk)),
      limited_by: disk < max ? 'disk' : 'max_bytes',
      disk_free_bytes: this.room?.freeBytes ?? null,
    };
  }

  /**
   * A new Kafka producer and forwarder. The old forwarder first finishes the
   * send in flight (rows leave the buffer only after Kafka acknowledged them),
   * so the new one starts at the oldest row still buffered: nothing lost,
   * nothing sent twice, nothing reordered. Commits go on meanwhile.
   */
  private async replaceForwarder(config: Config, secrets: Secrets): Promise<void> {
    // before the old forwarder stops: a fault here leaves it running
    const kafka = resolvedKafka(config.kafka, secrets);
    const old = this.forwarder;
    if (old !== null) await old.pause();
    const generation = ++this.sinkGeneration;
    const sink = this.createRecordSink(kafka, (up) => {
      if (generation !== this.sinkGeneration) return; // a replaced producer closing
      if (up !== this.stats.upstream_connected)
        this.log.info({ brokers: config.kafka.brokers }, up ? 'kafka connected' : 'kafka disconnected');
      this.stats.upstream_connected = up;
    });
    const forwarder = new Forwarder(
      this.store!,
      sink,
      {
        gatewayId: this.loaded.gatewayId,
        maxEventsPerRecord: config.kafka.max_events_per_record,
        maxEventsPerSend: config.kafka.max_events_per_send,
        maxSendBytes: config.kafka.max_send_bytes,
        lingerMs: config.kafka.linger_ms,
        retryInitialMs: config.kafka.retry.initial_ms,
        retryMaxMs: config.kafka.retry.max_ms,
        maxBytesPerSec: config.kafka.max_bytes_per_sec,
        minPriority: () => this.uploads.floor(),
      },
      this.stats,
      this.log.child({ stage: 'forward' }),
      () => this.writer?.kick(),
    );
    this.forwarder = forwarder;
    forwarder.start();
    sink.connect().catch((err: unknown) => {
      this.log.warn(
        { code: 'EH_ERR_UPSTREAM_SEND', brokers: config.kafka.brokers, err: (err as Error).message },
        'kafka not reachable yet; events are buffered and sent once it is',
      );
    });
  }

  /** The cron jobs (TTL sweep, store maintenance, telemetry) and the telemetry interval, rebuilt from the config (boot and reload). */
  private applySchedules(config: Config): void {
    this.scheduler?.stop();
    const scheduler = new Scheduler(config.schedules.timezone, this.log.child({ stage: 'schedule' }));
    this.scheduler = scheduler;
    const housekeeping = this.housekeeping;
    const ttls = routeTtls(config);
    if (housekeeping !== null && config.schedules.ttl_sweep !== '' && ttls.length > 0)
      scheduler.add({ name: 'ttl_sweep', cron: config.schedules.ttl_sweep, run: () => housekeeping.expire(ttls) });
    if (housekeeping !== null && config.schedules.store_maintenance !== '')
      scheduler.add({
        name: 'store_maintenance',
        cron: config.schedules.store_maintenance,
        run: () => housekeeping.maintain(),
      });
    const telemetry = config.telemetry;
    if (telemetry.enabled && telemetry.cron !== '')
      scheduler.add({ name: 'telemetry', cron: telemetry.cron, run: () => this.observer.reportHealth() });
    this.observer.setTelemetryInterval(
      telemetry.enabled && telemetry.cron === '' ? telemetry.interval_secs * 1000 : null,
    );
  }

  /** Stops in order within the deadline (ms since epoch). */
  async stop(deadline: number): Promise<ShutdownReport> {
    this.stopping = true;
    // timers first: nothing starts work in the background any more
    this.observer.stop();
    this.scheduler?.stop();
    this.scheduler = null;
    this.uploads.stop();
    this.housekeeping?.stop();
    this.windowClock.stop();
    const errors: unknown[] = [];
    const step = async (name: string, fn: () => unknown): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        errors.push(err);
        this.log.error({ step: name, err: (err as Error).message }, 'shutdown step failed');
      }
    };
    await step('close http', () => this.observer.closeHttp());
    // no connection is read any more; what was read is handed over
    await step('stop accepting', () => this.ingest?.stopAccepting());
    // a reload handing over to a new Kafka producer finishes first
    await step('finish reload', () => this.applying);
    // everything already read gets committed and acknowledged before connections close
    await step('final commit', () => this.writer?.flush());
    // held by a full buffer: not acknowledged, so the devices send them again after the restart
    await step('release held', () => this.writer?.releaseBlocked(new Error('gateway is shutting down')));
    await step('close ingest', () => this.ingest?.close());
    let buffered = 0;
    await step('flush upstream', async () => {
      buffered = (await this.forwarder?.stop(deadline)) ?? 0;
    });
    // what a memory route still holds goes to disk, so a clean restart loses nothing
    await step('spill memory', () => {
      const spilled = this.store?.spillAll() ?? 0;
      if (spilled > 0) this.log.info({ events: spilled }, 'memory events written to the buffer for the next start');
    });
    // delivered rows are counted until their deletes are written: write them, so the count is what stays
    await step('write deletes', () => {
      if (this.store === null) return;
      this.store.maintain();
      buffered = this.store.stats().events;
    });
    await step('close buffer', () => this.store?.close());
    this.observer.logStats();
    return { buffered, timedOut: Date.now() > deadline };
  }

  /**
   * The input handler: ingest calls it for every PUBLISH (and telemetry for
   * its health record). Drops what is too large, unrouted or a re-send, runs
   * the pipeline and hands the outcome to the group-commit writer, which
   * settles (acknowledges) the message once it is durable.
   */
  private readonly handleMessage: MessageSink = (message: InboundMessage, settle: SettleCallback) => {
    this.stats.received_messages_total++;
    const acked: SettleCallback = (err) => {
      if (err === null) this.stats.acked_messages_total++;
      settle(err);
    };
    if (message.payload.length > this.loaded.config.ingest.max_payload_bytes) {
      this.stats.dropped_oversize_total++;
      this.stats.loss('rejected', '-', 1);
      this.throttle.run(`oversize:${message.clientId}`, (suppressed) => {
        this.log.warn(
          {
            code: 'EH_ERR_INGEST_OVERSIZE',
            client_id: message.clientId,
            topic: message.topic,
            bytes: message.payload.length,
            limit: this.loaded.config.ingest.max_payload_bytes,
            suppressed,
          },
          'payload too large; dropped and counted',
        );
      });
      return acked(null);
    }
    // a QoS 1/2 publish is recognised by client id, packet id, topic and payload; a re-send (DUP) of
    // one already committed (its PUBACK was lost in a crash or a broken connection) makes no second event
    const publish =
      message.packetId !== undefined && message.qos > 0
        ? {
            clientId: message.clientId,
            packetId: message.packetId,
            digest: publishDigest(message.topic, message.payload),
          }
        : undefined;
    if (publish !== undefined && message.dup === true && this.store?.isResend(publish) === true) {
      this.stats.resends_acked_total++;
      return acked(null);
    }
    const out = this.pipeline.process(message);
    if (out.matched === 0) {
      this.stats.dropped_unrouted_total++;
      this.throttle.run(`unrouted:${message.topic}`, (suppressed) => {
        this.log.warn(
          { code: 'EH_ERR_INGEST_UNROUTED', client_id: message.clientId, topic: message.topic, suppressed },
          'no route matches this topic; dropped and counted',
        );
      });
      return acked(null);
    }
    // every route's steps took it out on purpose (filter, deadband, dedupe): nothing to make durable
    if (out.events.length === 0 && out.deadLetters.length === 0 && !out.stateful) return acked(null);
    this.observer.deadLetters(out.deadLetters);
    this.writer!.submit(out.events, acked, out.deadLetters, publish);
  };

  private createIngest(handler: MessageSink): Ingest {
    const { config, gatewayId, secrets } = this.loaded;
    const ingestLog = this.log.child({ stage: 'ingest' });
    if (config.ingest.mode === 'embedded') {
      return createBrokerIngest(
        {
          host: config.ingest.embedded.host,
          port: config.ingest.embedded.port,
          embedded: {
            ...config.ingest.embedded,
            tls: withPem(config.ingest.embedded.tls, secrets, 'ingest.embedded.tls'),
          },
          maxPayloadBytes: config.ingest.max_payload_bytes,
          stats: this.stats,
        },
        handler,
        ingestLog,
      );
    }
    const c = config.ingest.client;
    return createClientIngest(
      {
        url: c.url,
        clientId: c.client_id !== '' ? c.client_id : `edgehaul-${gatewayId}`,
        username: c.username,
        password: c.password !== undefined ? secrets.require('ingest.client.password') : undefined,
        tls: tlsClientOptions(withPem(c.tls, secrets, 'ingest.client.tls')),
        connections:
          c.connections.length > 0 ? c.connections : [c.topics.length > 0 ? c.topics : this.pipeline.filters],
        qos: c.qos,
        maxInFlight: c.max_in_flight,
        keepaliveSecs: c.keepalive_secs,
        reconnectMs: c.reconnect_ms,
      },
      handler,
      ingestLog,
    );
  }

  /** The read-only view observation works from. */
  private view(): GatewayView {
    // getters read the gateway's fields as they are at each call; the arrow keeps `this`
    const gateway = (): this => this;
    return {
      get config() {
        return gateway().loaded.config;
      },
      get gatewayId() {
        return gateway().loaded.gatewayId;
      },
      get buffer() {
        return gateway().store;
      },
      diskLimitBytes: () => this.room?.limitBytes() ?? Number.POSITIVE_INFINITY,
      get blockedMessages() {
        return gateway().writer?.blockedMessages ?? null;
      },
      get connectedClients() {
        return gateway().ingest?.connectedClients ?? 0;
      },
      get accepting() {
        return gateway().writer !== null && !gateway().stopping;
      },
      handleMessage: (message, settle) => this.handleMessage(message, settle),
      httpTls: () => {
        const { config, secrets } = this.loaded;
        if (!config.http.tls.enabled) return null;
        return { cert: secrets.require('http.tls.cert'), key: secrets.require('http.tls.key') };
      },
    };
  }
}

/** The full-buffer policy's view of the config. */
export function bufferLimits(config: Config): BufferLimits {
  const routes = new Map<string, RouteLimits>(
    effectiveRoutes(config).map((r) => [
      r.name,
      {
        priority: r.priority,
        whenFull: r.when_full,
        maxBytes: r.max_bytes ?? null,
        durability: r.durability,
        downsample: { bucketMs: r.downsample.bucket_secs * 1000 },
      },
    ]),
  );
  // dead letters wait below every route and make room first
  routes.set(DEAD_LETTER_ROUTE, {
    priority: DEAD_LETTER_PRIORITY,
    whenFull: 'drop_oldest',
    maxBytes: Math.min(config.dead_letters.max_bytes, config.buffer.max_bytes),
    durability: 'disk',
  });
  return { totalBytes: config.buffer.max_bytes, routes };
}

/** The Kafka section with the values of its secrets (TLS PEM texts, SASL password) in place of their specs. */
function resolvedKafka(kafka: Config['kafka'], secrets: Secrets): ResolvedKafkaConfig {
  const { sasl, tls, ...rest } = kafka;
  return {
    ...rest,
    tls: withPem(tls, secrets, 'kafka.tls'),
    sasl: sasl === undefined ? undefined : { ...sasl, password: secrets.require('kafka.sasl.password') },
  };
}

/** Below the lowest priority a route may have (-1000). */
const DEAD_LETTER_PRIORITY = -1001;
/** Spill settings when some route keeps its events in memory; else null (no spill timer). */
function spillOptions(config: Config): SpillOptions | null {
  if (!config.routes.some((r) => r.durability === 'memory')) return null;
  return { afterMs: config.buffer.memory.spill_after_ms, maxBytes: config.buffer.memory.max_bytes };
}

/** TTL per route (the internal health route included), for routes that have one. */
function routeTtls(config: Config): RouteTtl[] {
  return effectiveRoutes(config)
    .map((r) => ({ route: r.name, ttlMs: (r.ttl_secs ?? config.buffer.ttl_secs) * 1000 }))
    .filter((t) => t.ttlMs > 0);
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}
