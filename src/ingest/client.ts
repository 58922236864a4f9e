import type { TlsClientOptions } from '../security/tls.js';
import mqtt, { type MqttClient } from 'mqtt';
import type { MessageSink } from '../core/event.js';
import type { Logger } from '../ops/log.js';
import type { Ingest } from './ingest.js';

export interface ClientOptions {
  readonly url: string;
  readonly clientId: string;
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  /** TLS options for mqtts:// / wss:// URLs (CA, client certificate, servername, rejectUnauthorized) */
  readonly tls?: TlsClientOptions | undefined;
  /** One connection per entry, each subscribed to its own filters. */
  readonly connections: ReadonlyArray<readonly string[]>;
  readonly qos: 0 | 1 | 2;
  readonly keepaliveSecs: number;
  readonly reconnectMs: number;
}

/**
 * Client of a broker already on the gateway. A persistent session
 * (clean: false) at QoS 1 makes that broker keep our messages while we are
 * down. mqtt.js sends the PUBACK only after handleMessage's callback, one
 * message at a time per connection, so several connections with disjoint
 * filters are how commits run in parallel. (Not MQTT shared subscriptions:
 * they spread one device's messages over connections and so lose its order;
 * aedes 1.x does not implement them either.)
 */
export function createClientIngest(options: ClientOptions, sink: MessageSink, log: Logger): Ingest {
  const clients: MqttClient[] = [];
  let accepting = true;

  function connectOne(index: number, filters: readonly string[]): Promise<void> {
    const clientId = options.connections.length > 1 ? `${options.clientId}-${index}` : options.clientId;
    const client = mqtt.connect(options.url, {
      clientId,
      clean: false,
      protocolVersion: 4,
      keepalive: options.keepaliveSecs,
      reconnectPeriod: options.reconnectMs,
      username: options.username,
      password: options.password,
      ...(options.tls ?? {}),
      // a shutdown must not wait for a broker that is gone
      connectTimeout: 10_000,
    });
    clients.push(client);
    client.handleMessage = (packet, callback) => {
      if (!accepting) {
        // not acknowledged: the broker keeps it in our session and delivers it after the restart
        return;
      }
      const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
      sink({ topic: packet.topic, payload, qos: packet.qos, clientId, receivedAt: Date.now(), ...(packet.qos > 0 ? { packetId: packet.messageId, dup: packet.dup } : {}) }, (err) => {
        if (err === null) return callback();
        // no PUBACK; reconnecting makes the broker deliver it again
        callback(err);
        client.stream.destroy();
      });
    };
    client.on('connect', (connack) => {
      log.info({ url: redactUrl(options.url), client_id: clientId, session_present: connack.sessionPresent }, 'connected to mqtt broker');
      if (!connack.sessionPresent) {
        client.subscribe([...filters], { qos: options.qos }, (err, granted) => {
          if (err) log.error({ err: err.message, filters }, 'subscribe failed');
          else log.info({ granted: granted?.map((g) => `${g.topic}@${g.qos}`) }, 'subscribed');
        });
      }
    });
    client.on('error', (err) => log.warn({ err: err.message, client_id: clientId }, 'mqtt client error'));
    client.on('offline', () => log.warn({ client_id: clientId }, 'mqtt broker unreachable; reconnecting'));
    return new Promise<void>((resolve) => {
      // resolve on the first attempt either way: a broker that is down now is retried in the background
      client.once('connect', () => resolve());
      client.once('offline', () => resolve());
    });
  }

  return {
    get address() {
      return redactUrl(options.url);
    },
    get connectedClients() {
      return clients.filter((c) => c.connected).length;
    },
    async start() {
      await Promise.all(options.connections.map((filters, i) => connectOne(i, filters)));
    },
    async stopAccepting() {
      accepting = false;
    },
    async close() {
      // a clean DISCONNECT keeps the session; if the connection is stuck (a message held since
      // stopAccepting), give up after a moment: the broker redelivers what we never acknowledged
      await Promise.all(clients.map(async (c) => {
        let timer: NodeJS.Timeout | undefined;
        const graceful = c.endAsync(false).then(() => true, () => false);
        const ok = await Promise.race([graceful, new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 2000)))]);
        clearTimeout(timer);
        if (!ok) await c.endAsync(true).catch(() => undefined);
      }));
      clients.length = 0;
    },
  };
}

function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}
