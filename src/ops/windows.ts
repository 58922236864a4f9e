import { createTask, type ScheduledTask } from 'node-cron';
import type { UploadWindowConfig } from '../config/schema.js';

/**
 * Upload windows for metered links: whether forwarding is allowed at a given
 * instant is a pure function of the time and the windows' time zones, so it
 * can be tested without waiting for a clock.
 */
export interface UploadWindows {
  /** No windows configured: always open. */
  readonly always: boolean;
  isOpen(at: Date): boolean;
  /** Frees node-cron's task registrations. */
  close(): void;
}

interface Compiled {
  open(at: Date): boolean;
  close?(): void;
}

export function compileUploadWindows(windows: readonly UploadWindowConfig[], defaultTimezone: string): UploadWindows {
  const compiled = windows.map((w): Compiled => {
    const tz = w.timezone !== '' ? w.timezone : defaultTimezone;
    if (w.hours !== undefined) {
      const [from, to] = w.hours.split('-').map(minuteOfDay) as [number, number];
      return { open: (at) => inHours(minuteOfDay(localTime(at, tz)), from, to) };
    }
    const task = cronMatcher(w.cron!, tz);
    return { open: (at) => task.match(at), close: () => void task.destroy() };
  });
  return {
    always: compiled.length === 0,
    isOpen: (at) => compiled.length === 0 || compiled.some((c) => c.open(at)),
    close: () => {
      for (const c of compiled) c.close?.();
    },
  };
}

/**
 * A node-cron task used only as a time-zone-aware matcher (never started). A
 * 5-field expression gets a `*` seconds field, so that every second of a
 * matching minute is inside the window (node-cron would otherwise match only
 * second 0).
 */
function cronMatcher(expression: string, tz: string): ScheduledTask {
  const fields = expression.trim().split(/\s+/);
  const withSeconds = fields.length === 5 ? `* ${fields.join(' ')}` : fields.join(' ');
  return createTask(withSeconds, () => undefined, tz !== '' ? { timezone: tz } : {});
}

/** [from, to) in minutes of the day; to < from spans midnight. */
export function inHours(minute: number, from: number, to: number): boolean {
  return from < to ? minute >= from && minute < to : minute >= from || minute < to;
}

function minuteOfDay(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number) as [number, number];
  return h * 60 + m;
}

const formats = new Map<string, Intl.DateTimeFormat>();

/** "HH:MM" of `at` in the time zone (empty: the system's). */
export function localTime(at: Date, tz: string): string {
  let f = formats.get(tz);
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-GB', {
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
      ...(tz !== '' ? { timeZone: tz } : {}),
    });
    formats.set(tz, f);
  }
  const parts = f.formatToParts(at);
  const get = (type: string): string => parts.find((p) => p.type === type)?.value ?? '00';
  return `${get('hour')}:${get('minute')}`;
}
