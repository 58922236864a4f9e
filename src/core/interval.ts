/**
 * One repeating timer that can be restarted with a new period or stopped, and
 * never keeps the process alive (unref). Each stage part owns its own and
 * stops it in its `stop()`.
 */
export class Interval {
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly run: () => void) {}

  /** (Re)starts the timer with this period in ms; null stops it. */
  every(ms: number | null): void {
    this.stop();
    if (ms === null) return;
    this.timer = setInterval(this.run, ms);
    this.timer.unref();
  }

  get running(): boolean {
    return this.timer !== null;
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}
