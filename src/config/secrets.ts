import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { EdgehaulError } from '../core/errors.js';
import type { Config } from './schema.js';

/**
 * A configured secret: inline (discouraged), from an environment variable or from a file
 * (systemd LoadCredential). config/schema.ts validates that exactly one is given; its
 * zod-inferred type satisfies this interface. Only config/ imports this module (the architecture
 * test holds it): the loader resolves the secrets once (load.ts resolveSecrets) into a Secrets map
 * (resolved.ts) and the gateway hands the values to the stages.
 */
export interface Secret {
  readonly value?: string | undefined;
  readonly env?: string | undefined;
  readonly file?: string | undefined;
}

/** Reads a secret; an error names the variable or the file, never a value. */
export function readSecret(secret: Secret, env: NodeJS.ProcessEnv = process.env): string {
  if (secret.value !== undefined) return secret.value;
  if (secret.env !== undefined) {
    const v = env[secret.env];
    if (v === undefined)
      throw new EdgehaulError('EH_ERR_CONFIG_SECRET', `environment variable ${secret.env} is not set`);
    return v;
  }
  const file = secret.file!;
  const credDir = env.CREDENTIALS_DIRECTORY;
  const path = isAbsolute(file) || credDir === undefined ? file : resolve(credDir, file);
  try {
    return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw new EdgehaulError(
      'EH_ERR_CONFIG_SECRET',
      `secret file ${path} cannot be read: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
}

export type TlsSecrets = {
  readonly enabled: boolean;
  readonly ca?: Secret | undefined;
  readonly cert?: Secret | undefined;
  readonly key?: Secret | undefined;
};

/** The secrets the daemon reads with this config (only those of the parts it uses), each with its key. */
export function usedSecrets(cfg: Config): Array<{ key: string; secret: Secret }> {
  const out: Array<{ key: string; secret: Secret }> = [];
  const add = (key: string, secret: Secret | undefined): void => {
    if (secret !== undefined) out.push({ key, secret });
  };
  const tls = (prefix: string, t: TlsSecrets): void => {
    if (!t.enabled) return;
    add(`${prefix}.ca`, t.ca);
    add(`${prefix}.cert`, t.cert);
    add(`${prefix}.key`, t.key);
  };
  if (cfg.ingest.mode === 'embedded') {
    tls('ingest.embedded.tls', cfg.ingest.embedded.tls);
  } else {
    add('ingest.client.password', cfg.ingest.client.password);
    tls('ingest.client.tls', cfg.ingest.client.tls);
  }
  tls('kafka.tls', cfg.kafka.tls);
  if (cfg.http.enabled) tls('http.tls', cfg.http.tls);
  add('kafka.sasl.password', cfg.kafka.sasl?.password);
  return out;
}
