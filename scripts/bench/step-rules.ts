/**
 * When the suite stops stepping the offered load up, and which step its
 * "sustained events/s" comes from.
 */

/** A step stops the stepping when its PUBACK p99 exceeds this (where the PUBACKs are the system's own). */
export const P99_LIMIT_MS = 50;

export interface StepFigures {
  /** offered events/s; null: no rate limit */
  readonly offered: number | null;
  readonly sustainedPerSec: number;
  readonly puback: { readonly p99: number | null };
}

/**
 * Why the stepping stops after `step` (null: go on): its PUBACK p99 is over
 * the limit (only when `ownPuback`: in client mode and for the naive bridge
 * an upstream broker answers), it sustained under 85% of the offered rate,
 * or under 5% more than the previous step.
 */
export function stopReason(step: StepFigures, prev: StepFigures | undefined, ownPuback: boolean): string | null {
  if (ownPuback && (step.puback.p99 ?? 0) > P99_LIMIT_MS) return `PUBACK p99 > ${P99_LIMIT_MS} ms`;
  if (step.offered !== null && step.sustainedPerSec < 0.85 * step.offered) return 'offered load not met';
  if (prev !== undefined && step.sustainedPerSec < 1.05 * prev.sustainedPerSec) return 'throughput stopped rising';
  return null;
}

/** The step with the highest sustained rate among those within the p99 limit (all steps when none is). */
export function best<T extends StepFigures>(steps: readonly T[], ownPuback: boolean): T | null {
  const ok = steps.filter((s) => !ownPuback || (s.puback.p99 ?? 0) <= P99_LIMIT_MS);
  const pool = ok.length > 0 ? ok : steps;
  return pool.reduce<T | null>((b, s) => (b === null || s.sustainedPerSec > b.sustainedPerSec ? s : b), null);
}
