import type { Config } from './schema.js';
import { Secrets } from './resolved.js';

/**
 * Which settings a running gateway can change, in one place. A key takes the
 * entry of its longest listed prefix; a key listed nowhere needs a restart, so
 * a new setting is never reported as applied before someone made it live.
 */
export const APPLY: Readonly<Record<string, 'live' | 'restart'>> = Object.freeze({
  // the machine's identity is in every batch and in the buffer's meaning of "ours"
  'gateway.id': 'restart',
  // the listener and the upstream MQTT sessions: changing them drops every device connection
  'ingest.mode': 'restart',
  'ingest.embedded': 'restart',
  'ingest.client': 'restart',
  'ingest.max_payload_bytes': 'live',
  // the SQLite file, its sync mode and its size cap are fixed when the file is opened
  'buffer.path': 'restart',
  'buffer.synchronous': 'restart',
  'buffer.max_bytes': 'restart',
  'buffer.disk_reserve_bytes': 'live',
  'buffer.ttl_secs': 'live',
  'buffer.memory': 'live',
  'buffer.commit': 'live',
  'buffer.flash_budget_bytes_per_day': 'live',
  'buffer.flash_budget_max_wait_ms': 'live',
  // a new producer takes over after the batch in flight was acknowledged
  kafka: 'live',
  // steps too: unchanged routes keep their state, changed ones close their windows into the buffer
  routes: 'live',
  'dead_letters.keep': 'live',
  'dead_letters.max_bytes': 'live',
  // the pipeline is built with the dead-letter destination
  'dead_letters.forward': 'restart',
  'dead_letters.topic': 'restart',
  log: 'live',
  shutdown: 'live',
  reload: 'live',
  // operations: the HTTP listener is bound at start; the rest is read live or rebuilt on apply
  http: 'restart',
  health: 'live',
  telemetry: 'live',
  schedules: 'live',
});

export interface ConfigChange {
  /** Dotted path, e.g. `kafka.linger_ms`; arrays (routes, brokers) change as a whole. */
  readonly key: string;
  readonly path: readonly string[];
  readonly live: boolean;
}

export interface ConfigDiff {
  /** Null at boot: everything is new. */
  readonly from: Readonly<Config> | null;
  readonly to: Readonly<Config>;
  readonly changes: readonly ConfigChange[];
}

/** How a key is applied; see APPLY. */
export function applyMode(key: string): 'live' | 'restart' {
  const parts = key.split('.');
  for (let n = parts.length; n > 0; n--) {
    const mode = APPLY[parts.slice(0, n).join('.')];
    if (mode !== undefined) return mode;
  }
  return 'restart';
}

/**
 * The settings that differ between the running config and the new one. At boot
 * (`from` null) every top-level section is a change, so boot and reload take
 * the same path through `Gateway.apply`.
 */
export function diffConfig(from: Readonly<Config> | null, to: Readonly<Config>): ConfigDiff {
  const changes: ConfigChange[] = [];
  const add = (path: string[]): void => {
    const key = path.join('.');
    changes.push({ key, path, live: applyMode(key) === 'live' });
  };
  if (from === null) {
    for (const key of Object.keys(to)) add([key]);
    return { from, to, changes };
  }
  const walk = (a: unknown, b: unknown, path: string[]): void => {
    if (isPlainObject(a) && isPlainObject(b)) {
      for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) walk(a[key], b[key], [...path, key]);
      return;
    }
    if (!sameValue(a, b)) add(path);
  };
  walk(from, to, []);
  return { from, to, changes };
}

/** True when `key` or something below it changed. */
export function changed(diff: ConfigDiff, key: string): boolean {
  return diff.changes.some((c) => c.key === key || c.key.startsWith(`${key}.`) || key.startsWith(`${c.key}.`));
}

/**
 * The config the gateway runs after a reload: the new one, except that
 * settings needing a restart keep their running values until the next start.
 */
export function effectiveConfig(diff: ConfigDiff): Config {
  const next = structuredClone(diff.to) as Config;
  if (diff.from === null) return next;
  for (const c of diff.changes) {
    if (c.live) continue;
    setIn(next, c.path, structuredClone(getIn(diff.from, c.path)));
  }
  return next;
}

/**
 * The secrets the gateway runs with after a reload, as effectiveConfig: the new values for
 * settings applied live (a new Kafka producer uses them), the running values for those that wait
 * for a restart (a listener's certificate is read again at the next start).
 */
export function effectiveSecrets(running: Secrets, next: Secrets): Secrets {
  const values: Array<[string, string]> = [];
  for (const key of next.keys()) if (applyMode(key) === 'live') values.push([key, next.require(key)]);
  for (const key of running.keys()) if (applyMode(key) !== 'live') values.push([key, running.require(key)]);
  return new Secrets(values);
}

function getIn(value: unknown, path: readonly string[]): unknown {
  let v = value;
  for (const p of path) v = isPlainObject(v) ? v[p] : undefined;
  return v;
}

function setIn(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let t = target;
  for (const p of path.slice(0, -1)) {
    if (!isPlainObject(t[p])) t[p] = {};
    t = t[p] as Record<string, unknown>;
  }
  const last = path[path.length - 1]!;
  if (value === undefined) delete t[last];
  else t[last] = value;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((v, i) => sameValue(v, b[i]));
  if (isPlainObject(a) && isPlainObject(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of keys) if (!sameValue(a[k], b[k])) return false;
    return true;
  }
  return false;
}
