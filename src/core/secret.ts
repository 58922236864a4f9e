import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { EdgehaulError } from './errors.js';

/**
 * A configured secret: inline (discouraged), from an environment variable or from a file
 * (systemd LoadCredential). config/schema.ts validates that exactly one is given; its
 * zod-inferred type satisfies this interface.
 */
export interface Secret {
  readonly value?: string | undefined;
  readonly env?: string | undefined;
  readonly file?: string | undefined;
}

/** TLS client settings as the stages read them (config/schema.ts's tlsClientSchema satisfies it). */
export interface TlsClientSettings {
  readonly enabled: boolean;
  readonly ca?: Secret | undefined;
  readonly cert?: Secret | undefined;
  readonly key?: Secret | undefined;
  readonly servername?: string | undefined;
  readonly reject_unauthorized: boolean;
}

/** Reads a secret without ever logging its value. */
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
