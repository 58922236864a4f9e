import { pino, type Logger } from 'pino';

export type { Logger };

/** JSON lines on stdout: journald keeps them, `journalctl -o cat` shows them. Synchronous, so nothing is lost on exit. */
export function createLogger(level: string, destination: NodeJS.WritableStream | number = 1): Logger {
  return pino(
    {
      level,
      base: { svc: 'edgehaul' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // belt and braces: secrets are read from env/files into these fields only
      redact: {
        paths: ['password', '*.password', 'sasl.password', 'config.ingest.client.password'],
        censor: '[redacted]',
      },
    },
    typeof destination === 'number' ? pino.destination({ fd: destination, sync: true }) : destination,
  );
}

/**
 * Logs the first occurrence of a key at once and then at most once per
 * interval, with how many were suppressed in between: a device sending garbage
 * 1000 times a second must not fill the journal. (Nothing on npm does just
 * this for pino; rate-limiter libraries count requests, not log lines.)
 */
export class LogThrottle {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly intervalMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Calls `emit` with the number suppressed since the last emitted line, or not at all. */
  run(key: string, emit: (suppressed: number) => void): void {
    const t = this.now();
    const entry = this.last.get(key);
    if (entry !== undefined && t - entry.at < this.intervalMs) {
      entry.suppressed++;
      return;
    }
    if (this.last.size > 1000) this.last.clear();
    this.last.set(key, { at: t, suppressed: 0 });
    emit(entry?.suppressed ?? 0);
  }
}
