import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { LineCounter, parseDocument, isNode } from 'yaml';
import type { z } from 'zod';
import { EdgehaulError } from '../core/errors.js';
import { compileTopicPattern } from '../core/topic.js';
import { isLoopbackHost } from '../security/basic-auth.js';
import { Pipeline } from '../transform/pipeline.js';
import { StepConfigError } from '../transform/step.js';
import { configSchema, type Config } from './schema.js';
import { Secrets } from './resolved.js';
import { readSecret, usedSecrets } from './secrets.js';

export interface ConfigProblem {
  /** Dotted key path, e.g. `routes[1].topic`. */
  readonly key: string;
  /** 1-based line in the YAML file, when the key (or its nearest parent) is in the file. */
  readonly line: number | null;
  readonly message: string;
}

export interface LoadedConfig {
  readonly config: Readonly<Config>;
  readonly file: string;
  /** Resolved gateway id (config, else machine id, else hostname). */
  readonly gatewayId: string;
  /** Absolute path of the SQLite buffer. */
  readonly bufferPath: string;
}

/** A loaded config with the values of the secrets it uses, read once (resolveSecrets): what the daemon runs. */
export interface ResolvedConfig extends LoadedConfig {
  readonly secrets: Secrets;
}

export class ConfigError extends EdgehaulError {
  readonly problems: readonly ConfigProblem[];

  constructor(
    code:
      | 'EH_ERR_CONFIG_READ'
      | 'EH_ERR_CONFIG_YAML'
      | 'EH_ERR_CONFIG_INVALID'
      | 'EH_ERR_CONFIG_SECRET'
      | 'EH_ERR_CONFIG_HTTP_OPEN',
    file: string,
    problems: readonly ConfigProblem[],
  ) {
    super(code, `${file}: ${problems.map(formatProblem).join('; ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export function formatProblem(p: ConfigProblem): string {
  return `${p.line !== null ? `line ${p.line}: ` : ''}${p.key === '' ? '' : `${p.key}: `}${p.message}`;
}

export function formatKey(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : `${out === '' ? '' : '.'}${String(part)}`;
  return out;
}

/** Parse and validate YAML text. `file` only names the source in messages. */
export function parseConfig(text: string, file: string): Config {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      'EH_ERR_CONFIG_YAML',
      file,
      doc.errors.map((e) => ({
        key: '',
        line: e.linePos?.[0]?.line ?? null,
        message: (e.message.split('\n')[0] ?? e.message).replace(/ at line \d+, column \d+:?$/, ''),
      })),
    );
  }
  const raw: unknown = doc.toJS() ?? {};
  const lineOf = (path: readonly PropertyKey[]): number | null => {
    for (let n = path.length; n >= 0; n--) {
      const node = doc.getIn(path.slice(0, n) as unknown[], true);
      if (isNode(node) && node.range) return lines.linePos(node.range[0]).line;
    }
    return null;
  };
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(
      'EH_ERR_CONFIG_INVALID',
      file,
      parsed.error.issues.map((i) => issueToProblem(i, lineOf)),
    );
  }
  const cfg = parsed.data;
  const problems: ConfigProblem[] = [];
  cfg.routes.forEach((route, i) => {
    try {
      // compiles the filters, the key and every step (expressions included), as the daemon will
      new Pipeline([route], { gatewayId: 'check', deadLetterTopic: null });
    } catch (err) {
      const path = err instanceof StepConfigError ? ['routes', i, ...err.path] : ['routes', i];
      problems.push({ key: formatKey(path), line: lineOf(path), message: (err as Error).message });
    }
  });
  const client = cfg.ingest.client;
  if (client.connections.length > 0 && client.topics.length > 0) {
    problems.push({
      key: 'ingest.client.topics',
      line: lineOf(['ingest', 'client', 'topics']),
      message: 'give either topics (one connection) or connections (one filter list per connection), not both',
    });
  }
  [...client.topics, ...client.connections.flat()].forEach((filter) => {
    if (filter.startsWith('$share/')) {
      problems.push({
        key: 'ingest.client',
        line: lineOf(['ingest', 'client']),
        message: `"${filter}": shared subscriptions deliver one device's messages over several connections, out of order; split with connections instead`,
      });
    }
    try {
      compileTopicPattern(filter);
    } catch (err) {
      problems.push({ key: 'ingest.client', line: lineOf(['ingest', 'client']), message: (err as Error).message });
    }
  });
  if (problems.length > 0) throw new ConfigError('EH_ERR_CONFIG_INVALID', file, problems);
  if (cfg.http.enabled && !isLoopbackHost(cfg.http.host) && cfg.http.auth.users.length === 0) {
    // its own code: the rest of the config is fine, and what to do is specific
    throw new ConfigError('EH_ERR_CONFIG_HTTP_OPEN', file, [
      {
        key: 'http.host',
        line: lineOf(['http', 'host']),
        message: `"${cfg.http.host}" is beyond loopback: give http.auth.users (logins for the status page, /status and /metrics), or bind 127.0.0.1 and reach it over an SSH tunnel`,
      },
    ]);
  }
  return cfg;
}

function issueToProblem(
  issue: z.core.$ZodIssue,
  lineOf: (path: readonly PropertyKey[]) => number | null,
): ConfigProblem {
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys;
    return {
      key: formatKey(issue.path),
      line: lineOf([...issue.path, keys[0]!]),
      message: `unknown key${keys.length > 1 ? 's' : ''} ${keys.map((k) => `"${k}"`).join(', ')}`,
    };
  }
  return { key: formatKey(issue.path), line: lineOf(issue.path), message: issue.message };
}

/** Read, validate, resolve defaults that depend on the machine, and freeze. */
export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError('EH_ERR_CONFIG_READ', file, [{ key: '', line: null, message: (err as Error).message }]);
  }
  const config = parseConfig(text, file);
  return Object.freeze({
    config: deepFreeze(config),
    file,
    gatewayId: config.gateway.id !== '' ? config.gateway.id : machineGatewayId(),
    bufferPath: resolveStatePath(config.buffer.path, env),
  });
}

export function resolveStatePath(path: string, env: NodeJS.ProcessEnv = process.env): string {
  if (isAbsolute(path)) return path;
  // systemd's StateDirectory= may list several directories separated by ':'; the first is ours
  const stateDir = env.STATE_DIRECTORY?.split(':')[0];
  return resolve(stateDir !== undefined && stateDir !== '' ? stateDir : '.edgehaul', path);
}

/** Stable per machine: /etc/machine-id survives reboots and hostname changes; fall back to the hostname. */
export function machineGatewayId(): string {
  try {
    const id = readFileSync('/etc/machine-id', 'utf8').trim();
    if (/^[0-9a-f]{32}$/.test(id)) return `gw-${id.slice(0, 12)}`;
  } catch {
    // no machine id (containers, some minimal images): the hostname is the next best stable name
  }
  return (
    hostname()
      .replace(/[^A-Za-z0-9._:-]/g, '-')
      .slice(0, 128) || 'gateway'
  );
}

/**
 * Reads every secret the config uses, once, into a Secrets map beside the config (the config
 * stays as written), and throws a ConfigError EH_ERR_CONFIG_SECRET listing the missing ones by
 * key: a missing secret is a config problem (exit 78), found at start (or at a reload, which
 * then keeps the running config) rather than at the first connection. `envToo: false` skips
 * `{ env }` secrets (check-config run by hand does not have the service's environment).
 */
export function resolveSecrets(
  loaded: LoadedConfig,
  env: NodeJS.ProcessEnv = process.env,
  opts: { envToo?: boolean } = {},
): ResolvedConfig {
  const problems: ConfigProblem[] = [];
  const values: Array<[string, string]> = [];
  for (const { key, secret } of usedSecrets(loaded.config)) {
    if (secret.env !== undefined && opts.envToo === false) continue;
    try {
      values.push([key, readSecret(secret, env)]);
    } catch (err) {
      problems.push({ key, line: null, message: (err as Error).message });
    }
  }
  if (problems.length > 0) throw new ConfigError('EH_ERR_CONFIG_SECRET', loaded.file, problems);
  return Object.freeze({ ...loaded, secrets: new Secrets(values) });
}

/** loadConfig, then resolveSecrets: the config the daemon starts (and reloads) with. */
export function loadResolvedConfig(file: string, env: NodeJS.ProcessEnv = process.env): ResolvedConfig {
  return resolveSecrets(loadConfig(file, env), env);
}

/** Freezes an object and everything it holds: the running config is never changed in place. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
