import type { IncomingMessage } from 'node:http';
import type { AddressInfo, Server } from 'node:net';
import type { Duplex } from 'node:stream';
import { EdgehaulError } from '../../../core/errors.js';
import type { Logger } from '../../../core/log.js';
import type { Transport } from '../connection.js';

/** Hands a new connection to the broker. */
export type Accept = (conn: Duplex, req: IncomingMessage | undefined, transport: Transport, remote: string) => void;

/** One way in for devices: a server the broker listens on and closes. */
export interface Listener {
  readonly server: Server;
  /** Binds; resolves with the URL devices connect to. Rejects with EH_ERR_INGEST_LISTEN. */
  listen(): Promise<string>;
  close(): Promise<void>;
}

export async function listenOn(
  server: Server,
  host: string,
  port: number,
  transport: Transport,
  log: Logger,
): Promise<AddressInfo> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        new EdgehaulError(
          'EH_ERR_INGEST_LISTEN',
          `cannot listen on ${host}:${port} (${transport}): ${err.code ?? err.message}`,
          { cause: err },
        ),
      );
    });
    server.listen(port, host, () => resolve());
  });
  server.on('error', (err) => log.error({ err: err.message, transport }, 'mqtt listener error'));
  const bound = server.address() as AddressInfo;
  log.info({ host: bound.address, port: bound.port, mode: 'embedded', transport }, 'mqtt listener ready');
  return bound;
}

export const closeServer = (s: Server) => (): Promise<void> =>
  new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve()));
