import type { SettleCallback } from '../core/event.js';
import { Interval } from '../core/interval.js';
import { DEAD_LETTER_ROUTE, type Outcome, type Pipeline } from './pipeline.js';

/** How often open windows are checked for their end. */
export const WINDOW_TICK_MS = 250;

/** Where generated events (closed windows' aggregates) are committed: the buffer's group-commit writer. */
export interface GeneratedEventWriter {
  submit(events: Outcome['events'], settle: SettleCallback, deadLetters?: Outcome['deadLetters']): void;
}

export interface WindowClockCounters {
  /** Window aggregates emitted (dead letters not counted). */
  windowEvents(events: number): void;
}

/**
 * Closes transform windows on time even when no new event comes: every
 * WINDOW_TICK_MS it asks the running pipeline for windows past their end and
 * commits their aggregates. Owns its timer; `stop()` clears it.
 */
export class WindowClock {
  private readonly timer = new Interval(() => this.tick());

  constructor(
    /** the pipeline running now (a reload swaps it) */
    private readonly pipeline: () => Pipeline,
    /** null until the writer exists, and after shutdown */
    private readonly writer: () => GeneratedEventWriter | null,
    private readonly counters: WindowClockCounters,
  ) {}

  /** Runs the clock when some route has a window step, and ticks once at once; else stops it. */
  configure(hasWindows: boolean): void {
    if (!hasWindows) {
      this.timer.stop();
      return;
    }
    this.timer.every(WINDOW_TICK_MS);
    this.tick();
  }

  /**
   * Closed windows' aggregates go to the buffer; their commit also checkpoints
   * the emptied windows, so a crash either keeps the window open (and closes it
   * again after the restart) or has stored its aggregate, never neither.
   */
  tick(): void {
    const pipeline = this.pipeline();
    const due = pipeline.nextDue();
    if (due === null || due > Date.now() || this.writer() === null) return;
    const out = pipeline.tick(Date.now());
    this.counters.windowEvents(out.events.filter((e) => e.route !== DEAD_LETTER_ROUTE).length);
    this.submit(out);
  }

  /** Events no device waits for (window aggregates): a failed commit is retried every second until it holds. */
  submit(out: Outcome): void {
    if (out.events.length === 0 && out.deadLetters.length === 0) return;
    const settle = (err: Error | null): void => {
      if (err === null || this.writer() === null) return;
      setTimeout(() => this.writer()?.submit(out.events, settle, out.deadLetters), 1000).unref();
    };
    this.writer()!.submit(out.events, settle, out.deadLetters);
  }

  stop(): void {
    this.timer.stop();
  }
}
