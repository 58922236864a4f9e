import { createServer, type AddressInfo, type Server } from 'node:net';
import { Aedes } from 'aedes';
import type { MessageSink } from '../core/event.js';
import { EdgehaulError } from '../core/errors.js';
import type { Logger } from '../ops/log.js';
import type { Ingest } from './ingest.js';

export interface BrokerOptions {
  readonly host: string;
  readonly port: number;
}

/**
 * The embedded MQTT broker. Every PUBLISH from a device passes aedes'
 * authorizePublish hook, and aedes writes the PUBACK (QoS 1) or PUBREC
 * (QoS 2) only after that hook's callback: holding the callback until the
 * group commit is what makes "acknowledged" mean "on disk".
 */
export function createBrokerIngest(options: BrokerOptions, sink: MessageSink, log: Logger): Ingest {
  let broker: Aedes | null = null;
  let server: Server | null = null;
  let accepting = true;
  let address = `mqtt://${options.host}:${options.port}`;
  let clients = 0;

  return {
    get address() {
      return address;
    },
    get connectedClients() {
      return clients;
    },

    async start() {
      const b = await Aedes.createBroker({
        // MQTT 3.1.1 only promises 23 characters; real devices use longer ids (MAC + serial)
        maxClientsIdLength: 256,
        authorizePublish: (client, packet, callback) => {
          // the broker's own $SYS messages and will messages of gone clients arrive without a live client
          if (client === null || !accepting) {
            if (!accepting && client !== null) return callback(new Error('gateway is shutting down'));
            return callback(null);
          }
          const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
          sink(
            { topic: packet.topic, payload, qos: packet.qos, clientId: client.id, receivedAt: Date.now() },
            (err) => callback(err),
          );
        },
      });
      b.on('client', () => clients++);
      b.on('clientDisconnect', () => clients--);
      b.on('clientError', (client, err) => log.debug({ client: client.id, err: err.message }, 'mqtt client error'));
      broker = b;
      const s = createServer(b.handle);
      server = s;
      await new Promise<void>((resolve, reject) => {
        s.once('error', (err: NodeJS.ErrnoException) => {
          reject(new EdgehaulError('EH_ERR_INGEST_LISTEN', `cannot listen on ${options.host}:${options.port}: ${err.code ?? err.message}`, { cause: err }));
        });
        s.listen(options.port, options.host, () => resolve());
      });
      s.on('error', (err) => log.error({ err: err.message }, 'mqtt listener error'));
      const bound = s.address() as AddressInfo;
      address = `mqtt://${bound.address}:${bound.port}`;
      log.info({ host: bound.address, port: bound.port, mode: 'embedded' }, 'mqtt listener ready');
    },

    async stopAccepting() {
      accepting = false;
      // stop new TCP connections; existing ones end in close()
      server?.close();
    },

    async close() {
      const b = broker;
      broker = null;
      if (b !== null) await new Promise<void>((resolve) => b.close(() => resolve()));
      const s = server;
      server = null;
      if (s !== null && s.listening) await new Promise<void>((resolve) => s.close(() => resolve()));
    },
  };
}
