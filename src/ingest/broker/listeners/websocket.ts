import { createServer as createHttpServer } from 'node:http';
import type { Server } from 'node:net';
import { WebSocketServer, createWebSocketStream } from 'ws';
import type { Logger } from '../../../core/log.js';
import { closeServer, listenOn, type Accept, type Listener } from './listener.js';

/** ingest.embedded.websocket */
export interface WebSocketSettings {
  readonly host: string;
  readonly port: number;
  readonly path: string;
}

/** MQTT over WebSocket (ws://) on one path; any other HTTP request gets 426. `maxPacket` 0 = no limit. */
export function websocketListener(
  websocket: WebSocketSettings,
  maxPacket: number,
  accept: Accept,
  log: Logger,
): Listener {
  const http = createHttpServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over WebSocket only\n');
  });
  const wss = new WebSocketServer({
    server: http,
    path: websocket.path,
    maxPayload: maxPacket > 0 ? maxPacket + 16 : undefined,
  });
  wss.on('connection', (ws, req) => {
    const stream = createWebSocketStream(ws);
    // ws reports protocol errors on the socket; without a listener they would be unhandled
    ws.on('error', () => stream.destroy());
    accept(stream, req, 'ws', `${req.socket.remoteAddress}:${req.socket.remotePort}`);
  });
  const server = http as unknown as Server;
  return {
    server,
    async close() {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await closeServer(server)();
    },
    async listen() {
      const bound = await listenOn(server, websocket.host, websocket.port, 'ws', log);
      return `ws://${bound.address}:${bound.port}${websocket.path}`;
    },
  };
}
