import { createServer } from 'node:net';
import type { Logger } from '../../../core/log.js';
import { closeServer, listenOn, type Accept, type Listener } from './listener.js';

/** Plain MQTT over TCP (mqtt://). */
export function tcpListener(host: string, port: number, accept: Accept, log: Logger): Listener {
  const server = createServer((socket) =>
    accept(socket, undefined, 'tcp', `${socket.remoteAddress}:${socket.remotePort}`),
  );
  return {
    server,
    close: closeServer(server),
    async listen() {
      const bound = await listenOn(server, host, port, 'tcp', log);
      return `mqtt://${bound.address}:${bound.port}`;
    },
  };
}
