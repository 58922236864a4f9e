export { processWriteBytes } from '../core/blockdev.js';

export interface BacklogReport {
  readonly events: number;
  readonly bytes: number;
  /** seconds since the oldest buffered event was received; null when empty */
  readonly oldest_age_secs: number | null;
  /** events/s delivered over the last interval */
  readonly send_rate: number;
  /** events/s committed over the last interval */
  readonly receive_rate: number;
  /** backlog / (send rate - receive rate) while the backlog shrinks; null when it does not */
  readonly drain_eta_secs: number | null;
  /** bytes written to flash per committed event over the last interval (flash wear), null when nothing committed or unknown */
  readonly disk_bytes_per_event: number | null;
}

/** Turns counters sampled at intervals into rates, a drain estimate and flash wear per event. */
export class BacklogMeter {
  private last: { at: number; sent: number; committed: number; written: number | null } | null = null;

  sample(
    now: number,
    totals: { sent: number; committed: number; written: number | null },
    buffer: { events: number; bytes: number; oldestReceivedAt: number | null },
  ): BacklogReport {
    const prev = this.last;
    this.last = { at: now, ...totals };
    const secs = prev === null ? 0 : (now - prev.at) / 1000;
    const sendRate = secs > 0 && prev !== null ? (totals.sent - prev.sent) / secs : 0;
    const receiveRate = secs > 0 && prev !== null ? (totals.committed - prev.committed) / secs : 0;
    const committed = prev === null ? 0 : totals.committed - prev.committed;
    const written =
      prev === null || prev.written === null || totals.written === null ? null : totals.written - prev.written;
    const net = sendRate - receiveRate;
    return {
      events: buffer.events,
      bytes: buffer.bytes,
      oldest_age_secs: buffer.oldestReceivedAt === null ? null : Math.max(0, (now - buffer.oldestReceivedAt) / 1000),
      send_rate: round(sendRate),
      receive_rate: round(receiveRate),
      drain_eta_secs: buffer.events > 0 && net > 0 ? round(buffer.events / net) : null,
      disk_bytes_per_event: written !== null && committed > 0 ? round(written / committed) : null,
    };
  }
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
