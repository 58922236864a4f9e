import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { EdgehaulError } from '../core/errors.js';
import type { BasicAuth, BasicAuthResult } from '../security/basic-auth.js';
import { healthHttpStatus, type Health } from './health.js';
import type { RateHistoryReport } from './history.js';
import type { Logger } from '../core/log.js';
import { PAGE_CSP, PAGE_HTML } from './page.js';
import type { StatusReport } from './status.js';

export interface OpsHandlers {
  readonly registry: Registry;
  health(): Health;
  status(): Promise<StatusReport>;
  history(): RateHistoryReport;
}

export interface OpsServerOptions {
  /** null: no login (loopback); else every path asks for one */
  readonly auth: BasicAuth | null;
  /** PEM text; null: plain HTTP */
  readonly tls: { readonly cert: string; readonly key: string } | null;
  /** a refused login (counted and logged by the caller, rate-limited; never with the password) */
  readonly refused: (why: Exclude<BasicAuthResult, { ok: true }>, remote: string) => void;
}

const PATHS = ['/', '/status', '/status/history', '/metrics', '/healthz'];

/** Every answer: nothing cached, nothing sniffed, never framed, no referrer. */
const COMMON_HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

/**
 * The local HTTP endpoint: GET / (the status page), /status (the JSON behind
 * `edgehaul status` and the page), /status/history (the last hour of rates),
 * /metrics (Prometheus text), /healthz ({status, reasons}; 503 when failing).
 * Read-only. On loopback (the default) without a login; bound beyond it, every
 * path asks for HTTP Basic credentials (config validation refuses it without
 * users), optionally over TLS.
 */
export class OpsServer {
  private server: Server | null = null;

  constructor(
    private readonly handlers: OpsHandlers,
    private readonly log: Logger,
    private readonly options: OpsServerOptions = { auth: null, tls: null, refused: () => undefined },
  ) {}

  /** Resolves with "host:port" once listening. */
  async listen(host: string, port: number): Promise<string> {
    const { auth, tls } = this.options;
    await auth?.prepare();
    const handle = (req: IncomingMessage, res: ServerResponse): void => {
      const path = (req.url ?? '/').split('?')[0];
      for (const [k, v] of Object.entries(COMMON_HEADERS)) res.setHeader(k, v);
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      const reply = async (): Promise<void> => {
        if (auth !== null) {
          const result = await auth.check(req.headers.authorization);
          if (!result.ok) {
            this.options.refused(result, `${req.socket.remoteAddress}:${req.socket.remotePort}`);
            if (result.why === 'busy') {
              json(res, 503, { error: 'too many logins at once; try again' }, { 'retry-after': '1' });
              return;
            }
            json(
              res,
              401,
              { error: 'login required' },
              { 'www-authenticate': 'Basic realm="edgehaul", charset="UTF-8"' },
            );
            return;
          }
        }
        switch (path) {
          case '/':
            res
              .writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': PAGE_CSP })
              .end(PAGE_HTML);
            return;
          case '/favicon.ico':
            res.writeHead(204).end();
            return;
          case '/status/history':
            json(res, 200, this.handlers.history());
            return;
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
            json(res, 404, { error: 'not found', paths: PATHS });
        }
      };
      reply().catch((err: unknown) => {
        this.log.warn({ path, err: (err as Error).message }, 'http request failed');
        if (!res.headersSent) json(res, 500, { error: (err as Error).message });
        else res.destroy();
      });
    };
    const server: Server =
      tls === null
        ? createServer(handle)
        : createHttpsServer({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' }, handle);
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

function json(res: ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}): void {
  res
    .writeHead(code, { 'content-type': 'application/json; charset=utf-8', ...headers })
    .end(`${JSON.stringify(body)}\n`);
}
