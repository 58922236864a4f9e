/** A small counting semaphore: scrypt logins take turns instead of filling libuv's thread pool. */
export class Slots {
  private busy = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(
    private readonly size: number,
    private readonly maxWaiting: number,
  ) {}
  /** Resolves with a release function, or null when too many already wait. */
  acquire(): Promise<(() => void) | null> {
    const release = (): void => {
      const next = this.waiting.shift();
      if (next !== undefined) next();
      else this.busy--;
    };
    if (this.busy < this.size) {
      this.busy++;
      return Promise.resolve(release);
    }
    if (this.waiting.length >= this.maxWaiting) return Promise.resolve(null);
    return new Promise((resolve) => this.waiting.push(() => resolve(release)));
  }
}
