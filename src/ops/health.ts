/**
 * The health rules, as a pure function of what the gateway knows, so that
 * /healthz, the stats log line, `edgehaul status`, the metrics and the
 * telemetry records all say the same thing.
 *
 * failing: the gateway is not doing its job right now and needs a person:
 *   devices are not being acknowledged (a full `block` route holds their
 *   PUBACKs), or the store is not writable (the last commit failed and none
 *   succeeded since). /healthz answers 503.
 * degraded: data is safe but something needs attention: Kafka unreachable with
 *   events waiting, Kafka refusing our credentials, the buffer above its threshold, a loss counted recently,
 *   the disk low, a damaged store found at start (within the hour), the flash
 *   device near the end of its rated life at its current write rate. 200.
 */
export type HealthStatus = 'ok' | 'degraded' | 'failing';

/** Stable, low-cardinality reason codes: metrics label values and the prefix of each reason text. */
export const HEALTH_REASONS = {
  acks_held: 'failing',
  store_not_writable: 'failing',
  upstream_down: 'degraded',
  upstream_auth: 'degraded',
  upstream_unconfirmed: 'degraded',
  buffer_high: 'degraded',
  events_lost: 'degraded',
  disk_low: 'degraded',
  store_damaged: 'degraded',
  flash_wear: 'degraded',
} as const satisfies Record<string, Exclude<HealthStatus, 'ok'>>;

export type HealthReason = keyof typeof HEALTH_REASONS;

export interface Health {
  readonly status: HealthStatus;
  /** "<code>: <what a person reads>", worst first. */
  readonly reasons: string[];
  readonly codes: HealthReason[];
}

export interface HealthInput {
  readonly now: number;
  readonly upstreamConnected: boolean;
  /** null: the store is closed or not open yet */
  readonly buffer: { readonly events: number; readonly bytes: number } | null;
  readonly maxBytes: number;
  readonly lastLossAt: number;
  readonly blockedMessages: number;
  /** ms since epoch; 0: never */
  readonly storeDamagedAt: number;
  readonly lastCommitAt: number;
  readonly lastCommitErrorAt: number;
  /** null: unknown (not measured yet, or statfs failed) */
  readonly diskFreeBytes: number | null;
  /** Kafka refused the SASL credentials on the last attempt */
  readonly upstreamAuthFailed?: boolean;
  /** ms since epoch of the last send Kafka did not fully confirm; 0: never */
  readonly upstreamUnconfirmedAt?: number;
  /** days of flash life left at the current write rate (ops/flash.ts); null: not known */
  readonly flashDaysLeft?: number | null;
}

export interface HealthRules {
  readonly bufferRatio: number;
  readonly diskMinFreeBytes: number;
  readonly lossWindowMs: number;
  /** flash_wear below this many days left; 0 or absent: never */
  readonly flashMinDays?: number;
}

const STORE_DAMAGED_MS = 3_600_000;

export function evaluateHealth(i: HealthInput, rules: HealthRules): Health {
  const found: Array<[HealthReason, string]> = [];
  if (i.blockedMessages > 0)
    found.push(['acks_held', `buffer full: acknowledgements held (${i.blockedMessages} messages)`]);
  if (i.lastCommitErrorAt > 0 && i.lastCommitErrorAt >= i.lastCommitAt)
    found.push(['store_not_writable', 'the last buffer commit failed; publishes are not acknowledged']);
  if (i.buffer !== null && i.buffer.events > 0 && !i.upstreamConnected)
    found.push(['upstream_down', 'kafka unreachable; events are waiting']);
  if (i.upstreamAuthFailed === true) found.push(['upstream_auth', 'kafka refused our credentials (kafka.sasl)']);
  const unconfirmedAt = i.upstreamUnconfirmedAt ?? 0;
  if (unconfirmedAt > 0 && i.now - unconfirmedAt < rules.lossWindowMs)
    found.push([
      'upstream_unconfirmed',
      `kafka left records of a send unconfirmed in the last ${Math.round(rules.lossWindowMs / 1000)} s (sent again; see upstream_unconfirmed_records_total)`,
    ]);
  if (i.buffer !== null && i.buffer.bytes > rules.bufferRatio * i.maxBytes)
    found.push(['buffer_high', `buffer above ${Math.round(rules.bufferRatio * 100)}% of buffer.max_bytes`]);
  if (i.lastLossAt > 0 && i.now - i.lastLossAt < rules.lossWindowMs)
    found.push([
      'events_lost',
      `events lost in the last ${Math.round(rules.lossWindowMs / 1000)} s (see lost_events_total)`,
    ]);
  if (i.diskFreeBytes !== null && i.diskFreeBytes < rules.diskMinFreeBytes)
    found.push([
      'disk_low',
      `${i.diskFreeBytes} bytes free on the buffer's filesystem (health.disk_min_free_bytes ${rules.diskMinFreeBytes})`,
    ]);
  if (i.storeDamagedAt > 0 && i.now - i.storeDamagedAt < STORE_DAMAGED_MS)
    found.push(['store_damaged', 'buffer database was damaged at start and moved aside']);
  const daysLeft = i.flashDaysLeft ?? null;
  if (daysLeft !== null && daysLeft < (rules.flashMinDays ?? 0))
    found.push([
      'flash_wear',
      `the buffer's flash device has about ${daysLeft} days of rated life left at its current write rate (health.flash_min_days ${rules.flashMinDays})`,
    ]);
  const failing = found.some(([code]) => HEALTH_REASONS[code] === 'failing');
  return {
    status: failing ? 'failing' : found.length > 0 ? 'degraded' : 'ok',
    reasons: found.map(([code, text]) => `${code}: ${text}`),
    codes: found.map(([code]) => code),
  };
}

/** /healthz: 503 only when failing, so a load balancer or watchdog acts on what needs a person. */
export function healthHttpStatus(status: HealthStatus): number {
  return status === 'failing' ? 503 : 200;
}
