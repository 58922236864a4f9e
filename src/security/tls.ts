import { readSecret, type Secret, type TlsClientSettings } from '../core/secret.js';

/** PEM text of a configured secret (file, env or systemd credential), or undefined when not configured. */
export function readPem(secret: Secret | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return secret === undefined ? undefined : readSecret(secret, env);
}

export interface TlsClientOptions {
  rejectUnauthorized: boolean;
  ca?: string;
  cert?: string;
  key?: string;
  servername?: string;
}

/** Node TLS client options for mqtt.js; undefined when TLS is off. */
export function tlsClientOptions(
  cfg: TlsClientSettings,
  env: NodeJS.ProcessEnv = process.env,
): TlsClientOptions | undefined {
  if (!cfg.enabled) return undefined;
  const out: TlsClientOptions = { rejectUnauthorized: cfg.reject_unauthorized };
  const ca = readPem(cfg.ca, env);
  const cert = readPem(cfg.cert, env);
  const key = readPem(cfg.key, env);
  if (ca !== undefined) out.ca = ca;
  if (cert !== undefined) out.cert = cert;
  if (key !== undefined) out.key = key;
  if (cfg.servername !== undefined) out.servername = cfg.servername;
  return out;
}
