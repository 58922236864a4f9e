import type { InboundMessage, MessageSink, SettleCallback } from './core/event.js';
import type { LoadedConfig } from './config/load.js';
import { readSecret } from './config/load.js';
import { openSqliteStore, type BufferStore } from './buffer/store.js';
import { GroupCommitWriter } from './buffer/writer.js';
import { Forwarder } from './forward/forwarder.js';
import { createKafkaSink } from './forward/kafka.js';
import type { RecordSink } from './forward/sink.js';
import { createBrokerIngest } from './ingest/broker.js';
import { createClientIngest } from './ingest/client.js';
import type { Ingest } from './ingest/ingest.js';
import { LogThrottle, type Logger } from './ops/log.js';
import { Stats } from './ops/stats.js';
import { compileRoutes, type Router } from './transform/router.js';

export interface ShutdownReport {
  /** events still in the buffer, to be sent after the next start */
  readonly buffered: number;
  readonly timedOut: boolean;
}

/**
 * Wires the stages and owns their order: store, forwarder, then ingest on the
 * way up; ingest, pending commits, forwarder flush, store on the way down.
 * The constructor only initialises fields.
 */
export class Gateway {
  readonly stats = new Stats();
  private store: BufferStore | null = null;
  private writer: GroupCommitWriter | null = null;
  private forwarder: Forwarder | null = null;
  private ingest: Ingest | null = null;
  private statsTimer: NodeJS.Timeout | null = null;
  private readonly router: Router;
  private readonly throttle = new LogThrottle(10_000);

  constructor(
    private readonly loaded: LoadedConfig,
    private readonly log: Logger,
    private readonly sinkFactory: (onConnected: (up: boolean) => void) => RecordSink = (onConnected) =>
      createKafkaSink(loaded.config.kafka, log, onConnected),
  ) {
    this.router = compileRoutes(loaded.config.routes);
  }

  get address(): string {
    return this.ingest?.address ?? '';
  }

  async start(): Promise<void> {
    const { config, gatewayId, bufferPath } = this.loaded;
    const store = openSqliteStore(bufferPath, { synchronous: config.buffer.synchronous });
    this.store = store;
    const backlog = store.stats();
    this.log.info({ gateway_id: gatewayId, buffer: bufferPath, buffered_events: backlog.events }, 'buffer open');

    const sink = this.sinkFactory((up) => {
      if (up !== this.stats.upstream_connected) this.log.info({ brokers: config.kafka.brokers }, up ? 'kafka connected' : 'kafka disconnected');
      this.stats.upstream_connected = up;
    });
    const forwarder = new Forwarder(store, sink, {
      gatewayId,
      maxEventsPerRecord: config.kafka.max_events_per_record,
      maxEventsPerSend: config.kafka.max_events_per_send,
      maxSendBytes: config.kafka.max_send_bytes,
      lingerMs: config.kafka.linger_ms,
      retryInitialMs: config.kafka.retry.initial_ms,
      retryMaxMs: config.kafka.retry.max_ms,
    }, this.stats, this.log.child({ stage: 'forward' }));
    this.forwarder = forwarder;

    this.writer = new GroupCommitWriter(
      store,
      { maxWaitMs: config.buffer.commit.max_wait_ms, maxEvents: config.buffer.commit.max_events, maxBytes: config.buffer.commit.max_bytes },
      (report) => {
        this.stats.commits_total++;
        this.stats.committed_events_total += report.events;
        forwarder.notify();
      },
      (err, messages) => {
        this.stats.commit_errors_total++;
        this.throttle.run('commit', (suppressed) => {
          this.log.error({ code: 'EH_ERR_STORE_WRITE', err: err.message, messages, suppressed }, 'buffer commit failed; publishes not acknowledged');
        });
      },
    );
    forwarder.start();
    sink.connect().catch((err: unknown) => {
      this.log.warn({ code: 'EH_ERR_UPSTREAM_SEND', brokers: config.kafka.brokers, err: (err as Error).message }, 'kafka not reachable yet; events are buffered and sent once it is');
    });

    this.ingest = this.createIngest(this.sink);
    await this.ingest.start();

    const every = config.log.stats_interval_secs;
    if (every > 0) {
      this.statsTimer = setInterval(() => this.logStats(), every * 1000);
      this.statsTimer.unref();
    }
  }

  /** Stops in order within the deadline (ms since epoch). */
  async stop(deadline: number): Promise<ShutdownReport> {
    if (this.statsTimer !== null) clearInterval(this.statsTimer);
    this.statsTimer = null;
    const errors: unknown[] = [];
    const step = async (name: string, fn: () => Promise<unknown> | unknown): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        errors.push(err);
        this.log.error({ step: name, err: (err as Error).message }, 'shutdown step failed');
      }
    };
    await step('stop accepting', () => this.ingest?.stopAccepting());
    // everything already read gets committed and acknowledged before connections close
    await step('final commit', () => this.writer?.flush());
    await step('close ingest', () => this.ingest?.close());
    let buffered = 0;
    await step('flush upstream', async () => {
      buffered = (await this.forwarder?.stop(deadline)) ?? 0;
    });
    await step('close buffer', () => this.store?.close());
    this.logStats();
    return { buffered, timedOut: Date.now() > deadline };
  }

  /** The entry point ingest calls for every PUBLISH. */
  private readonly sink: MessageSink = (message: InboundMessage, settle: SettleCallback) => {
    this.stats.received_messages_total++;
    const acked: SettleCallback = (err) => {
      if (err === null) this.stats.acked_messages_total++;
      settle(err);
    };
    if (message.payload.length > this.loaded.config.ingest.max_payload_bytes) {
      this.stats.dropped_oversize_total++;
      this.throttle.run(`oversize:${message.clientId}`, (suppressed) => {
        this.log.warn({ code: 'EH_ERR_INGEST_OVERSIZE', client_id: message.clientId, topic: message.topic, bytes: message.payload.length, limit: this.loaded.config.ingest.max_payload_bytes, suppressed }, 'payload too large; dropped and counted');
      });
      return acked(null);
    }
    const events = this.router.route(message);
    if (events.length === 0) {
      this.stats.dropped_unrouted_total++;
      this.throttle.run(`unrouted:${message.topic}`, (suppressed) => {
        this.log.warn({ code: 'EH_ERR_INGEST_UNROUTED', client_id: message.clientId, topic: message.topic, suppressed }, 'no route matches this topic; dropped and counted');
      });
      return acked(null);
    }
    this.writer!.submit(events, acked);
  };

  private createIngest(sink: MessageSink): Ingest {
    const { config, gatewayId } = this.loaded;
    const ingestLog = this.log.child({ stage: 'ingest' });
    if (config.ingest.mode === 'embedded') {
      return createBrokerIngest({ host: config.ingest.embedded.host, port: config.ingest.embedded.port }, sink, ingestLog);
    }
    const c = config.ingest.client;
    return createClientIngest({
      url: c.url,
      clientId: c.client_id !== '' ? c.client_id : `edgehaul-${gatewayId}`,
      username: c.username,
      password: c.password !== undefined ? readSecret(c.password) : undefined,
      connections: c.connections.length > 0 ? c.connections : [c.topics.length > 0 ? c.topics : this.router.filters],
      qos: c.qos,
      keepaliveSecs: c.keepalive_secs,
      reconnectMs: c.reconnect_ms,
    }, sink, ingestLog);
  }

  private logStats(): void {
    const buffer = this.store !== null ? safeStats(this.store) : null;
    this.stats.connected_clients = this.ingest?.connectedClients ?? 0;
    this.log.info({ stats: this.stats.snapshot(), buffer }, 'stats');
  }
}

function safeStats(store: BufferStore): ReturnType<BufferStore['stats']> | null {
  try {
    return store.stats();
  } catch {
    return null; // closed
  }
}
