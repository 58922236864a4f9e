import { formatBytes } from '../core/format.js';
import { accessSync, constants, statSync } from 'node:fs';
import { basename, dirname, isAbsolute } from 'node:path';
import Database from 'better-sqlite3';
import { EdgehaulError, EXIT } from '../core/errors.js';
import { ConfigError, formatProblem, loadConfig } from '../config/load.js';

/**
 * `edgehaul inspect`: what the buffer holds, read while the daemon runs.
 *
 * The buffer is opened read-only; in WAL mode a reader sits next to the
 * daemon's writer without blocking it, and all figures come from one read
 * transaction, so they are one consistent snapshot. Only aggregate SQL over
 * the row headers (no body is decoded; length() of a blob does not read it),
 * so it stays cheap on a full 256 MB buffer.
 */

export interface InspectRoute {
  readonly route: string;
  /** Highest priority among the route's rows (the configured one when nothing is buffered). */
  readonly priority: number;
  /** [lowest, highest] when the rows carry different priorities (the config changed meanwhile). */
  readonly priorities?: readonly [number, number];
  readonly events: number;
  /** Stored bytes (CBOR bodies). */
  readonly bytes: number;
  /** Rows: one per route per group commit. */
  readonly commits: number;
  /** received-at of the oldest buffered event, ms since the epoch; null when empty. */
  readonly oldestReceivedAt: number | null;
  /** Whether the loaded config has a route of this name. */
  readonly inConfig: boolean;
}

export interface InspectReport {
  readonly path: string;
  readonly exists: boolean;
  readonly schemaVersion: number | null;
  /** Sequence number the next accepted event gets; null when there is no buffer yet. */
  readonly nextSeq: number | null;
  readonly fileBytes: { readonly db: number; readonly wal: number };
  readonly routes: readonly InspectRoute[];
  readonly deadLetters: DeadLetters;
}

export interface DeadLetters {
  /** Whether the buffer has a `dead_letters` table. */
  readonly table: boolean;
  readonly count: number;
  readonly columns: readonly string[];
  /** Up to 10 most recent rows (latest first), every column as stored. */
  readonly recent: ReadonlyArray<Record<string, SqliteValue>>;
}

/** What better-sqlite3 returns for a column: SQLite's NULL, INTEGER (as bigint when safeIntegers), REAL, TEXT, BLOB. */
export type SqliteValue = null | number | bigint | string | Buffer;

/** The buffer exists but cannot be read; the message names the file. */
export class InspectError extends EdgehaulError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('EH_ERR_STORE_OPEN', message, options);
    this.name = 'InspectError';
  }
}

const RECENT_DEAD_LETTERS = 10;

/** Reads the figures of the buffer at `path`. A missing file is an empty report, not an error. */
export function inspectBuffer(
  path: string,
  configured: ReadonlyArray<{ name: string; priority: number }> = [],
): InspectReport {
  const configuredRoutes = (): InspectRoute[] =>
    configured.map((r) => ({
      route: r.name,
      priority: r.priority,
      events: 0,
      bytes: 0,
      commits: 0,
      oldestReceivedAt: null,
      inConfig: true,
    }));

  let isFile: boolean;
  try {
    isFile = statSync(path).isFile();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      return {
        path,
        exists: false,
        schemaVersion: null,
        nextSeq: null,
        fileBytes: { db: 0, wal: 0 },
        routes: sortRoutes(configuredRoutes()),
        deadLetters: { table: false, count: 0, columns: [], recent: [] },
      };
    }
    throw new InspectError(
      `cannot read buffer ${path}: ${code === 'EACCES' ? `permission denied on ${dirname(path)}; run as the daemon's user (e.g. sudo -u edgehaul), a member of its group, or root` : (err as Error).message}`,
    );
  }
  if (!isFile) throw new InspectError(`buffer ${path} is not a file`);
  try {
    accessSync(path, constants.R_OK);
  } catch {
    throw new InspectError(
      `cannot read buffer ${path}: permission denied; run as the daemon's user (e.g. sudo -u edgehaul), a member of its group, or root`,
    );
  }

  let db: Database.Database | null = null;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
    const snapshot = db.transaction((d: Database.Database) => readFigures(d, path))(db);
    const byName = new Map(snapshot.routes.map((r) => [r.route, r]));
    const routes: InspectRoute[] = snapshot.routes.map((r) => ({
      ...r,
      inConfig: configured.some((c) => c.name === r.route),
    }));
    for (const r of configuredRoutes()) if (!byName.has(r.route)) routes.push(r);
    return {
      path,
      exists: true,
      schemaVersion: snapshot.schemaVersion,
      nextSeq: snapshot.nextSeq,
      fileBytes: fileBytes(path),
      routes: sortRoutes(routes),
      deadLetters: snapshot.deadLetters,
    };
  } catch (err) {
    if (err instanceof InspectError) throw err;
    throw new InspectError(explainOpenError(path, err as Error & { code?: string }), { cause: err });
  } finally {
    try {
      db?.close();
    } catch {
      // closing a read-only handle on a damaged file may fail; nothing was written
    }
  }
}

/** In sending order: highest priority first. */
function sortRoutes(routes: InspectRoute[]): InspectRoute[] {
  return routes.sort((a, b) => b.priority - a.priority || a.route.localeCompare(b.route));
}

function readFigures(
  db: Database.Database,
  path: string,
): {
  schemaVersion: number | null;
  nextSeq: number | null;
  routes: Array<Omit<InspectRoute, 'inConfig'>>;
  deadLetters: DeadLetters;
} {
  const tables = new Set(
    (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Array<{ name: string }>).map(
      (t) => t.name,
    ),
  );
  if (!tables.has('commits')) throw new InspectError(`buffer ${path} has no "commits" table: not an edgehaul buffer`);
  const meta = (key: string): number | null => {
    if (!tables.has('meta')) return null;
    return (
      (db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: number } | undefined)?.value ?? null
    );
  };
  // a version 1 buffer (not yet migrated by the daemon) has no route or priority columns
  const columns = new Set((db.pragma('table_info(commits)') as Array<{ name: string }>).map((c) => c.name));
  const route = columns.has('route') ? 'route' : "''";
  const priority = columns.has('priority') ? 'priority' : '0';
  const rows = db
    .prepare(
      `SELECT ${route} AS route, count(*) AS commits, sum(event_count) AS events, sum(length(body)) AS bytes,
            min(oldest_ms) AS oldest, min(${priority}) AS pmin, max(${priority}) AS pmax
     FROM commits GROUP BY ${route}`,
    )
    .all() as Array<{
    route: string;
    commits: number;
    events: number;
    bytes: number;
    oldest: number;
    pmin: number;
    pmax: number;
  }>;
  // the daemon writes meta.next_seq only with deletes; the rows carry the numbers used since
  const rowsEnd = (db.prepare('SELECT max(first_seq + event_count) AS v FROM commits').get() as { v: number | null }).v;
  const metaNext = meta('next_seq');
  return {
    schemaVersion: meta('schema_version'),
    nextSeq: metaNext === null && rowsEnd === null ? null : Math.max(metaNext ?? 0, rowsEnd ?? 0),
    routes: rows.map((r) => ({
      route: r.route,
      priority: r.pmax,
      ...(r.pmin !== r.pmax ? { priorities: [r.pmin, r.pmax] as const } : {}),
      events: r.events,
      bytes: r.bytes,
      commits: r.commits,
      oldestReceivedAt: r.oldest,
    })),
    deadLetters: tables.has('dead_letters') ? readDeadLetters(db) : { table: false, count: 0, columns: [], recent: [] },
  };
}

/** The dead-letter table's layout is not fixed yet: count it and show its latest rows column by column. */
function readDeadLetters(db: Database.Database): DeadLetters {
  const count = (db.prepare('SELECT count(*) AS n FROM dead_letters').get() as { n: number }).n;
  const columns = (db.pragma('table_info(dead_letters)') as Array<{ name: string }>).map((c) => c.name);
  let recent: Array<Record<string, SqliteValue>>;
  try {
    recent = db.prepare(`SELECT * FROM dead_letters ORDER BY rowid DESC LIMIT ${RECENT_DEAD_LETTERS}`).all() as Array<
      Record<string, SqliteValue>
    >;
  } catch {
    // a WITHOUT ROWID table: no insertion order to go by
    recent = db.prepare(`SELECT * FROM dead_letters LIMIT ${RECENT_DEAD_LETTERS}`).all() as Array<
      Record<string, SqliteValue>
    >;
  }
  return { table: true, count, columns, recent };
}

function fileBytes(path: string): { db: number; wal: number } {
  const size = (p: string): number => {
    try {
      return statSync(p).size;
    } catch {
      return 0;
    }
  };
  return { db: size(path), wal: size(`${path}-wal`) };
}

/** Turns SQLite's open/read errors into a sentence an operator can act on. */
function explainOpenError(path: string, err: Error & { code?: string }): string {
  const code = err.code ?? '';
  const why = `${err.message}${code !== '' ? ` (${code})` : ''}`;
  if (code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT')) {
    return `buffer ${path} is damaged or not an SQLite database: ${why}`;
  }
  if (code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_CANTOPEN')) {
    // WAL mode: a reader needs the -shm (and -wal) files beside the database. An existing -shm it may
    // only read is fine (SQLite then builds the index in memory); a missing one it must create.
    const state = (suffix: string): string => {
      const file = `${path}${suffix}`;
      try {
        statSync(file);
      } catch {
        return `${basename(file)} missing`;
      }
      try {
        accessSync(file, constants.R_OK);
        return `${basename(file)} readable`;
      } catch {
        return `${basename(file)} not readable`;
      }
    };
    let dirWritable = true;
    try {
      accessSync(dirname(path), constants.W_OK);
    } catch {
      dirWritable = false;
    }
    return (
      `cannot open buffer ${path} read-only: ${why}. The buffer is in WAL mode: a reader needs its -shm and -wal files ` +
      `(${state('-shm')}, ${state('-wal')}), and when they are missing (the daemon is stopped) it must create them` +
      `${dirWritable ? '' : `, but ${dirname(path)} is not writable by this user`}. ` +
      `Run inspect as the daemon's user (e.g. sudo -u edgehaul) or root, or while the daemon runs`
    );
  }
  return `cannot read buffer ${path}: ${why}`;
}

/** "42s", "12m5s", "3h12m", "2d4h". */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${m % 60}m`;
  return `${Math.floor(h / 24)}d${h % 24}h`;
}

export { formatBytes };

interface Totals {
  events: number;
  bytes: number;
  commits: number;
  oldestReceivedAt: number | null;
}

function totals(report: InspectReport): Totals {
  const t: Totals = { events: 0, bytes: 0, commits: 0, oldestReceivedAt: null };
  for (const r of report.routes) {
    t.events += r.events;
    t.bytes += r.bytes;
    t.commits += r.commits;
    if (r.oldestReceivedAt !== null && (t.oldestReceivedAt === null || r.oldestReceivedAt < t.oldestReceivedAt))
      t.oldestReceivedAt = r.oldestReceivedAt;
  }
  return t;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
const age = (oldest: number | null, now: number): { oldest_age_ms: number | null; oldest_age: string | null } =>
  oldest === null
    ? { oldest_age_ms: null, oldest_age: null }
    : { oldest_age_ms: Math.max(0, now - oldest), oldest_age: formatAge(now - oldest) };

/** A dead-letter cell as JSON can carry it: blobs as their size, not their bytes. */
function cellValue(v: unknown): unknown {
  if (Buffer.isBuffer(v)) {
    const text = printable(v);
    return text !== null ? { blob_bytes: v.length, text } : { blob_bytes: v.length, base64: v.toString('base64') };
  }
  if (typeof v === 'bigint') return v.toString();
  return v;
}

/** The `--json` form: one object, snake_case like `decode`'s output. */
export function reportToJson(
  report: InspectReport,
  maxBytes: number | null,
  now: number = Date.now(),
): Record<string, unknown> {
  const t = totals(report);
  return {
    buffer: report.path,
    exists: report.exists,
    schema_version: report.schemaVersion,
    next_seq: report.nextSeq,
    file_bytes: {
      db: report.fileBytes.db,
      wal: report.fileBytes.wal,
      total: report.fileBytes.db + report.fileBytes.wal,
    },
    max_bytes: maxBytes,
    routes: report.routes.map((r) => ({
      route: r.route,
      priority: r.priority,
      ...(r.priorities !== undefined ? { priorities: r.priorities } : {}),
      events: r.events,
      bytes: r.bytes,
      commits: r.commits,
      oldest_received_at: iso(r.oldestReceivedAt),
      ...age(r.oldestReceivedAt, now),
      in_config: r.inConfig,
    })),
    total: {
      events: t.events,
      bytes: t.bytes,
      commits: t.commits,
      oldest_received_at: iso(t.oldestReceivedAt),
      ...age(t.oldestReceivedAt, now),
    },
    dead_letters: {
      table: report.deadLetters.table,
      count: report.deadLetters.count,
      ...(report.deadLetters.table
        ? {
            columns: report.deadLetters.columns,
            recent: report.deadLetters.recent.map((row) =>
              Object.fromEntries(Object.entries(row).map(([k, v]) => [k, cellValue(v)])),
            ),
          }
        : {}),
    },
  };
}

/** A dead-letter cell for a terminal line: epoch-ms times as ISO, blobs as their size, long text cut. */
function cellText(column: string, v: SqliteValue | undefined): string {
  if (v === null || v === undefined) return '-';
  if (Buffer.isBuffer(v)) {
    const text = printable(v);
    if (text === null) return `<${v.length} bytes>`;
    return JSON.stringify(text.length > 80 ? `${text.slice(0, 77)}...` : text);
  }
  if (typeof v === 'number' && /(^|_)(time|ts|at|ms)$|_at$|_ms$/i.test(column) && v > 1e12 && v < 1e14)
    return new Date(v).toISOString();
  const s = String(v);
  const cut = s.length > 80 ? `${s.slice(0, 77)}...` : s;
  return /[\s"=]/.test(cut) || cut === '' ? JSON.stringify(cut) : cut;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
/** A payload that is text without control characters (JSON, numbers), else null. */
function printable(bytes: Buffer): string | null {
  try {
    const s = strictUtf8.decode(bytes);
    // eslint-disable-next-line no-control-regex -- control characters other than whitespace are what is looked for
    return /[\u0000-\u0008\u000e-\u001f\u007f]/.test(s) ? null : s;
  } catch {
    return null;
  }
}

/** The terminal form. */
export function formatReport(
  report: InspectReport,
  maxBytes: number | null,
  now: number = Date.now(),
  opts: { relativePathWithoutStateDir?: boolean } = {},
): string {
  const out: string[] = [];
  const num = (n: number): string => n.toLocaleString('en-US');
  if (report.exists) {
    const { db, wal } = report.fileBytes;
    out.push(
      `buffer ${report.path}: ${formatBytes(db + wal)} on disk (db ${formatBytes(db)} + wal ${formatBytes(wal)})`,
    );
  } else {
    out.push(
      `buffer ${report.path}: does not exist yet (a fresh install, or the daemon has not run with this config): nothing buffered`,
    );
    if (opts.relativePathWithoutStateDir === true) {
      out.push(
        '  (a relative buffer.path is resolved against $STATE_DIRECTORY, else ./.edgehaul; under systemd that is /var/lib/edgehaul: set STATE_DIRECTORY=/var/lib/edgehaul to look there)',
      );
    }
  }
  const t = totals(report);
  const header = ['route', 'priority', 'events', 'bytes', 'commits', 'oldest'];
  const rows = report.routes.map((r) => [
    `${r.route === '' ? '(none)' : r.route}${r.inConfig ? '' : ' (not in config)'}`,
    r.priorities !== undefined ? `${r.priorities[0]}..${r.priorities[1]}` : String(r.priority),
    num(r.events),
    formatBytes(r.bytes),
    num(r.commits),
    r.oldestReceivedAt === null ? '-' : formatAge(now - r.oldestReceivedAt),
  ]);
  rows.push([
    'total',
    '',
    num(t.events),
    formatBytes(t.bytes),
    num(t.commits),
    t.oldestReceivedAt === null ? '-' : formatAge(now - t.oldestReceivedAt),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  out.push(line(header));
  for (const r of rows) out.push(line(r));
  if (maxBytes !== null && maxBytes > 0)
    out.push(
      `buffer use: ${formatBytes(t.bytes)} of ${formatBytes(maxBytes)} (buffer.max_bytes), ${((100 * t.bytes) / maxBytes).toFixed(1)}%`,
    );
  out.push(`next sequence number: ${report.nextSeq ?? '1 (when the buffer is created)'}`);
  const dl = report.deadLetters;
  if (!dl.table) {
    out.push('dead letters: 0');
  } else {
    out.push(`dead letters: ${num(dl.count)}${dl.recent.length > 0 ? `, most recent ${dl.recent.length}:` : ''}`);
    for (const row of dl.recent)
      out.push(
        `  ${Object.entries(row)
          .map(([k, v]) => `${k}=${cellText(k, v)}`)
          .join(' ')}`,
      );
  }
  return `${out.join('\n')}\n`;
}

/** The command: returns the exit code. */
export function runInspect(configFile: string, json: boolean): number {
  let bufferPath: string;
  let configured: Array<{ name: string; priority: number }>;
  let maxBytes: number;
  let relativePathWithoutStateDir: boolean;
  try {
    const loaded = loadConfig(configFile);
    bufferPath = loaded.bufferPath;
    configured = loaded.config.routes.map((r) => ({ name: r.name, priority: r.priority }));
    maxBytes = loaded.config.buffer.max_bytes;
    relativePathWithoutStateDir = !isAbsolute(loaded.config.buffer.path) && (process.env.STATE_DIRECTORY ?? '') === '';
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const p of err.problems) process.stderr.write(`${configFile}: ${formatProblem(p)} [${err.code}]\n`);
    } else {
      process.stderr.write(`${configFile}: ${(err as Error).message}\n`);
    }
    return EXIT.CONFIG;
  }
  let report: InspectReport;
  try {
    report = inspectBuffer(bufferPath, configured);
  } catch (err) {
    const e = err as Error & { code?: string };
    process.stderr.write(`${e.message}${e.code !== undefined ? ` [${e.code}]` : ''}\n`);
    return EXIT.FAILURE;
  }
  const now = Date.now();
  process.stdout.write(
    json
      ? `${JSON.stringify(reportToJson(report, maxBytes, now))}\n`
      : formatReport(report, maxBytes, now, { relativePathWithoutStateDir }),
  );
  return EXIT.OK;
}
