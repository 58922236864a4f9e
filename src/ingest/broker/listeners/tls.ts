import { createServer as createTlsServer } from 'node:tls';
import type { Logger } from '../../../core/log.js';
import type { Warn } from '../connection.js';
import { closeServer, listenOn, type Accept, type Listener } from './listener.js';

/** ingest.embedded.tls, with the PEM texts the config loader read (the gateway fills them in). */
export interface TlsSettings {
  readonly host: string;
  readonly port: number;
  readonly cert?: string | undefined;
  readonly key?: string | undefined;
  readonly ca?: string | undefined;
  readonly require_client_cert: boolean;
}

export interface TlsCounters {
  tls_errors_total: number;
}

/** MQTT over TLS (mqtts://), with client certificates when a CA is configured. */
export function tlsListener(
  tls: TlsSettings,
  accept: Accept,
  log: Logger,
  stats: TlsCounters | undefined,
  warn: Warn,
): Listener {
  const ca = tls.ca;
  const server = createTlsServer(
    {
      cert: tls.cert,
      key: tls.key,
      ...(ca !== undefined ? { ca } : {}),
      requestCert: ca !== undefined,
      rejectUnauthorized: tls.require_client_cert,
      minVersion: 'TLSv1.2',
    },
    (socket) => accept(socket, undefined, 'tls', `${socket.remoteAddress}:${socket.remotePort}`),
  );
  server.on('tlsClientError', (err, socket) => {
    if (stats !== undefined) stats.tls_errors_total++;
    warn(
      `tls:${err.message}`,
      { code: 'EH_ERR_INGEST_TLS', remote: `${socket.remoteAddress}:${socket.remotePort}`, err: err.message },
      'tls handshake failed',
    );
  });
  return {
    server,
    close: closeServer(server),
    async listen() {
      const bound = await listenOn(server, tls.host, tls.port, 'tls', log);
      return `mqtts://${bound.address}:${bound.port}`;
    },
  };
}
