import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { Aedes, type Client } from 'aedes';
import type { MessageSink } from '../../core/event.js';
import { LogThrottle, type Logger } from '../../core/log.js';
import type { Ingest } from '../ingest.js';
import { BrokerAuth, type AuthCounters, type AuthSettings } from './auth.js';
import type { ClientWithParser, Connection, Warn } from './connection.js';
import type { Listener } from './listeners/listener.js';
import { tcpListener } from './listeners/tcp.js';
import { tlsListener, type TlsCounters, type TlsSettings } from './listeners/tls.js';
import { websocketListener, type WebSocketSettings } from './listeners/websocket.js';
import { checkPublishes, limitPacketSize, type PacketCounters } from './packet-limit.js';
import { PublishRateLimit, type RateCounters, type RateSettings } from './rate-limit.js';

/** What the broker reads of ingest.embedded (config/schema.ts's EmbeddedConfig satisfies it). */
export interface EmbeddedSettings extends AuthSettings, RateSettings {
  readonly max_packet_bytes: number;
  readonly max_connections: number;
  readonly plain_tcp: boolean;
  readonly tls: TlsSettings & { readonly enabled: boolean };
  readonly websocket: WebSocketSettings & { readonly enabled: boolean };
}

/** The counters the broker and its doors write (ops/Stats satisfies this; the gateway passes it in). */
export interface BrokerCounters extends AuthCounters, RateCounters, PacketCounters, TlsCounters {
  connection_errors_total: number;
}

export interface BrokerOptions {
  readonly host: string;
  readonly port: number;
  /** Security and limits; absent (unit tests, benchmarks of the bare path): anonymous, no limits. */
  readonly embedded?: EmbeddedSettings;
  /** For the packet-size default: ingest.max_payload_bytes. */
  readonly maxPayloadBytes?: number;
  readonly stats?: BrokerCounters;
}

/** Room for the fixed header, topic (at most 65,535 bytes) and packet id around a payload. */
const PACKET_OVERHEAD = 65_600;

/** How long close() waits at most for the last acknowledgements to leave the sockets. */
const ACK_FLUSH_MS = 2000;

/**
 * The embedded MQTT broker. Every PUBLISH from a device passes aedes'
 * authorizePublish hook, and aedes writes the PUBACK (QoS 1) or PUBREC
 * (QoS 2) only after that hook's callback: holding the callback until the
 * group commit is what makes "acknowledged" mean "on disk".
 *
 * The doors, each in its own module: authenticate and topic ACLs (auth.ts:
 * scrypt password hashes or a client certificate's CN, a connection limit), a
 * packet size limit enforced while the packet header is parsed and the MQTT
 * rules aedes lets through (packet-limit.ts), and a per-connection publish
 * rate (rate-limit.ts). The listeners (plain TCP, TLS, WebSocket) are in
 * listeners/.
 */
export function createBrokerIngest(options: BrokerOptions, sink: MessageSink, log: Logger): Ingest {
  let broker: Aedes | null = null;
  const servers: Listener[] = [];
  let accepting = true;
  /** Publishes go to the sink until stopAccepting() has handed over the last ones read. */
  let handingOver = true;
  /** Connected clients, to stop reading them and to flush their acknowledgements on shutdown. */
  const connected = new Set<Client>();
  let address = `mqtt://${options.host}:${options.port}`;
  let clients = 0;
  let live = 0;
  const emb = options.embedded;
  const stats = options.stats;
  const throttle = new LogThrottle(10_000);
  const connections = new WeakMap<object, Connection>();
  const maxPacket =
    emb === undefined
      ? 0
      : emb.max_packet_bytes > 0
        ? emb.max_packet_bytes
        : (options.maxPayloadBytes ?? 262_144) + PACKET_OVERHEAD;

  const warn: Warn = (key, fields, msg) => {
    throttle.run(key, (suppressed) => log.warn({ ...fields, suppressed }, msg));
  };
  const rateLimit = new PublishRateLimit(emb, stats, warn);
  const auth = new BrokerAuth({
    emb,
    stats,
    warn,
    connection: (client) => connections.get(client),
    accepting: () => accepting,
    bucket: () => rateLimit.bucket(),
  });

  function accept(
    conn: Duplex,
    req: IncomingMessage | undefined,
    transport: Connection['transport'],
    remote: string,
  ): void {
    const b = broker;
    if (b === null) {
      conn.destroy();
      return;
    }
    live++;
    let counted = true;
    conn.once('close', () => {
      if (counted) live--;
      counted = false;
    });
    const state: Connection = {
      remote,
      transport,
      overLimit: emb !== undefined && emb.max_connections > 0 && live > emb.max_connections,
      username: null,
      acl: null,
      bucket: null,
      queue: [],
      timer: null,
      closedByUs: false,
    };
    const client = b.handle(conn, req) as ClientWithParser;
    connections.set(client, state);
    // aedes does not report every close as clientDisconnect (a session taken over by a new connection)
    conn.once('close', () => {
      connected.delete(client);
      rateLimit.forget(state);
    });
    if (maxPacket > 0) limitPacketSize(client, state, maxPacket, stats, warn);
    checkPublishes(client, state, stats, warn);
  }

  return {
    get address() {
      return address;
    },
    get connectedClients() {
      return clients;
    },

    async start() {
      await auth.prepare();
      const b = await Aedes.createBroker({
        // MQTT 3.1.1 only promises 23 characters; real devices use longer ids (MAC + serial)
        maxClientsIdLength: 256,
        // a socket that never sends CONNECT holds a connection slot at most this long
        connectTimeout: 10_000,
        authenticate: auth.authenticate,
        authorizeSubscribe: (client, sub, callback) => {
          // a null subscription is granted as 0x80 (failure) in the SUBACK
          if (!auth.canSubscribe(client, sub.topic)) return callback(null, null);
          callback(null, sub);
        },
        authorizePublish: (client, packet, callback) => {
          // the broker's own $SYS messages and will messages of gone clients arrive without a live client
          if (client === null) return callback(null);
          // nothing is read after stopAccepting(); this is a safety net for a packet aedes still held
          if (!handingOver) return callback(new Error('gateway is shutting down'));
          const state = connections.get(client);
          // MQTT 3.1.1 has no negative PUBACK: the server closes the connection [MQTT-3.3.5-2]
          if (!auth.canPublish(client, state, packet.topic)) return callback(new Error('publish not authorized'));
          const go = (): void => {
            const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
            sink(
              {
                topic: packet.topic,
                payload,
                qos: packet.qos,
                clientId: client.id,
                receivedAt: Date.now(),
                ...(packet.qos > 0 ? { packetId: packet.messageId, dup: packet.dup } : {}),
              },
              (err) => {
                // not acknowledged at shutdown (held by a full buffer): an error would make aedes close the
                // connection at once, dropping the PUBACKs of earlier messages still on their way out;
                // close() ends the connection once they are written, and the device sends this one again
                if (err !== null && !handingOver) return;
                callback(err);
              },
            );
          };
          rateLimit.admit(state, client, go);
        },
      });
      b.on('client', (client) => {
        clients++;
        connected.add(client);
      });
      b.on('clientDisconnect', (client) => {
        clients--;
        connected.delete(client);
      });
      const onError = (client: Client, err: Error): void => {
        const state = connections.get(client);
        if (state?.closedByUs === true) return;
        if (stats !== undefined) stats.connection_errors_total++;
        throttle.run(`clienterr:${err.message}`, (suppressed) =>
          log.debug({ client: client.id, remote: state?.remote, err: err.message, suppressed }, 'mqtt client error'),
        );
      };
      b.on('clientError', onError);
      b.on('connectionError', onError);
      broker = b;

      const addresses: string[] = [];
      const open = async (listener: Listener): Promise<void> => {
        servers.push(listener);
        addresses.push(await listener.listen());
      };
      if (emb === undefined || emb.plain_tcp) await open(tcpListener(options.host, options.port, accept, log));
      if (emb?.tls.enabled === true) await open(tlsListener(emb.tls, accept, log, stats, warn));
      if (emb?.websocket.enabled === true) await open(websocketListener(emb.websocket, maxPacket, accept, log));
      address = addresses[0]!;
    },

    /**
     * Stops reading: no new connections or logins, and no connection is read
     * again. What was read is handed to the sink (publishes waiting for a
     * rate-limit token too, at once), so the final commit covers it and its
     * acknowledgements go out before close() ends the connections.
     */
    async stopAccepting() {
      accepting = false;
      for (const { server } of servers) server.close();
      const b = broker;
      if (b !== null) for (const client of connected) (client as Client & { pause(): void }).pause();
      rateLimit.releaseAll();
      // aedes hands the packets of the chunk it parsed to authorizePublish in the same or the next ticks
      await new Promise<void>((resolve) => setImmediate(resolve));
      handingOver = false;
    },

    async close() {
      const b = broker;
      broker = null;
      if (b !== null) {
        await flushAcknowledgements([...connected], ACK_FLUSH_MS);
        await new Promise<void>((resolve) => b.close(() => resolve()));
      }
      await Promise.all(servers.map((s) => s.close()));
      servers.length = 0;
    },
  };
}

/**
 * Waits until the acknowledgements already settled are written: aedes writes a
 * PUBACK in the ticks after its hook's callback, and closing a connection
 * destroys its socket with whatever Node still buffers for it. Bounded by
 * `maxMs` for a device that does not read.
 */
async function flushAcknowledgements(clients: readonly Client[], maxMs: number): Promise<void> {
  await new Promise<void>((resolve) => setImmediate(resolve));
  const deadline = Date.now() + maxMs;
  await Promise.all(
    clients.map(async (client) => {
      const conn = client.conn as unknown as Duplex;
      while (conn.writableLength > 0 && !conn.destroyed && Date.now() < deadline) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            clearTimeout(timer);
            conn.off('drain', done);
            conn.off('close', done);
            resolve();
          };
          const timer = setTimeout(done, Math.max(1, deadline - Date.now()));
          conn.once('drain', done);
          conn.once('close', done);
        });
      }
    }),
  );
}
