/**
 * A small latency histogram with logarithmic buckets (about 1.5 % wide), so
 * that load generators can record every PUBACK latency in constant memory and
 * the orchestrator can merge them across processes before taking percentiles.
 * Values are milliseconds; buckets are indexed on microseconds.
 */
const GROWTH = 1.015;
const LOG_GROWTH = Math.log(GROWTH);

export interface HistogramData {
  /** [bucket index, count] pairs; bucket i holds values in [GROWTH^i, GROWTH^(i+1)) microseconds */
  readonly buckets: Array<[number, number]>;
  readonly count: number;
  readonly sumMs: number;
  readonly minMs: number;
  readonly maxMs: number;
}

export class Histogram {
  private readonly counts = new Map<number, number>();
  private count = 0;
  private sum = 0;
  private min = Number.POSITIVE_INFINITY;
  private max = 0;

  record(ms: number): void {
    const us = Math.max(1, ms * 1000);
    const i = Math.floor(Math.log(us) / LOG_GROWTH);
    this.counts.set(i, (this.counts.get(i) ?? 0) + 1);
    this.count++;
    this.sum += ms;
    if (ms < this.min) this.min = ms;
    if (ms > this.max) this.max = ms;
  }

  toJSON(): HistogramData {
    return {
      buckets: [...this.counts].sort((a, b) => a[0] - b[0]),
      count: this.count,
      sumMs: this.sum,
      minMs: this.count === 0 ? 0 : this.min,
      maxMs: this.max,
    };
  }
}

export function mergeHistograms(parts: readonly HistogramData[]): HistogramData {
  const counts = new Map<number, number>();
  let count = 0;
  let sumMs = 0;
  let minMs = Number.POSITIVE_INFINITY;
  let maxMs = 0;
  for (const p of parts) {
    for (const [i, c] of p.buckets) counts.set(i, (counts.get(i) ?? 0) + c);
    count += p.count;
    sumMs += p.sumMs;
    if (p.count > 0 && p.minMs < minMs) minMs = p.minMs;
    if (p.maxMs > maxMs) maxMs = p.maxMs;
  }
  return { buckets: [...counts].sort((a, b) => a[0] - b[0]), count, sumMs, minMs: count === 0 ? 0 : minMs, maxMs };
}

/** The value (ms, geometric middle of its bucket, clamped to the observed min/max) below which q of the values lie. */
export function percentile(h: HistogramData, q: number): number | null {
  if (h.count === 0) return null;
  const rank = Math.max(1, Math.ceil(q * h.count));
  let seen = 0;
  for (const [i, c] of h.buckets) {
    seen += c;
    if (seen >= rank) {
      const mid = GROWTH ** (i + 0.5) / 1000;
      return Math.min(h.maxMs, Math.max(h.minMs, mid));
    }
  }
  return h.maxMs;
}
