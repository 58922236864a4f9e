import { CompressionTypes, Kafka, logLevel, Partitioners, type LogEntry, type Producer } from 'kafkajs';
import type { Config } from '../config/schema.js';
import { readSecret } from '../config/load.js';
import { LogThrottle, type Logger } from '../ops/log.js';
import type { Stats } from '../ops/stats.js';
import { tlsClientOptions } from '../security/tls.js';
import type { OutRecord, RecordSink } from './sink.js';

const COMPRESSION = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP } as const;

/**
 * kafkajs producer: idempotent (no duplicates within one producer session),
 * acks=all, one request in flight so that a retry can never overtake a
 * later batch. kafkajs' DefaultPartitioner is murmur2 like the Java client, so
 * a key lands on the same partition as it would from any Java producer.
 */
export function createKafkaSink(kafkaConfig: Config['kafka'], log: Logger, onConnected: (up: boolean) => void, stats?: Stats): RecordSink {
  const kafkaLog = log.child({ component: 'kafka' });
  const throttle = new LogThrottle(30_000);
  const ssl = tlsClientOptions(kafkaConfig.tls);
  const saslConfig = kafkaConfig.sasl;
  // read once at start; the value lives only in kafkajs' options, never in a log line
  const sasl = saslConfig === undefined ? undefined : { mechanism: saslConfig.mechanism, username: saslConfig.username, password: readSecret(saslConfig.password) };
  const kafka = new Kafka({
    clientId: kafkaConfig.client_id,
    brokers: [...kafkaConfig.brokers],
    ...(ssl !== undefined ? { ssl } : {}),
    ...(sasl !== undefined ? { sasl: sasl as never } : {}),
    connectionTimeout: kafkaConfig.connection_timeout_ms,
    requestTimeout: kafkaConfig.request_timeout_ms,
    // the forwarder retries with its own backoff; kafkajs retries only the quick transient cases
    retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1000 },
    logLevel: logLevel.WARN,
    logCreator: () => (entry: LogEntry) => {
      const { message, ...extra } = entry.log;
      // the forwarder's own retries are bounded on purpose; duplicates they cause carry the same sequence numbers
      const expected = message.startsWith('Limiting retries for the idempotent producer');
      const level = expected || entry.level > logLevel.WARN ? 'debug' : 'warn';
      throttle.run(`${entry.namespace}:${message}`, (suppressed) => {
        kafkaLog[level]({ ns: entry.namespace, broker: extra.broker, error: extra.error, suppressed }, `kafkajs: ${message}`);
      });
    },
  });
  let producer: Promise<Producer> | null = null;

  /** One producer at a time, shared by concurrent callers; a failed connect is forgotten so the next call tries again. */
  function connected(): Promise<Producer> {
    if (producer === null) {
      const attempt = connect();
      producer = attempt;
      attempt.catch(() => {
        if (producer === attempt) producer = null;
      });
    }
    return producer;
  }

  async function connect(): Promise<Producer> {
    const p = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: true,
      createPartitioner: Partitioners.DefaultPartitioner,
      retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 2000 },
    });
    try {
      await p.connect();
    } catch (err) {
      await p.disconnect().catch(() => undefined);
      if ((err as Error).name === 'KafkaJSSASLAuthenticationError') {
        if (stats !== undefined) {
          stats.upstream_auth_failures_total++;
          stats.upstream_auth_failed = true;
        }
        throttle.run('sasl', (suppressed) => {
          kafkaLog.error({ code: 'EH_ERR_UPSTREAM_AUTH', mechanism: saslConfig?.mechanism, username: saslConfig?.username, err: (err as Error).message, suppressed }, 'kafka refused our credentials; events stay buffered and the login is retried');
        });
      }
      throw err;
    }
    if (stats !== undefined) stats.upstream_auth_failed = false;
    onConnected(true);
    return p;
  }

  async function drop(): Promise<void> {
    const p = producer;
    producer = null;
    onConnected(false);
    if (p !== null) await p.then((x) => x.disconnect()).catch(() => undefined);
  }

  return {
    async connect(): Promise<void> {
      await connected();
    },
    async send(records: readonly OutRecord[]): Promise<void> {
      const p = await connected();
      const byTopic = new Map<string, Array<{ key: string; value: Buffer; headers: Record<string, string> }>>();
      for (const r of records) {
        let list = byTopic.get(r.topic);
        if (list === undefined) byTopic.set(r.topic, (list = []));
        list.push({ key: r.key, value: r.value, headers: r.headers });
      }
      try {
        await p.sendBatch({
          acks: -1,
          timeout: kafkaConfig.request_timeout_ms,
          compression: COMPRESSION[kafkaConfig.compression],
          topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
        });
      } catch (err) {
        // a fresh producer on the next attempt: kafkajs does not always recover a producer whose broker went away
        await drop();
        throw err;
      }
    },
    close: drop,
  };
}
