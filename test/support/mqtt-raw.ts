/**
 * The smallest MQTT 3.1.1 publisher the benchmark (and a raw-packet test) needs: CONNECT, PUBLISH
 * (QoS 0/1), PUBACK, DISCONNECT, written straight onto a socket. It costs a
 * fraction of mqtt.js' CPU per message, which matters on a 2-core box where
 * the load generators share the CPU with the system under test. (`--client
 * mqttjs` uses mqtt.js instead, for comparison.)
 */
import { connect, type Socket } from 'node:net';

const CONNACK = 2;
const PUBACK = 4;

export function remainingLength(n: number): Buffer {
  const bytes: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    bytes.push(b);
  } while (n > 0);
  return Buffer.from(bytes);
}

function utf8Field(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  const out = Buffer.allocUnsafe(2 + b.length);
  out.writeUInt16BE(b.length, 0);
  b.copy(out, 2);
  return out;
}

export function connectPacket(clientId: string, keepaliveSecs = 0): Buffer {
  const variable = Buffer.concat([
    utf8Field('MQTT'),
    Buffer.from([4, 0x02 /* clean session */, keepaliveSecs >> 8, keepaliveSecs & 0xff]),
  ]);
  const payload = utf8Field(clientId);
  const body = Buffer.concat([variable, payload]);
  return Buffer.concat([Buffer.from([0x10]), remainingLength(body.length), body]);
}

export const DISCONNECT = Buffer.from([0xe0, 0x00]);

/** A PUBLISH packet; packetId is ignored for QoS 0. */
export function publishPacket(topic: Buffer, payload: Buffer | string, qos: 0 | 1, packetId: number): Buffer {
  const payloadLen = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
  const rest = 2 + topic.length + (qos > 0 ? 2 : 0) + payloadLen;
  const rl = remainingLength(rest);
  const out = Buffer.allocUnsafe(1 + rl.length + rest);
  let o = 0;
  out[o++] = 0x30 | (qos << 1);
  rl.copy(out, o);
  o += rl.length;
  out.writeUInt16BE(topic.length, o);
  o += 2;
  topic.copy(out, o);
  o += topic.length;
  if (qos > 0) {
    out.writeUInt16BE(packetId, o);
    o += 2;
  }
  if (typeof payload === 'string') out.write(payload, o, 'utf8');
  else payload.copy(out, o);
  return out;
}

export interface RawConnection {
  readonly socket: Socket;
  /** called once per PUBACK (after all PUBACKs of one read were parsed, `flush` is called) */
  onPuback: (packetId: number) => void;
  /** called after each socket read was fully parsed */
  onFlush: () => void;
  close(timeoutMs?: number): Promise<void>;
}

/** Connects, sends CONNECT and resolves after a successful CONNACK. */
export function rawConnect(host: string, port: number, clientId: string, timeoutMs = 10_000): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, noDelay: true });
    let pending: Buffer | null = null;
    let connected = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`${clientId}: no CONNACK within ${timeoutMs} ms`));
    }, timeoutMs);
    const conn: RawConnection = {
      socket,
      onPuback: () => undefined,
      onFlush: () => undefined,
      close: (ms = 5000) =>
        new Promise<void>((done) => {
          if (socket.destroyed) return done();
          const t = setTimeout(() => {
            socket.destroy();
            done();
          }, ms);
          socket.once('close', () => {
            clearTimeout(t);
            done();
          });
          socket.end(DISCONNECT);
        }),
    };
    socket.on('error', (err) => {
      if (!connected) {
        clearTimeout(timer);
        reject(err);
      }
    });
    socket.on('data', (chunk: Buffer) => {
      const buf = pending === null ? chunk : Buffer.concat([pending, chunk]);
      pending = null;
      let off = 0;
      while (off < buf.length) {
        // fixed header: type/flags byte, then 1-4 bytes of remaining length
        if (buf.length - off < 2) break;
        let len = 0;
        let mult = 1;
        let p = off + 1;
        let complete = false;
        for (let k = 0; k < 4 && p < buf.length; k++) {
          const b = buf[p++]!;
          len += (b & 0x7f) * mult;
          mult *= 128;
          if ((b & 0x80) === 0) {
            complete = true;
            break;
          }
        }
        if (!complete || p + len > buf.length) break;
        const type = buf[off]! >> 4;
        if (type === PUBACK && len >= 2) {
          conn.onPuback(buf.readUInt16BE(p));
        } else if (type === CONNACK && len >= 2) {
          const rc = buf[p + 1]!;
          if (!connected) {
            clearTimeout(timer);
            if (rc !== 0) {
              socket.destroy();
              reject(new Error(`${clientId}: CONNACK return code ${rc}`));
              return;
            }
            connected = true;
            resolve(conn);
          }
        }
        off = p + len;
      }
      if (off < buf.length) pending = Buffer.from(buf.subarray(off));
      conn.onFlush();
    });
    socket.write(connectPacket(clientId));
  });
}
