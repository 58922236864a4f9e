import type { Config } from '../config/schema.js';
import { Interval } from '../core/interval.js';
import type { Logger } from '../core/log.js';
import { compileUploadWindows, type UploadWindows } from './windows.js';

export interface UploadGateLinks {
  /** Events in the buffer now, for the log line when the window changes; undefined when unknown. */
  bufferedEvents(): number | undefined;
  /** The window opened: the forwarder may send what it held back. */
  opened(): void;
}

/**
 * Upload windows from kafka.upload_windows: the forwarder asks `floor()` at
 * every selection; a one-second watch logs when the window opens or closes
 * and wakes the forwarder when it opens. Owns its timer; `stop()` clears it.
 */
export class UploadGate {
  private windows: UploadWindows | null = null;
  private exemptPriority = 0;
  private open = true;
  private readonly watch = new Interval(() => this.check());

  constructor(
    private readonly log: Logger,
    private readonly links: UploadGateLinks,
  ) {}

  /** (Re)compiles the windows from the config (boot and reload). */
  apply(kafka: Config['kafka'], timezone: string): void {
    this.windows?.close();
    this.windows = compileUploadWindows(kafka.upload_windows, timezone);
    this.exemptPriority = kafka.upload_exempt_priority;
    const open = this.windows.isOpen(new Date());
    if (!this.windows.always || !this.open) {
      this.log.info(
        { windows: kafka.upload_windows, exempt_priority: kafka.upload_exempt_priority, open },
        open ? 'upload window open' : 'upload window closed',
      );
    }
    this.open = open;
    if (open) this.links.opened();
  }

  /** Starts the watch (once ingest runs). */
  start(): void {
    this.watch.every(1000);
  }

  /** Lowest priority the forwarder may send now; null: all. */
  floor(): number | null {
    return this.windows === null || this.windows.isOpen(new Date()) ? null : this.exemptPriority;
  }

  /** Some window is configured (else always open). */
  get configured(): boolean {
    return !(this.windows?.always ?? true);
  }

  isOpen(at: Date): boolean {
    return this.windows?.isOpen(at) ?? true;
  }

  private check(): void {
    const open = this.isOpen(new Date());
    if (open === this.open || this.windows?.always === true) return;
    this.open = open;
    this.log.info(
      { exempt_priority: this.exemptPriority, buffered_events: this.links.bufferedEvents() },
      open ? 'upload window open' : 'upload window closed',
    );
    if (open) this.links.opened();
  }

  stop(): void {
    this.watch.stop();
    this.windows?.close();
  }
}
