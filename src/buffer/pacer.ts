export interface FlashBudget {
  /** Bytes the process may write to storage per day, on average (buffer.flash_budget_bytes_per_day). */
  readonly bytesPerDay: number;
  /** A paced commit waits at most this long after its first message arrived (buffer.flash_budget_max_wait_ms). */
  readonly maxWaitMs: number;
}

/** What a commit is assumed to write before one was measured (a few pages of WAL and index, the fsync's metadata). */
export const DEFAULT_COMMIT_BYTES = 16_384;
/** The bucket holds this much of the budget at most: a burst after a quiet spell, not a day's worth. */
export const BUDGET_BURST_MS = 10_000;
const DAY_MS = 86_400_000;
/** Weight of the newest measured commit in the estimate of bytes per commit. */
const EWMA_WEIGHT = 0.2;

/**
 * A token bucket of bytes written to storage, filled at the daily budget's
 * rate and drained by what the process really wrote (/proc/self/io
 * write_bytes: commits, the deletes that ride along, checkpoints, logs). The
 * group commit asks it how long to wait before its next commit: until the
 * bucket holds one commit's worth (an average of the commits measured so far).
 * At a low event rate commits then come further apart and carry more events
 * each, so each event costs fewer bytes; latency grows instead of writes.
 *
 * The pacer only delays; it never acknowledges. The writer bounds the delay
 * (maxWaitMs after a commit's first message), and a commit that must happen
 * (max_events, max_bytes, shutdown) is not asked. When the written bytes
 * cannot be read (no /proc), the debit is the estimate per commit.
 */
export class FlashPacer {
  private tokens: number;
  private lastAt: number;
  private lastWritten: number | null;
  private perCommit: number | null = null;

  constructor(
    private budget: FlashBudget,
    private readonly written: () => number | null,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = this.capacity;
    this.lastAt = this.now();
    this.lastWritten = this.written();
  }

  get maxWaitMs(): number {
    return this.budget.maxWaitMs;
  }

  /** Bytes per commit as measured (a moving average); null before the first measured commit. */
  get bytesPerCommit(): number | null {
    return this.perCommit;
  }

  /** Bytes the bucket holds now (negative: writes beyond the budget are being paid back). */
  get balance(): number {
    this.refill();
    return this.tokens;
  }

  reconfigure(budget: FlashBudget): void {
    this.refill();
    this.budget = budget;
    this.tokens = Math.min(this.tokens, this.capacity);
  }

  /** How long the next commit should wait for the budget, ms; 0: now. */
  delayMs(): number {
    this.refill();
    const need = this.perCommit ?? DEFAULT_COMMIT_BYTES;
    if (this.tokens >= need) return 0;
    return Math.ceil((need - this.tokens) / this.ratePerMs);
  }

  /**
   * Around each commit: `before` is read by start(), the difference after
   * the commit is the commit's own writes, which teach the estimate.
   */
  start(): number | null {
    return this.written();
  }

  committed(before: number | null): void {
    const after = this.written();
    const cost = before !== null && after !== null ? after - before : null;
    if (cost !== null && cost >= 0)
      this.perCommit = this.perCommit === null ? cost : this.perCommit + EWMA_WEIGHT * (cost - this.perCommit);
    if (after === null) this.tokens -= this.perCommit ?? DEFAULT_COMMIT_BYTES;
    this.refill();
  }

  private get ratePerMs(): number {
    return this.budget.bytesPerDay / DAY_MS;
  }

  private get capacity(): number {
    return Math.max(this.ratePerMs * BUDGET_BURST_MS, 2 * (this.perCommit ?? DEFAULT_COMMIT_BYTES));
  }

  private refill(): void {
    const now = this.now();
    this.tokens = Math.min(this.capacity, this.tokens + (now - this.lastAt) * this.ratePerMs);
    this.lastAt = now;
    const w = this.written();
    if (w !== null && this.lastWritten !== null && w >= this.lastWritten) this.tokens -= w - this.lastWritten;
    this.lastWritten = w;
  }
}
