import { formatBytes as bytes } from '../core/format.js';
import { readFileSync } from 'node:fs';
import type { FlashReport } from './flash.js';
import type { Health } from './health.js';
import type { DeadLetterView } from './recent-dead-letters.js';
import type { SystemSample } from './system.js';

/** The package version (dist/src/ops/status.js -> package.json). */
export const VERSION: string = (() => {
  try {
    return (
      (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string })
        .version ?? 'unknown'
    );
  } catch {
    return 'unknown';
  }
})();

/** GET /status: what `edgehaul status` prints. Field names carry their unit. */
export interface StatusReport {
  readonly gateway_id: string;
  readonly version: string;
  readonly started_at: string;
  readonly uptime_secs: number;
  readonly health: Health;
  readonly devices: { readonly connected: number };
  /** events/s over the last rate interval (committed to the buffer / delivered to Kafka) */
  readonly rates: {
    readonly in_events_per_sec: number;
    readonly out_events_per_sec: number;
    readonly interval_secs: number;
  };
  readonly buffer: {
    readonly events: number;
    readonly bytes: number;
    readonly max_bytes: number;
    readonly oldest_age_secs: number | null;
    readonly file_bytes: number | null;
    /** seconds until empty at the last interval's rates; 0: empty; null: not shrinking (or not measured yet) */
    readonly drain_eta_secs: number | null;
    readonly routes: Record<
      string,
      { readonly events: number; readonly bytes: number; readonly oldest_age_secs: number | null }
    >;
  };
  readonly upstream: {
    readonly connected: boolean;
    readonly brokers: readonly string[];
    /** age of the oldest event not yet delivered */
    readonly lag_secs: number | null;
    readonly upload_window: { readonly configured: boolean; readonly open: boolean; readonly exempt_priority: number };
  };
  readonly drops: {
    /** lost_events_total summed over routes */
    readonly by_reason: Record<string, number>;
    readonly unrouted_messages: number;
    readonly oversize_messages: number;
  };
  /** total: events sent to the dead-letter store since start; stored: held there now (null until the store exists); recent: the last few, newest first */
  readonly dead_letters: {
    readonly total: number;
    readonly stored: number | null;
    readonly recent: readonly DeadLetterView[];
  };
  /** flash wear: bytes written by edgehaul and by the buffer's whole device, per day, and days of life left */
  readonly flash: FlashReport;
  readonly system: SystemSample;
  /** every counter of the gateway, as in the stats log line */
  readonly stats: Record<string, unknown>;
}

export function formatStatus(s: StatusReport): string {
  const rows: Array<[string, string]> = [];
  const b = s.buffer;
  const sys = s.system;
  rows.push(['uptime', `${duration(s.uptime_secs)} (since ${s.started_at})`]);
  rows.push(['devices', `${s.devices.connected} connected`]);
  rows.push([
    'rates',
    s.rates.interval_secs === 0
      ? 'not measured yet (every 10 s)'
      : `in ${s.rates.in_events_per_sec} events/s, out ${s.rates.out_events_per_sec} events/s (last ${s.rates.interval_secs} s)`,
  ]);
  rows.push([
    'buffer',
    `${b.events} events, ${bytes(b.bytes)} of ${bytes(b.max_bytes)} (${pct(b.bytes, b.max_bytes)}), oldest ${b.oldest_age_secs === null ? '-' : duration(b.oldest_age_secs)}`,
  ]);
  for (const [route, r] of Object.entries(b.routes)) {
    rows.push([
      `  ${route}`,
      `${r.events} events, ${bytes(r.bytes)}, oldest ${r.oldest_age_secs === null ? '-' : duration(r.oldest_age_secs)}`,
    ]);
  }
  const w = s.upstream.upload_window;
  rows.push([
    'upstream',
    `kafka ${s.upstream.connected ? 'connected' : 'NOT connected'} (${s.upstream.brokers.join(', ')}), lag ${s.upstream.lag_secs === null ? '0 s' : duration(s.upstream.lag_secs)}${w.configured ? `, upload window ${w.open ? 'open' : `closed (priority >= ${w.exempt_priority} still sent)`}` : ''}`,
  ]);
  rows.push([
    'drops',
    `${Object.entries(s.drops.by_reason)
      .map(([r, n]) => `${r} ${n}`)
      .join(', ')}; unrouted ${s.drops.unrouted_messages}, oversize ${s.drops.oversize_messages}`,
  ]);
  rows.push([
    'dead letters',
    `${s.dead_letters.total}${s.dead_letters.stored !== null ? ` (${s.dead_letters.stored} stored)` : ''}`,
  ]);
  rows.push(['flash', formatFlash(s.flash)]);
  rows.push([
    'cpu',
    `load ${sys.cpu_load_percent === null ? '-' : `${sys.cpu_load_percent}%`}, load avg ${sys.load_avg_1m}, temperature ${sys.cpu_temperature_celsius === null ? 'n/a' : `${sys.cpu_temperature_celsius} °C`}`,
  ]);
  const m = sys.memory;
  rows.push([
    'memory',
    `edgehaul ${bytes(m.process_rss_bytes)}; system ${m.available_bytes === null ? '-' : bytes(m.available_bytes)} available of ${m.total_bytes === null ? '-' : bytes(m.total_bytes)}`,
  ]);
  rows.push([
    'disk',
    sys.disk === null
      ? 'unknown'
      : `${bytes(sys.disk.free_bytes)} free of ${bytes(sys.disk.size_bytes)} (${sys.disk.path})`,
  ]);
  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  const head = `edgehaul ${s.gateway_id} (${s.version}): ${s.health.status}${s.health.reasons.length > 0 ? `\n${s.health.reasons.map((r) => `  - ${r}`).join('\n')}` : ''}`;
  return `${head}\n${rows.map(([k, v]) => `${k.padEnd(width)}${v}`).join('\n')}\n`;
}

/** One line: who writes how much a day, and the days left ("-": not measured yet). */
export function formatFlash(f: FlashReport | undefined): string {
  if (f === undefined) return 'unknown (daemon too old)';
  const perDay = (n: number | null): string => (n === null ? '-' : `${bytes(n)}/day`);
  const dev =
    f.device === null
      ? `device unknown (${f.device_unknown_reason ?? '-'})`
      : `device ${f.device.name}${f.device.partition !== null ? ` (${f.device.partition})` : ''} ${perDay(f.device_bytes_per_day)}, ${f.device_written_bytes === null ? '-' : bytes(f.device_written_bytes)} since boot`;
  const life =
    f.days_left === null ? 'life left: not known yet' : `life left ${f.days_left} days of ${bytes(f.endurance_bytes)}`;
  const budget = f.budget_bytes_per_day === null ? 'no budget' : `budget ${bytes(f.budget_bytes_per_day)}/day`;
  return `edgehaul ${perDay(f.process_bytes_per_day)}; ${dev}; ${life}; ${budget}`;
}

function duration(secs: number): string {
  const s = Math.round(secs);
  if (s < 60) return `${s} s`;
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return [d > 0 ? `${d}d` : '', h > 0 || d > 0 ? `${h}h` : '', `${m}m`, `${s % 60}s`].filter((x) => x !== '').join(' ');
}

function pct(a: number, b: number): string {
  return b > 0 ? `${((100 * a) / b).toFixed(1)}%` : '-';
}
