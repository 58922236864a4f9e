import { isUtf8 } from 'node:buffer';
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer, TLSSocket } from 'node:tls';
import { Aedes, type Client } from 'aedes';
import { TokenBucket } from 'limiter';
import { WebSocketServer, createWebSocketStream } from 'ws';
import type { EmbeddedConfig } from '../config/schema.js';
import type { MessageSink } from '../core/event.js';
import { EdgehaulError } from '../core/errors.js';
import { LogThrottle, type Logger } from '../core/log.js';
import type { Stats } from '../ops/stats.js';
import { compileAcl, type SubjectAcl } from '../security/acl.js';
import { hashPassword, parseHash, verifyPassword, type ParsedHash } from '../security/password.js';
import { readPem } from '../security/tls.js';
import type { Ingest } from './ingest.js';

export interface BrokerOptions {
  readonly host: string;
  readonly port: number;
  /** Security and limits; absent (unit tests, benchmarks of the bare path): anonymous, no limits. */
  readonly embedded?: EmbeddedConfig;
  /** For the packet-size default: ingest.max_payload_bytes. */
  readonly maxPayloadBytes?: number;
  readonly stats?: Stats;
}

/** Room for the fixed header, topic (at most 65,535 bytes) and packet id around a payload. */
const PACKET_OVERHEAD = 65_600;
/** scrypt runs on libuv's pool (4 threads by default): at most this many logins hash at once, the rest wait in line. */
const SCRYPT_SLOTS = 2;
const SCRYPT_QUEUE = 256;

/** How long close() waits at most for the last acknowledgements to leave the sockets. */
const ACK_FLUSH_MS = 2000;

/** MQTT 3.1.1 CONNACK return codes. */
const CONNACK = { UNAVAILABLE: 3, BAD_CREDENTIALS: 4, NOT_AUTHORIZED: 5 } as const;

interface Connection {
  readonly remote: string;
  readonly transport: 'tcp' | 'tls' | 'ws';
  overLimit: boolean;
  username: string | null;
  acl: SubjectAcl | null;
  bucket: TokenBucket | null;
  /** publishes waiting for a token, in arrival order */
  queue: Array<() => void>;
  timer: NodeJS.Timeout | null;
  /** the connection was closed by edgehaul for a counted reason (not a protocol error of the client) */
  closedByUs: boolean;
}

/** The parts of aedes' mqtt-packet parser (9.x) the doors below hook into. */
interface PacketParser {
  _parseLength?: () => boolean;
  _parsePublish?: () => void;
  _emitError?: (err: Error) => void;
  /** the bytes of the packet being parsed (a BufferList) and the read position in it */
  _list?: { length: number; readUInt16BE(offset: number): number; slice(start: number, end: number): Buffer };
  _pos?: number;
  error?: Error | null;
  packet?: { length: number; qos?: number; messageId?: number };
}

type ClientWithParser = Client & { _parser?: PacketParser };

/**
 * Why a PUBLISH must close its connection, or null. mqtt-packet decodes the
 * topic with Buffer.toString, which turns ill-formed bytes into U+FFFD and
 * lets U+0000 through: the topic a device sent would then differ from the one
 * routed and forwarded. So the raw topic bytes are checked before it decodes
 * them, and the packet id after.
 */
function publishViolation(parser: PacketParser): string | null {
  const list = parser._list;
  const pos = parser._pos ?? 0;
  if (list === undefined || pos + 2 > list.length) return null; // too short: the parser's own error
  const end = pos + 2 + list.readUInt16BE(pos);
  if (end > list.length) return null;
  const topic = list.slice(pos + 2, end);
  if (!isUtf8(topic)) return 'topic is not well-formed UTF-8 [MQTT-1.5.3-1]';
  if (topic.includes(0)) return 'topic contains U+0000 [MQTT-1.5.3-2]';
  return null;
}

type Refusal = Error & { returnCode: never };

function refusal(returnCode: number, message: string): Refusal {
  return Object.assign(new Error(message), { returnCode }) as Refusal;
}

/** A small counting semaphore: scrypt logins take turns instead of filling libuv's thread pool. */
class Slots {
  private busy = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(private readonly size: number, private readonly maxWaiting: number) {}
  /** Resolves with a release function, or null when too many already wait. */
  acquire(): Promise<(() => void) | null> {
    const release = (): void => {
      const next = this.waiting.shift();
      if (next !== undefined) next();
      else this.busy--;
    };
    if (this.busy < this.size) {
      this.busy++;
      return Promise.resolve(release);
    }
    if (this.waiting.length >= this.maxWaiting) return Promise.resolve(null);
    return new Promise((resolve) => this.waiting.push(() => resolve(release)));
  }
}

/**
 * The embedded MQTT broker. Every PUBLISH from a device passes aedes'
 * authorizePublish hook, and aedes writes the PUBACK (QoS 1) or PUBREC
 * (QoS 2) only after that hook's callback: holding the callback until the
 * group commit is what makes "acknowledged" mean "on disk".
 *
 * The doors: authenticate (scrypt password hashes or a client certificate's
 * CN), topic ACLs on publish and subscribe, a connection limit, a packet size
 * limit enforced while the packet header is parsed, and a per-connection
 * publish rate (token bucket) that delays a fast client's packets in order;
 * since aedes reads a connection's next chunk only after every packet of the
 * previous one was authorized, the delay pushes back on that client's TCP
 * stream alone.
 */
export function createBrokerIngest(options: BrokerOptions, sink: MessageSink, log: Logger): Ingest {
  let broker: Aedes | null = null;
  const servers: Array<{ server: Server; close: () => Promise<void> }> = [];
  let accepting = true;
  /** Publishes go to the sink until stopAccepting() has handed over the last ones read. */
  let handingOver = true;
  /** Connections whose publishes may wait for a rate-limit token. */
  const limited = new Set<Connection>();
  /** Connected clients, to stop reading them and to flush their acknowledgements on shutdown. */
  const connected = new Set<Client>();
  let address = `mqtt://${options.host}:${options.port}`;
  let clients = 0;
  let live = 0;
  const emb = options.embedded;
  const stats = options.stats;
  const throttle = new LogThrottle(10_000);
  const connections = new WeakMap<object, Connection>();
  const auth = emb?.auth;
  const acl = compileAcl([
    ...(auth?.users ?? []).filter((u) => u.publish !== undefined || u.subscribe !== undefined).map((u) => ({ username: u.username, publish: u.publish ?? [], subscribe: u.subscribe ?? [] })),
    ...(auth?.acl ?? []),
  ]);
  const users = new Map<string, ParsedHash | null>((auth?.users ?? []).map((u) => [u.username, u.password_hash !== undefined ? parseHash(u.password_hash) : null]));
  const allowAnonymous = emb === undefined || auth!.allow_anonymous;
  const maxPacket = emb === undefined ? 0 : emb.max_packet_bytes > 0 ? emb.max_packet_bytes : (options.maxPayloadBytes ?? 262_144) + PACKET_OVERHEAD;
  const rate = emb?.max_publish_per_sec ?? 0;
  const burst = Math.max(1, emb?.publish_burst || Math.ceil(rate));
  const slots = new Slots(SCRYPT_SLOTS, SCRYPT_QUEUE);
  /** Unknown users are checked against this, so they take as long as a wrong password. */
  let dummyHash: ParsedHash | null = null;

  const warn = (key: string, fields: Record<string, unknown>, msg: string): void => {
    throttle.run(key, (suppressed) => log.warn({ ...fields, suppressed }, msg));
  };

  function accept(conn: Duplex, req: IncomingMessage | undefined, transport: Connection['transport'], remote: string): void {
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
      limited.delete(state);
    });
    if (maxPacket > 0) limitPacketSize(client, state);
    checkPublishes(client, state);
  }

  /**
   * MQTT 3.1.1 requires closing the connection on a topic that is not
   * well-formed UTF-8 or holds U+0000, and forbids packet id 0 on QoS 1/2
   * (MQTT-2.3.1-1); aedes accepts all three and would acknowledge them.
   */
  function checkPublishes(client: ClientWithParser, state: Connection): void {
    const parser = client._parser;
    const original = parser?._parsePublish;
    if (parser === undefined || typeof original !== 'function' || typeof parser._emitError !== 'function') return;
    parser._parsePublish = function parsePublishChecked(this: PacketParser) {
      let violation = publishViolation(this);
      if (violation === null) {
        original.call(this);
        if (this.error !== null && this.error !== undefined) return;
        if ((this.packet?.qos ?? 0) > 0 && this.packet?.messageId === 0) violation = 'packet id 0 on a QoS 1/2 PUBLISH [MQTT-2.3.1-1]';
      }
      if (violation === null) return;
      state.closedByUs = true;
      if (stats !== undefined) stats.malformed_publishes_total++;
      warn(`malformed:${violation}`, { code: 'EH_ERR_INGEST_MALFORMED', client_id: client.id, remote: state.remote, reason: violation }, 'malformed publish; connection closed');
      this._emitError!(new Error(`malformed publish: ${violation}`));
    };
  }

  /**
   * mqtt-packet (aedes' parser) has no size limit of its own and buffers a
   * packet whole before handing it over. Checking the remaining length as soon
   * as it is parsed closes the connection before a single payload byte is held.
   */
  function limitPacketSize(client: ClientWithParser, state: Connection): void {
    const parser = client._parser;
    const original = parser?._parseLength;
    if (parser === undefined || typeof original !== 'function' || typeof parser._emitError !== 'function') return;
    parser._parseLength = function parseLengthWithLimit(this: typeof parser) {
      const ok = original.call(this);
      const length = this.packet?.length ?? 0;
      if (ok && length > maxPacket) {
        state.closedByUs = true;
        if (stats !== undefined) stats.oversize_packets_total++;
        warn(`packet:${state.remote}`, { code: 'EH_ERR_INGEST_PACKET_TOO_LARGE', client_id: client.id, remote: state.remote, bytes: length, limit: maxPacket }, 'mqtt packet too large; connection closed');
        this._emitError!(new Error(`packet of ${length} bytes exceeds max_packet_bytes ${maxPacket}`));
        return false;
      }
      return ok;
    };
  }

  function authenticate(client: Client, username: string | undefined, password: Buffer | undefined, callback: (err: Refusal | null, ok: boolean | null) => void): void {
    const state = connections.get(client);
    if (state === undefined) return callback(refusal(CONNACK.UNAVAILABLE, 'unknown connection'), false);
    const fail = (code: number, reason: string, fields: Record<string, unknown> = {}): void => {
      if (stats !== undefined) {
        if (code === CONNACK.UNAVAILABLE) stats.connections_refused_total++;
        else stats.auth_failures_total++;
      }
      state.closedByUs = true;
      const errCode = code === CONNACK.UNAVAILABLE ? 'EH_ERR_INGEST_CONNECTIONS' : 'EH_ERR_AUTH_FAILED';
      warn(`auth:${errCode}:${reason}`, { code: errCode, reason, client_id: client.id, username, remote: state.remote, transport: state.transport, ...fields }, code === CONNACK.UNAVAILABLE ? 'mqtt connection refused' : 'mqtt login refused');
      callback(refusal(code, reason), false);
    };
    const succeed = (user: string | null): void => {
      state.username = user;
      state.acl = acl.forSubject({ username: user, clientId: client.id });
      if (rate > 0) {
        state.bucket = new TokenBucket({ bucketSize: burst, tokensPerInterval: rate, interval: 'second' });
        state.bucket.content = burst;
      }
      callback(null, true);
    };
    if (!accepting) return fail(CONNACK.UNAVAILABLE, 'shutting down');
    if (state.overLimit) return fail(CONNACK.UNAVAILABLE, 'max_connections reached', { max_connections: emb?.max_connections });
    if (emb === undefined) return succeed(username ?? null);

    const conn = client.conn as unknown;
    if (conn instanceof TLSSocket && conn.authorized) {
      const cn = conn.getPeerCertificate()?.subject?.CN;
      const name = Array.isArray(cn) ? cn[0] : cn;
      if (typeof name === 'string' && name !== '') {
        if (!users.has(name)) return fail(CONNACK.NOT_AUTHORIZED, 'certificate CN is not a configured user', { cn: name });
        if (username !== undefined && username !== name) return fail(CONNACK.BAD_CREDENTIALS, 'username differs from the certificate CN', { cn: name });
        return succeed(name);
      }
    }
    if (username === undefined || username === '') {
      if (allowAnonymous) return succeed(null);
      return fail(CONNACK.NOT_AUTHORIZED, 'anonymous access is off');
    }
    const known = users.get(username);
    const target = known ?? dummyHash;
    if (target === null || target === undefined || password === undefined) {
      // certificate-only users, or no hash to compare: no password can match (and nothing to leak by timing)
      return fail(CONNACK.BAD_CREDENTIALS, known === null ? 'user logs in with a certificate only' : 'wrong username or password');
    }
    void slots.acquire().then(async (release) => {
      if (release === null) return fail(CONNACK.UNAVAILABLE, 'too many logins at once');
      let ok: boolean;
      try {
        ok = await verifyPassword(password, target);
      } catch {
        ok = false;
      } finally {
        release();
      }
      if (ok && known !== undefined) succeed(username);
      else fail(CONNACK.BAD_CREDENTIALS, 'wrong username or password');
    });
  }

  function drain(state: Connection, client: Client): void {
    state.timer = null;
    if (client.closed) {
      state.queue.length = 0;
      return;
    }
    while (state.queue.length > 0 && state.bucket!.tryRemoveTokens(1)) state.queue.shift()!();
    if (state.queue.length > 0) {
      state.timer = setTimeout(() => drain(state, client), Math.max(1, Math.ceil(1000 / rate)));
    }
  }

  return {
    get address() {
      return address;
    },
    get connectedClients() {
      return clients;
    },

    async start() {
      if (users.size > 0) dummyHash = parseHash(await hashPassword(randomBytes(16).toString('hex')));
      const b = await Aedes.createBroker({
        // MQTT 3.1.1 only promises 23 characters; real devices use longer ids (MAC + serial)
        maxClientsIdLength: 256,
        // a socket that never sends CONNECT holds a connection slot at most this long
        connectTimeout: 10_000,
        authenticate,
        authorizeSubscribe: (client, sub, callback) => {
          const state = connections.get(client);
          if (state?.acl !== null && state?.acl !== undefined && !state.acl.canSubscribe(sub.topic)) {
            if (stats !== undefined) stats.acl_denied_subscriptions_total++;
            warn(`sub:${client.id}`, { code: 'EH_ERR_ACL_SUBSCRIBE', client_id: client.id, username: state.username, filter: sub.topic }, 'subscription outside the acl refused');
            // a null subscription is granted as 0x80 (failure) in the SUBACK
            return callback(null, null);
          }
          callback(null, sub);
        },
        authorizePublish: (client, packet, callback) => {
          // the broker's own $SYS messages and will messages of gone clients arrive without a live client
          if (client === null) return callback(null);
          // nothing is read after stopAccepting(); this is a safety net for a packet aedes still held
          if (!handingOver) return callback(new Error('gateway is shutting down'));
          const state = connections.get(client);
          if (state !== undefined && state.acl !== null && !state.acl.canPublish(packet.topic)) {
            if (stats !== undefined) stats.acl_denied_total++;
            state.closedByUs = true;
            warn(`pub:${client.id}`, { code: 'EH_ERR_ACL_PUBLISH', client_id: client.id, username: state.username, topic: packet.topic }, 'publish outside the acl refused; connection closed');
            // MQTT 3.1.1 has no negative PUBACK: the server closes the connection [MQTT-3.3.5-2]
            return callback(new Error('publish not authorized'));
          }
          const go = (): void => {
            const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
            sink(
              { topic: packet.topic, payload, qos: packet.qos, clientId: client.id, receivedAt: Date.now(), ...(packet.qos > 0 ? { packetId: packet.messageId, dup: packet.dup } : {}) },
              (err) => {
                // not acknowledged at shutdown (held by a full buffer): an error would make aedes close the
                // connection at once, dropping the PUBACKs of earlier messages still on their way out;
                // close() ends the connection once they are written, and the device sends this one again
                if (err !== null && !handingOver) return;
                callback(err);
              },
            );
          };
          const bucket = state?.bucket ?? null;
          if (bucket === null || (state!.queue.length === 0 && bucket.tryRemoveTokens(1))) return go();
          if (stats !== undefined) stats.rate_limited_total++;
          warn(`rate:${client.id}`, { code: 'EH_ERR_INGEST_RATE_LIMITED', client_id: client.id, limit_per_sec: rate }, 'client publishes faster than max_publish_per_sec; slowed down');
          state!.queue.push(go);
          limited.add(state!);
          if (state!.timer === null) state!.timer = setTimeout(() => drain(state!, client), Math.max(1, Math.ceil(1000 / rate)));
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
        throttle.run(`clienterr:${err.message}`, (suppressed) => log.debug({ client: client.id, remote: state?.remote, err: err.message, suppressed }, 'mqtt client error'));
      };
      b.on('clientError', onError);
      b.on('connectionError', onError);
      broker = b;

      const listen = async (server: Server, host: string, port: number, transport: Connection['transport']): Promise<AddressInfo> => {
        await new Promise<void>((resolve, reject) => {
          server.once('error', (err: NodeJS.ErrnoException) => {
            reject(new EdgehaulError('EH_ERR_INGEST_LISTEN', `cannot listen on ${host}:${port} (${transport}): ${err.code ?? err.message}`, { cause: err }));
          });
          server.listen(port, host, () => resolve());
        });
        server.on('error', (err) => log.error({ err: err.message, transport }, 'mqtt listener error'));
        const bound = server.address() as AddressInfo;
        log.info({ host: bound.address, port: bound.port, mode: 'embedded', transport }, 'mqtt listener ready');
        return bound;
      };
      const closeServer = (s: Server) => () => new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve()));
      const addresses: string[] = [];

      if (emb === undefined || emb.plain_tcp) {
        const s = createServer((socket) => accept(socket, undefined, 'tcp', `${socket.remoteAddress}:${socket.remotePort}`));
        servers.push({ server: s, close: closeServer(s) });
        const bound = await listen(s, options.host, options.port, 'tcp');
        addresses.push(`mqtt://${bound.address}:${bound.port}`);
      }
      if (emb?.tls.enabled === true) {
        const ca = readPem(emb.tls.ca);
        const s = createTlsServer({
          cert: readPem(emb.tls.cert),
          key: readPem(emb.tls.key),
          ...(ca !== undefined ? { ca } : {}),
          requestCert: ca !== undefined,
          rejectUnauthorized: emb.tls.require_client_cert,
          minVersion: 'TLSv1.2',
        }, (socket) => accept(socket, undefined, 'tls', `${socket.remoteAddress}:${socket.remotePort}`));
        s.on('tlsClientError', (err, socket) => {
          if (stats !== undefined) stats.tls_errors_total++;
          warn(`tls:${err.message}`, { code: 'EH_ERR_INGEST_TLS', remote: `${socket.remoteAddress}:${socket.remotePort}`, err: err.message }, 'tls handshake failed');
        });
        servers.push({ server: s, close: closeServer(s) });
        const bound = await listen(s, emb.tls.host, emb.tls.port, 'tls');
        addresses.push(`mqtts://${bound.address}:${bound.port}`);
      }
      if (emb?.websocket.enabled === true) {
        const http = createHttpServer((_req, res) => {
          res.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over WebSocket only\n');
        });
        const wss = new WebSocketServer({ server: http, path: emb.websocket.path, maxPayload: maxPacket > 0 ? maxPacket + 16 : undefined });
        wss.on('connection', (ws, req) => {
          const stream = createWebSocketStream(ws);
          // ws reports protocol errors on the socket; without a listener they would be unhandled
          ws.on('error', () => stream.destroy());
          accept(stream, req, 'ws', `${req.socket.remoteAddress}:${req.socket.remotePort}`);
        });
        servers.push({
          server: http,
          close: async () => {
            for (const c of wss.clients) c.terminate();
            await new Promise<void>((resolve) => wss.close(() => resolve()));
            await closeServer(http)();
          },
        });
        const bound = await listen(http, emb.websocket.host, emb.websocket.port, 'ws');
        addresses.push(`ws://${bound.address}:${bound.port}${emb.websocket.path}`);
      }
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
      for (const state of limited) {
        if (state.timer !== null) clearTimeout(state.timer);
        state.timer = null;
        for (const go of state.queue.splice(0)) go();
      }
      limited.clear();
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
  await Promise.all(clients.map(async (client) => {
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
  }));
}
