/** One interval's rates, as the status page charts them. */
export interface RateSample {
  /** end of the interval, ms since epoch */
  readonly at: number;
  readonly interval_secs: number;
  readonly in_events_per_sec: number;
  readonly out_events_per_sec: number;
  /** buffered bytes at the end of the interval */
  readonly buffer_bytes: number;
}

/** GET /status/history */
export interface RateHistoryReport {
  readonly interval_secs: number;
  readonly span_secs: number;
  /** oldest first */
  readonly samples: readonly RateSample[];
}

/**
 * The last hour (by default) of rate samples, in a ring of fixed size: an hour
 * at 10 s intervals is 360 samples of five numbers, whatever the uptime.
 */
export class RateHistory {
  private readonly ring: Array<RateSample | undefined>;
  private next = 0;
  private count = 0;

  constructor(
    readonly intervalSecs: number,
    readonly spanSecs = 3600,
  ) {
    this.ring = new Array<RateSample | undefined>(Math.max(1, Math.ceil(spanSecs / intervalSecs)));
  }

  add(sample: RateSample): void {
    this.ring[this.next] = sample;
    this.next = (this.next + 1) % this.ring.length;
    this.count = Math.min(this.count + 1, this.ring.length);
  }

  report(): RateHistoryReport {
    const n = this.ring.length;
    const samples: RateSample[] = [];
    for (let i = 0; i < this.count; i++) samples.push(this.ring[(this.next - this.count + i + n) % n]!);
    return { interval_secs: this.intervalSecs, span_secs: this.spanSecs, samples };
  }
}
