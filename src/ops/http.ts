import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { EdgehaulError } from '../core/errors.js';
import { healthHttpStatus, type Health } from './health.js';
import type { Logger } from '../core/log.js';
import type { StatusReport } from './status.js';

export interface OpsHandlers {
  readonly registry: Registry;
  health(): Health;
  status(): Promise<StatusReport>;
}

/**
 * The local HTTP endpoint: GET /metrics (Prometheus text), /healthz
 * ({status, reasons}; 503 when failing), /status (the JSON behind
 * `edgehaul status`). No authentication: it binds loopback by default.
 */
export class OpsServer {
  private server: Server | null = null;

  constructor(
    private readonly handlers: OpsHandlers,
    private readonly log: Logger,
  ) {}

  /** Resolves with "host:port" once listening. */
  async listen(host: string, port: number): Promise<string> {
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      const reply = async (): Promise<void> => {
        switch (path) {
          case '/metrics': {
            const body = await this.handlers.registry.metrics();
            res.writeHead(200, { 'content-type': this.handlers.registry.contentType }).end(body);
            return;
          }
          case '/healthz': {
            const h = this.handlers.health();
            json(res, healthHttpStatus(h.status), { status: h.status, reasons: h.reasons });
            return;
          }
          case '/status':
            json(res, 200, await this.handlers.status());
            return;
          default:
            json(res, 404, { error: 'not found', paths: ['/metrics', '/healthz', '/status'] });
        }
      };
      reply().catch((err: unknown) => {
        this.log.warn({ path, err: (err as Error).message }, 'http request failed');
        if (!res.headersSent) json(res, 500, { error: (err as Error).message });
        else res.destroy();
      });
    });
    // a scraper that keeps its connection open must not hold up shutdown
    server.keepAliveTimeout = 5000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          new EdgehaulError(
            'EH_ERR_HTTP_LISTEN',
            `cannot listen on ${host}:${port} for /metrics: ${err.code ?? err.message}`,
            { cause: err },
          ),
        ),
      );
      server.listen(port, host, () => resolve());
    });
    const a = server.address() as AddressInfo;
    return `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server === null) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

function json(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'content-type': 'application/json; charset=utf-8' }).end(`${JSON.stringify(body)}\n`);
}
