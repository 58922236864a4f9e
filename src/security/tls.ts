/**
 * TLS client settings as the stages read them: the PEM texts are values the config loader
 * resolved (config/secrets.ts), never secret specs; the gateway fills them in.
 */
export interface TlsClientSettings {
  readonly enabled: boolean;
  readonly ca?: string | undefined;
  readonly cert?: string | undefined;
  readonly key?: string | undefined;
  readonly servername?: string | undefined;
  readonly reject_unauthorized: boolean;
}

export interface TlsClientOptions {
  rejectUnauthorized: boolean;
  ca?: string;
  cert?: string;
  key?: string;
  servername?: string;
}

/** Node TLS client options for mqtt.js; undefined when TLS is off. */
export function tlsClientOptions(cfg: TlsClientSettings): TlsClientOptions | undefined {
  if (!cfg.enabled) return undefined;
  const out: TlsClientOptions = { rejectUnauthorized: cfg.reject_unauthorized };
  if (cfg.ca !== undefined) out.ca = cfg.ca;
  if (cfg.cert !== undefined) out.cert = cfg.cert;
  if (cfg.key !== undefined) out.key = cfg.key;
  if (cfg.servername !== undefined) out.servername = cfg.servername;
  return out;
}
