import { createRequire } from 'node:module';
import type {
  DeliveryReport,
  LibrdKafkaError,
  Producer,
  ProducerGlobalConfig,
  ProducerTopicConfig,
} from '@confluentinc/kafka-javascript';
import type * as RdKafka from '@confluentinc/kafka-javascript';
import { LogThrottle, type Logger } from '../core/log.js';
import type { TlsClientSettings } from '../security/tls.js';
import type { Confirmation, OutRecord, RecordSink } from './sink.js';

// a CommonJS addon: its named exports are not visible to ESM's static analysis
const rdkafka = createRequire(import.meta.url)('@confluentinc/kafka-javascript') as typeof RdKafka;
const CODES = rdkafka.CODES.ERRORS;

/**
 * What the Kafka sink reads of the `kafka` config section, with the TLS PEM texts and the SASL
 * password the config loader read (the gateway fills them in: this stage never reads a secret).
 */
export interface KafkaSinkConfig {
  readonly brokers: readonly string[];
  readonly client_id: string;
  readonly compression: 'none' | 'gzip' | 'snappy' | 'lz4' | 'zstd';
  readonly connection_timeout_ms: number;
  readonly request_timeout_ms: number;
  readonly delivery_timeout_ms: number;
  readonly max_send_bytes: number;
  readonly tls: TlsClientSettings;
  readonly sasl?:
    | {
        readonly mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512';
        readonly username: string;
        readonly password: string;
      }
    | undefined;
}

/** The counters the Kafka sink writes (ops/Stats satisfies this; the gateway passes it in). */
export interface KafkaSinkCounters {
  upstream_auth_failures_total: number;
  upstream_auth_failed: boolean;
}

/** librdkafka's settings for our producer, from the config (holds the secrets: never logged). */
export function producerConfig(kafka: KafkaSinkConfig): ProducerGlobalConfig & ProducerTopicConfig {
  const tls = kafka.tls;
  const sasl = kafka.sasl;
  const protocol = `${sasl !== undefined ? 'sasl_' : ''}${tls.enabled ? 'ssl' : 'plaintext'}`;
  const conf: ProducerGlobalConfig & ProducerTopicConfig = {
    'client.id': kafka.client_id,
    'bootstrap.servers': kafka.brokers.join(','),
    'security.protocol': protocol as ProducerGlobalConfig['security.protocol'],
    // idempotent: acks=all, at most 5 requests in flight per partition, retries keep their order and never duplicate
    'enable.idempotence': true,
    'request.required.acks': -1,
    // a permanent failure of one message would leave a gap that later messages of its partition jump over:
    // librdkafka raises a fatal error instead, the forwarder drops this producer and sends the rows again in order
    'enable.gapless.guarantee': true,
    'compression.codec': kafka.compression,
    // Java's default partitioner (murmur2 of the key): a key lands where a Java producer (and kafkajs, before) put it
    partitioner: 'murmur2_random',
    // the forwarder batches already; a short linger only joins the records of one send
    'linger.ms': 5,
    'message.max.bytes': Math.min(1_000_000_000, Math.max(1_000_000, kafka.max_send_bytes + 65_536)),
    'socket.connection.setup.timeout.ms': Math.max(1000, kafka.connection_timeout_ms),
    'request.timeout.ms': kafka.request_timeout_ms,
    'message.timeout.ms': kafka.delivery_timeout_ms,
    'retry.backoff.ms': 100,
    'retry.backoff.max.ms': 1000,
    'reconnect.backoff.ms': 100,
    'reconnect.backoff.max.ms': 5000,
    dr_cb: true,
  };
  if (tls.enabled) {
    conf['enable.ssl.certificate.verification'] = tls.reject_unauthorized;
    conf['ssl.endpoint.identification.algorithm'] = tls.reject_unauthorized ? 'https' : 'none';
    if (tls.ca !== undefined) conf['ssl.ca.pem'] = tls.ca;
    if (tls.cert !== undefined) conf['ssl.certificate.pem'] = tls.cert;
    if (tls.key !== undefined) conf['ssl.key.pem'] = tls.key;
  }
  if (sasl !== undefined) {
    conf['sasl.mechanisms'] = sasl.mechanism.toUpperCase();
    conf['sasl.username'] = sasl.username;
    conf['sasl.password'] = sasl.password;
  }
  return conf;
}

type Pending = {
  readonly index: number;
  readonly settle: (index: number, c: Confirmation | null, err: LibrdKafkaError | null) => void;
};

/**
 * Kafka through librdkafka (`@confluentinc/kafka-javascript`): an idempotent
 * producer with acks=all whose every message gets its own delivery report
 * with a partition and an offset. kafkajs 2.2.4, used before, resolved
 * `sendBatch` without writing the partitions of a leader that died
 * mid-request (its issue #1303), which lost acknowledged events on a
 * replicated cluster; librdkafka tracks each message until the new leader
 * confirms it.
 */
export function createKafkaSink(
  kafkaConfig: KafkaSinkConfig,
  log: Logger,
  onConnected: (up: boolean) => void,
  stats?: KafkaSinkCounters,
): RecordSink {
  const kafkaLog = log.child({ component: 'kafka' });
  const throttle = new LogThrottle(30_000);
  const conf = producerConfig(kafkaConfig);
  if (kafkaConfig.tls.enabled && kafkaConfig.tls.servername !== undefined) {
    kafkaLog.warn(
      { servername: kafkaConfig.tls.servername },
      'kafka.tls.servername is not used: librdkafka checks the certificate against the broker host names',
    );
  }
  let producer: Promise<Producer> | null = null;
  /** sends waiting for delivery reports of a producer that may die (fatal error, close) */
  let inFlight = new Set<Pending>();

  function onError(p: Producer, err: LibrdKafkaError): void {
    // the binding reports these events with code -1: the message is what tells them apart
    if (
      err.code === CODES.ERR__AUTHENTICATION ||
      err.code === CODES.ERR_SASL_AUTHENTICATION_FAILED ||
      /authentication/i.test(err.message)
    ) {
      if (stats !== undefined) {
        stats.upstream_auth_failures_total++;
        stats.upstream_auth_failed = true;
      }
      throttle.run('sasl', (suppressed) => {
        kafkaLog.error(
          {
            code: 'EH_ERR_UPSTREAM_AUTH',
            mechanism: kafkaConfig.sasl?.mechanism,
            username: kafkaConfig.sasl?.username,
            err: err.message,
            suppressed,
          },
          'kafka refused our credentials; events stay buffered and the login is retried',
        );
      });
      onConnected(false);
      return;
    }
    if (err.code === CODES.ERR__ALL_BROKERS_DOWN || /all broker connections are down/i.test(err.message))
      onConnected(false);
    if (err.isFatal === true) {
      // an idempotent producer cannot go on after a fatal error: a new one (new producer id) takes over
      throttle.run(`fatal:${err.code}`, (suppressed) => {
        kafkaLog.warn(
          { code: 'EH_ERR_UPSTREAM_SEND', err: err.message, kafka_code: err.code, suppressed },
          'kafka producer failed fatally; a new producer resends what was not confirmed',
        );
      });
      void retire(p);
      return;
    }
    throttle.run(`error:${err.code}`, (suppressed) => {
      kafkaLog.debug({ err: err.message, kafka_code: err.code, suppressed }, 'librdkafka');
    });
  }

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

  function connect(): Promise<Producer> {
    const p = new rdkafka.Producer(conf);
    p.on('event.error', (err) => onError(p, err));
    p.on('delivery-report', (err: LibrdKafkaError | null, report: DeliveryReport) => {
      const pending = report.opaque as Pending | undefined;
      if (pending === undefined) return;
      const ok = err === null || err === undefined || err.code === CODES.ERR_NO_ERROR;
      const offset = report.offset;
      // evidence, not a callback: a confirmation names the partition and the offset Kafka wrote it at
      const confirmed =
        ok && Number.isInteger(report.partition) && report.partition >= 0 && typeof offset === 'number' && offset >= 0;
      pending.settle(
        pending.index,
        confirmed ? { partition: report.partition, offset: String(offset) } : null,
        ok ? null : err,
      );
      if (confirmed) onConnected(true);
    });
    // librdkafka's error events (a refused login among them) wait for a poll; until the background
    // poller runs (after the first metadata), poll here or a connect fails with no reason
    const poller = setInterval(() => {
      try {
        p.poll();
      } catch {
        // not connected yet
      }
    }, 100);
    return new Promise<Producer>((resolve, reject) => {
      p.connect({ timeout: Math.max(1000, kafkaConfig.connection_timeout_ms) }, (err) => {
        clearInterval(poller);
        if (err !== null && err !== undefined) {
          // the binding has disconnected its handle already (and Producer.disconnect would throw)
          reject(new Error(`kafka unreachable: ${err.message}`));
          return;
        }
        p.setPollInBackground(true);
        if (stats !== undefined) stats.upstream_auth_failed = false;
        onConnected(true);
        resolve(p);
      });
    });
  }

  /** Fails the sends still waiting on this producer and disconnects it. */
  async function retire(p: Producer): Promise<void> {
    const current = producer;
    if (current !== null && (await current.catch(() => null)) === p) producer = null;
    const waiting = inFlight;
    inFlight = new Set();
    for (const w of waiting) w.settle(-1, null, null);
    await new Promise<void>((resolve) => {
      // Producer.disconnect flushes first; skip that (the binding's own disconnect): what was not
      // confirmed is in the buffer and is sent again by the next producer
      (p as unknown as { _disconnect(cb: () => void): void })._disconnect(() => resolve());
    }).catch(() => undefined);
  }

  return {
    async connect(): Promise<void> {
      await connected();
    },
    async send(records: readonly OutRecord[]): Promise<ReadonlyArray<Confirmation | null>> {
      const p = await connected();
      const results: Array<Confirmation | null> = new Array<Confirmation | null>(records.length).fill(null);
      let firstError: LibrdKafkaError | null = null;
      let retired = false;
      await new Promise<void>((resolve) => {
        let open = records.length;
        const entries: Pending[] = [];
        const settle = (index: number, c: Confirmation | null, err: LibrdKafkaError | null): void => {
          if (index < 0) {
            // the producer was retired: nothing more will be reported
            for (const e of entries) inFlight.delete(e);
            retired = open > 0;
            open = 0;
            resolve();
            return;
          }
          if (open === 0) return;
          results[index] = c;
          if (err !== null && firstError === null) firstError = err;
          open--;
          if (open === 0) {
            for (const e of entries) inFlight.delete(e);
            resolve();
          }
        };
        if (records.length === 0) {
          resolve();
          return;
        }
        const group: Pending = { index: -1, settle };
        inFlight.add(group);
        entries.push(group);
        for (let i = 0; i < records.length; i++) {
          const r = records[i]!;
          const headers = Object.entries(r.headers).map(([k, v]) => ({ [k]: v }));
          try {
            p.produce(r.topic, null, r.value, r.key, Date.now(), { index: i, settle } satisfies Pending, headers);
          } catch (err) {
            // not queued: neither it nor any later record may go out before it (per-key order)
            if (firstError === null) firstError = err as LibrdKafkaError;
            open -= records.length - i;
            if (open === 0) {
              inFlight.delete(group);
              resolve();
            }
            break;
          }
        }
      });
      if (retired) throw new Error('the kafka producer was closed or failed before confirming every record');
      if (firstError !== null && results.every((c) => c === null)) {
        throw new Error(`kafka did not take the records: ${(firstError as LibrdKafkaError).message}`);
      }
      return results;
    },
    async close(): Promise<void> {
      const p = producer;
      producer = null;
      onConnected(false);
      if (p !== null) {
        const resolved = await p.catch(() => null);
        if (resolved !== null) await retire(resolved);
      }
    },
  };
}
