import { readFileSync } from 'node:fs';
import { access, readFile, realpath, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Linux storage counters, read from the text files the kernel keeps: how much
 * this process had written (/proc/self/io) and how much the whole block device
 * under a path took (/sys/block/<disk>/stat). Pure parsing plus file reads
 * with a `root` for tests; nothing here throws for a missing file: a counter
 * that cannot be read is null (another OS, a container without /sys, a path
 * on tmpfs or overlay that has no block device).
 */

/** The kernel's unit for the sector counters of /sys/block/<disk>/stat, whatever the device's own sector size. */
export const STAT_SECTOR_BYTES = 512;

/** `write_bytes:` of a /proc/<pid>/io text: bytes the process caused to be sent to the storage layer. */
export function parseProcIoWriteBytes(text: string): number | null {
  const line = text.split('\n').find((l) => l.startsWith('write_bytes:'));
  if (line === undefined) return null;
  const n = Number(line.slice('write_bytes:'.length).trim());
  return Number.isSafeInteger(n) && n >= 0 ? n : null;
}

/** Bytes this process made the kernel write to storage so far (Linux /proc/self/io), or null elsewhere. */
export function processWriteBytes(path = '/proc/self/io'): number | null {
  try {
    return parseProcIoWriteBytes(readFileSync(path, 'utf8'));
  } catch {
    return null;
  }
}

/**
 * Bytes written according to a /sys/block/<dev>/stat line: the 7th field,
 * sectors written, in 512-byte units (Documentation/block/stat.rst).
 */
export function parseStatWrittenBytes(text: string): number | null {
  const fields = text.trim().split(/\s+/);
  if (fields.length < 7) return null;
  const sectors = Number(fields[6]);
  return Number.isSafeInteger(sectors) && sectors >= 0 ? sectors * STAT_SECTOR_BYTES : null;
}

/** Major and minor numbers of a Linux dev_t (glibc's gnu_dev_major/minor encoding). */
export function splitDev(dev: bigint): { major: number; minor: number } {
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
  return { major, minor };
}

export interface BlockDevice {
  /** MAJ:MIN of the filesystem holding the path */
  readonly majMin: string;
  /** the kernel's name of the whole device (a partition's disk): `mmcblk0`, `sda`, `vda`, `dm-0` */
  readonly disk: string;
  /** the partition's name when the filesystem is on one (`mmcblk0p2`), else null */
  readonly partition: string | null;
  /** the disk's stat file: writes by everything on the device */
  readonly statPath: string;
}

export type BlockDeviceLookup =
  { readonly device: BlockDevice; readonly reason?: undefined } | { readonly device: null; readonly reason: string };

/**
 * The block device under a filesystem's MAJ:MIN: /sys/dev/block/MAJ:MIN links
 * to the device's directory; a partition (it has a `partition` file) counts
 * its own writes, but the flash wears for everything written to its disk, so
 * the disk's stat (the parent directory) is read. Major 0 is an anonymous
 * device (tmpfs, overlay, btrfs subvolumes, network filesystems): no block
 * device can be named, which is an answer, not an error.
 */
export async function blockDeviceOf(major: number, minor: number, root = '/'): Promise<BlockDeviceLookup> {
  const majMin = `${major}:${minor}`;
  if (major === 0)
    return { device: null, reason: `device ${majMin} is not a block device (tmpfs, overlay or a network filesystem)` };
  let dir: string;
  try {
    dir = await realpath(join(root, 'sys/dev/block', majMin));
  } catch {
    return { device: null, reason: `no /sys/dev/block/${majMin} (no sysfs, or not a block device)` };
  }
  let partition: string | null = null;
  let diskDir = dir;
  if (await exists(join(dir, 'partition'))) {
    partition = basename(dir);
    diskDir = dirname(dir);
  }
  const statPath = join(diskDir, 'stat');
  if (!(await exists(statPath))) return { device: null, reason: `no stat file for block device ${majMin}` };
  return { device: { majMin, disk: basename(diskDir), partition, statPath } };
}

/** The block device holding `path` (its filesystem's st_dev). */
export async function blockDeviceOfPath(path: string, root = '/'): Promise<BlockDeviceLookup> {
  let dev: bigint;
  try {
    dev = (await stat(path, { bigint: true })).dev;
  } catch (err) {
    return { device: null, reason: `cannot stat ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}` };
  }
  const { major, minor } = splitDev(dev);
  return blockDeviceOf(major, minor, root);
}

/** Bytes written to the device since boot (the kernel's counters start at 0 then), or null. */
export async function deviceWrittenBytes(device: BlockDevice): Promise<number | null> {
  try {
    return parseStatWrittenBytes(await readFile(device.statPath, 'utf8'));
  } catch {
    return null;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
