import type { TlsClientOptions } from '../security/tls.js';
import mqtt, { type MqttClient } from 'mqtt';
import type { Duplex } from 'node:stream';
import type { MessageSink } from '../core/event.js';
import type { Logger } from '../core/log.js';
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
  /** Messages of one connection handed over and not yet acknowledged, at most. */
  readonly maxInFlight: number;
  readonly keepaliveSecs: number;
  readonly reconnectMs: number;
}

/**
 * Passed to mqtt.js's handleMessage callback: an error there makes mqtt.js
 * skip its own PUBACK and go on with the next packet (handlers/publish.js of
 * mqtt 5.16, pinned; test/integration/client-pipeline.test.ts guards it).
 */
const ACK_DEFERRED = new Error('edgehaul sends this PUBACK itself after the commit');

interface InFlight {
  readonly stream: Duplex;
  readonly messageId: number | undefined;
  readonly qos: number;
  settled: boolean;
  failed: boolean;
}

/**
 * Client of a broker already on the gateway. A persistent session
 * (clean: false) at QoS 1 makes that broker keep our messages while we are
 * down.
 *
 * Pipelined acknowledgements: mqtt.js sends a PUBACK only after
 * handleMessage's callback and hands the next message over only after that,
 * one at a time. So the callback is called at once (with ACK_DEFERRED: no
 * PUBACK from mqtt.js), up to maxInFlight messages of a connection wait for
 * their commit together, and their PUBACKs go out from here, each after its
 * own commit and in the order the messages arrived (MQTT 3.1.1 4.6), on the
 * connection they came in on. A PUBACK whose connection is gone is not sent:
 * the broker delivers that message again. QoS 2 stays one message at a time
 * (mqtt.js sends PUBREC itself and PUBCOMP after the callback).
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
    const inFlight: InFlight[] = [];
    let resume: (() => void) | null = null;

    // PUBACKs leave in arrival order: the settled head of the queue, up to the first unsettled one
    const release = (): void => {
      while (inFlight.length > 0 && inFlight[0]!.settled) {
        const m = inFlight.shift()!;
        if (m.failed || m.qos !== 1 || m.messageId === undefined) continue;
        if (client.stream !== m.stream || m.stream.destroyed || !client.connected) continue;
        sendPuback(client, m.messageId);
      }
      if (resume !== null && inFlight.length < options.maxInFlight) {
        const next = resume;
        resume = null;
        next();
      }
    };

    client.handleMessage = (packet, callback) => {
      if (!accepting) {
        // not acknowledged: the broker keeps it in our session and delivers it after the restart
        return;
      }
      const stream = client.stream;
      const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
      const message = {
        topic: packet.topic,
        payload,
        qos: packet.qos,
        clientId,
        receivedAt: Date.now(),
        ...(packet.qos > 0 ? { packetId: packet.messageId, dup: packet.dup } : {}),
      };
      if (packet.qos === 2) {
        sink(message, (err) => {
          if (err === null) return callback();
          callback(err);
          stream.destroy();
        });
        return;
      }
      const m: InFlight = { stream, messageId: packet.messageId, qos: packet.qos, settled: false, failed: false };
      inFlight.push(m);
      sink(message, (err) => {
        m.settled = true;
        if (err !== null) {
          // no PUBACK; reconnecting makes the broker deliver it again
          m.failed = true;
          stream.destroy();
        }
        release();
      });
      const next = (): void => callback(ACK_DEFERRED);
      if (inFlight.length < options.maxInFlight) next();
      else resume = next; // the window is full: mqtt.js reads on (and TCP flows) when a commit made room
    };
    client.on('connect', (connack) => {
      log.info(
        { url: redactUrl(options.url), client_id: clientId, session_present: connack.sessionPresent },
        'connected to mqtt broker',
      );
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
      await Promise.all(
        clients.map(async (c) => {
          let timer: NodeJS.Timeout | undefined;
          const graceful = c.endAsync(false).then(
            () => true,
            () => false,
          );
          const ok = await Promise.race([
            graceful,
            new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 2000))),
          ]);
          clearTimeout(timer);
          if (!ok) await c.endAsync(true).catch(() => undefined);
        }),
      );
      clients.length = 0;
    },
  };
}

/** mqtt.js has no public call for a PUBACK; _sendPacket writes it like its own (pinned mqtt 5.16). */
function sendPuback(client: MqttClient, messageId: number): void {
  (client as unknown as { _sendPacket(packet: { cmd: 'puback'; messageId: number }): void })._sendPacket({
    cmd: 'puback',
    messageId,
  });
}

function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}
