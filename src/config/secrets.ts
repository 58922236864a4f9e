import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { inspect } from 'node:util';
import { EdgehaulError } from '../core/errors.js';
import type { Config } from './schema.js';

/**
 * A configured secret: inline (discouraged), from an environment variable or from a file
 * (systemd LoadCredential). config/schema.ts validates that exactly one is given; its
 * zod-inferred type satisfies this interface. Only config/ reads secrets: the loader resolves
 * them once (load.ts resolveSecrets) and the gateway hands the values to the stages.
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

type TlsSecrets = {
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
  add('kafka.sasl.password', cfg.kafka.sasl?.password);
  return out;
}

const REDACTED = '[redacted]';

/**
 * The values of the secrets a config uses, read once at load, by config key
 * (`kafka.sasl.password`, `kafka.tls.ca`, ...). Kept beside the config, never
 * in it: the config stays as written (a reload compares it as written). The
 * values sit in a private field: JSON (pino, /status), util.inspect and String()
 * show the keys only, so an accidental log line cannot print them.
 */
export class Secrets {
  readonly #values: ReadonlyMap<string, string>;

  constructor(values: Iterable<readonly [string, string]> = []) {
    this.#values = new Map(values);
    Object.freeze(this);
  }

  /** The value of a resolved secret, or undefined when the config names none at this key. */
  get(key: string): string | undefined {
    return this.#values.get(key);
  }

  /**
   * The value of a secret the config names at `key`: the loader resolved every used secret, so a
   * missing one is a wiring fault, reported by key and never by value.
   */
  require(key: string): string {
    const v = this.#values.get(key);
    if (v === undefined) throw new EdgehaulError('EH_ERR_CONFIG_SECRET', `secret ${key} was not resolved at load`);
    return v;
  }

  keys(): string[] {
    return [...this.#values.keys()];
  }

  toJSON(): Record<string, string> {
    return Object.fromEntries(this.keys().map((k) => [k, REDACTED]));
  }

  toString(): string {
    return `Secrets(${this.keys().join(', ')})`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

/** A TLS section with its PEM secrets replaced by their values: what the stages' TLS options take. */
export type WithPem<T> = Omit<T, 'ca' | 'cert' | 'key'> & {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
};

/** `tls` (at config key `prefix`) with the resolved PEM text in place of each configured secret. */
export function withPem<T extends TlsSecrets>(tls: T, secrets: Secrets, prefix: string): WithPem<T> {
  const { ca, cert, key, ...rest } = tls;
  const pem = (name: string, spec: Secret | undefined): { [k: string]: string } =>
    spec === undefined || !tls.enabled ? {} : { [name]: secrets.require(`${prefix}.${name}`) };
  return { ...rest, ...pem('ca', ca), ...pem('cert', cert), ...pem('key', key) };
}
