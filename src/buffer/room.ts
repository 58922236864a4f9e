import { statfsSync } from 'node:fs';

/** What the filesystem bound needs of the store. */
export interface RoomView {
  /** stored bytes of the rows the bound counts */
  bytes(): number;
  /** free pages inside the database file, reused before it grows */
  reusableBytes(): number;
}

/**
 * File bytes per stored byte: rows sit in 1 KiB pages with their cell
 * headers, overflow-page pointers and index entries around them. The same
 * factor as the file's hard cap (1.25 x max_bytes).
 */
const FILE_BYTES_PER_STORED_BYTE = 1.25;

/**
 * The bound the buffer's filesystem puts on it: the stored bytes it holds now
 * plus what the filesystem can still take (free space and SQLite's free
 * pages) minus a reserve. The reserve keeps room for what SQLite needs besides
 * the rows (the WAL growing until a checkpoint, the checkpoint itself, a
 * delete) and for the rest of the system; without it, a full filesystem
 * refuses even the deletes and the WAL checkpoint that would free space, and
 * the buffer never recovers on its own.
 *
 * Sampled at most every `everyMs` (a statfs call costs ~0.05 ms); between
 * samples the bound stays put in stored bytes, so what is committed meanwhile
 * counts against it.
 */
export class DiskRoom {
  private sampledAt = Number.NEGATIVE_INFINITY;
  private limit = Number.POSITIVE_INFINITY;
  private free: number | null = null;

  constructor(
    private readonly dir: string,
    private readonly reserveBytes: () => number,
    private readonly store: RoomView,
    private readonly everyMs = 200,
    private readonly now: () => number = Date.now,
  ) {}

  /** Stored bytes the buffer may hold at most as far as the filesystem goes; Infinity when it cannot be read. */
  limitBytes(): number {
    const t = this.now();
    if (t - this.sampledAt >= this.everyMs) this.sample(t);
    return this.limit;
  }

  /** Free bytes of the filesystem at the last sample; null when unknown. */
  get freeBytes(): number | null {
    return this.free;
  }

  /** The next limitBytes() samples anew (after a failed write, or room was made). */
  invalidate(): void {
    this.sampledAt = Number.NEGATIVE_INFINITY;
  }

  private sample(t: number): void {
    this.sampledAt = t;
    try {
      const s = statfsSync(this.dir);
      this.free = s.bavail * s.bsize;
    } catch {
      this.free = null;
      this.limit = Number.POSITIVE_INFINITY;
      return;
    }
    const room = this.free + this.store.reusableBytes() - this.reserveBytes();
    this.limit = this.store.bytes() + Math.max(0, room) / FILE_BYTES_PER_STORED_BYTE;
  }
}
