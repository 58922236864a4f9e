import { EXIT } from '../core/errors.js';
import { ConfigError, formatProblem, loadConfig } from '../config/load.js';
import { formatStatus, type StatusReport } from '../ops/status.js';

export interface StatusOptions {
  readonly config: string;
  /** base URL of the daemon's HTTP endpoint; overrides the config */
  readonly url?: string;
  readonly json: boolean;
  readonly timeoutMs?: number;
  /** asked when the config cannot be read (a user outside group edgehaul); default: http.host and http.port's defaults */
  readonly defaultUrl?: string;
}

/** http.host and http.port when the config does not say otherwise (src/config/schema.ts). */
export const DEFAULT_HTTP = { host: '127.0.0.1', port: 9464 } as const;

/** The endpoint's base URL from the config: a wildcard listen address is reached on loopback. */
export function statusUrl(host: string, port: number, tls = false): string {
  const h = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `${tls ? 'https' : 'http'}://${h.includes(':') ? `[${h}]` : h}:${port}`;
}

/** HTTP Basic credentials for an endpoint beyond loopback (http.auth), from the environment; never from argv. */
export function loginHeader(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const user = env.EDGEHAUL_HTTP_USER;
  const password = env.EDGEHAUL_HTTP_PASSWORD;
  if (user === undefined || user === '' || password === undefined) return {};
  return { authorization: `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}` };
}

/** `edgehaul status`: prints the running daemon's /status; exit 69 when none answers. */
export async function runStatus(
  opts: StatusOptions,
  out: (s: string) => void = (s) => process.stdout.write(s),
  err: (s: string) => void = (s) => process.stderr.write(s),
): Promise<number> {
  let base = opts.url;
  if (base === undefined) {
    try {
      const { config } = loadConfig(opts.config);
      if (!config.http.enabled) {
        err(`${opts.config}: http.enabled is false, so the daemon has no status endpoint; enable it or pass --url\n`);
        return EXIT.CONFIG;
      }
      base = statusUrl(config.http.host, config.http.port, config.http.tls.enabled);
    } catch (e) {
      if (e instanceof ConfigError && e.code === 'EH_ERR_CONFIG_READ') {
        // the installed config is 0640 root:edgehaul: any other user still gets the status, from the default address
        base = opts.defaultUrl ?? statusUrl(DEFAULT_HTTP.host, DEFAULT_HTTP.port);
        err(
          `${opts.config} cannot be read (${e.problems[0]?.message ?? 'error'}); asking the default address ${base} (--url to give another)\n`,
        );
      } else {
        if (e instanceof ConfigError)
          for (const p of e.problems) err(`${opts.config}: ${formatProblem(p)} [${e.code}]\n`);
        else err(`${opts.config}: ${(e as Error).message}\n`);
        return EXIT.CONFIG;
      }
    }
  }
  const url = `${base.replace(/\/+$/, '')}/status`;
  let report: StatusReport;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(opts.timeoutMs ?? 5000), headers: loginHeader() });
    if (res.status === 401) {
      err(
        `${url} asks for a login (http.auth): set EDGEHAUL_HTTP_USER and EDGEHAUL_HTTP_PASSWORD [EH_ERR_HTTP_AUTH]\n`,
      );
      return EXIT.FAILURE;
    }
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    report = (await res.json()) as StatusReport;
  } catch (e) {
    const cause = (e as Error & { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
    err(`edgehaul is not running, or not answering at ${url} (${cause}) [EH_ERR_STATUS_UNREACHABLE]\n`);
    return EXIT.UNAVAILABLE;
  }
  out(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatStatus(report));
  return EXIT.OK;
}
