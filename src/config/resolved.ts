import { inspect } from 'node:util';
import { EdgehaulError } from '../core/errors.js';
import type { Secret, TlsSecrets } from './secrets.js';

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
