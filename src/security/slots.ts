import { verifyPassword, type ParsedHash } from './password.js';

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

/**
 * Checks `password` against `target` in a free slot (scrypt off the thread
 * pool's queue): true or false, or 'busy' when too many logins already wait.
 * A hash that cannot be checked counts as a wrong password.
 */
export async function verifyInSlot(
  slots: Slots,
  password: Buffer | string,
  target: ParsedHash,
): Promise<boolean | 'busy'> {
  const release = await slots.acquire();
  if (release === null) return 'busy';
  try {
    return await verifyPassword(password, target);
  } catch {
    return false;
  } finally {
    release();
  }
}
