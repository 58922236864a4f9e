import {
  blockDeviceOfPath,
  deviceWrittenBytes,
  processWriteBytes,
  type BlockDevice,
  type BlockDeviceLookup,
} from '../core/blockdev.js';

const DAY_MS = 86_400_000;
/** Rates are taken over this much of the recent past (samples older than it are dropped). */
export const FLASH_RATE_WINDOW_MS = 3_600_000;
/** A daily rate is reported once the samples span this long. */
export const FLASH_RATE_MIN_MS = 60_000;
/**
 * Days left (and so health's flash_wear) are reported once the samples span
 * this long: the writes of a start-up (opening, checkpointing, a backlog
 * flush) are not a daily rate.
 */
export const FLASH_LIFE_MIN_MS = 600_000;

/** GET /status `flash`: field names carry their unit; null: not known (yet). */
export interface FlashReport {
  /** the block device holding buffer.path; null when there is none (tmpfs, overlay) or it cannot be found */
  readonly device: { readonly name: string; readonly partition: string | null; readonly maj_min: string } | null;
  /** why `device` is null */
  readonly device_unknown_reason: string | null;
  /** bytes this process had the kernel write to storage since it started (/proc/self/io write_bytes) */
  readonly process_written_bytes: number | null;
  readonly process_bytes_per_day: number | null;
  /** bytes written to the whole device by everything since the machine booted (the kernel's sectors written x 512) */
  readonly device_written_bytes: number | null;
  readonly device_bytes_per_day: number | null;
  /** how much of the recent past the rates are taken over */
  readonly rate_window_secs: number;
  /** health.flash_endurance_bytes */
  readonly endurance_bytes: number;
  /** (endurance - device_written_bytes) / device_bytes_per_day; null until known */
  readonly days_left: number | null;
  /** buffer.flash_budget_bytes_per_day; null: no budget */
  readonly budget_bytes_per_day: number | null;
}

interface Sample {
  readonly at: number;
  readonly process: number | null;
  readonly device: number | null;
}

export interface FlashReaders {
  /** /proc/self/io write_bytes */
  readonly processWritten: () => number | null;
  readonly findDevice: () => Promise<BlockDeviceLookup>;
  readonly deviceWritten: (d: BlockDevice) => Promise<number | null>;
  readonly now: () => number;
}

/**
 * Flash wear, sampled: what this process writes (/proc/self/io) and what the
 * buffer's whole block device takes (/sys/block/<disk>/stat, every writer on
 * it), as daily rates over the last hour, and the days the device has left at
 * the device's rate. "Written so far" is what the kernel counted since boot:
 * the card's life before that (earlier boots, other machines) is not known,
 * so for a card that is not new, health.flash_endurance_bytes should be what
 * is left of its rating.
 */
export class FlashMeter {
  private samples: Sample[] = [];
  private lookup: BlockDeviceLookup | null = null;
  private readonly readers: FlashReaders;

  constructor(
    bufferDir: string,
    /** read at each report: a reload changes them */
    private readonly settings: () => { enduranceBytes: number; budgetBytesPerDay: number },
    readers: Partial<FlashReaders> = {},
    private readonly lifeMinMs = FLASH_LIFE_MIN_MS,
  ) {
    this.readers = {
      processWritten: processWriteBytes,
      findDevice: () => blockDeviceOfPath(bufferDir),
      deviceWritten: deviceWrittenBytes,
      now: Date.now,
      ...readers,
    };
  }

  /** Reads the counters once (every 10 s from the observer); the device is looked up at the first call. */
  async sample(): Promise<void> {
    this.lookup ??= await this.readers.findDevice();
    const device = this.lookup.device === null ? null : await this.readers.deviceWritten(this.lookup.device);
    const at = this.readers.now();
    this.samples.push({ at, process: this.readers.processWritten(), device });
    // keep the newest sample at or beyond the window's start, so the window is always spanned
    while (this.samples.length > 2 && at - this.samples[1]!.at >= FLASH_RATE_WINDOW_MS) this.samples.shift();
  }

  report(): FlashReport {
    const first = this.samples[0];
    const last = this.samples.at(-1);
    const span = first !== undefined && last !== undefined ? last.at - first.at : 0;
    const perDay = (pick: (s: Sample) => number | null): number | null => {
      if (first === undefined || last === undefined || span < FLASH_RATE_MIN_MS) return null;
      const a = pick(first);
      const b = pick(last);
      // a counter that went back (a device re-attached, a reset) is not a rate
      if (a === null || b === null || b < a) return null;
      return Math.round(((b - a) / span) * DAY_MS);
    };
    const processRate = perDay((s) => s.process);
    const deviceRate = perDay((s) => s.device);
    const deviceWritten = last?.device ?? null;
    const { enduranceBytes, budgetBytesPerDay } = this.settings();
    let daysLeft: number | null = null;
    if (span >= this.lifeMinMs && deviceRate !== null && deviceWritten !== null && deviceRate > 0)
      daysLeft = Math.round((Math.max(0, enduranceBytes - deviceWritten) / deviceRate) * 10) / 10;
    const device = this.lookup?.device ?? null;
    return {
      device: device === null ? null : { name: device.disk, partition: device.partition, maj_min: device.majMin },
      device_unknown_reason: this.lookup === null ? 'not sampled yet' : (this.lookup.reason ?? null),
      process_written_bytes: this.readers.processWritten(),
      process_bytes_per_day: processRate,
      device_written_bytes: deviceWritten,
      device_bytes_per_day: deviceRate,
      rate_window_secs: Math.round(span / 1000),
      endurance_bytes: enduranceBytes,
      days_left: daysLeft,
      budget_bytes_per_day: budgetBytesPerDay > 0 ? budgetBytesPerDay : null,
    };
  }
}
