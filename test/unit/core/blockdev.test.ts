import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  blockDeviceOf,
  deviceWrittenBytes,
  parseProcIoWriteBytes,
  parseStatWrittenBytes,
  splitDev,
  STAT_SECTOR_BYTES,
} from '../../../src/core/blockdev.js';
import { ROOT } from '../../support/kafka.js';

/** A Raspberry Pi-like sysfs: an SD card (mmcblk0, two partitions), a device-mapper volume, a device without stat. */
const PI = join(ROOT, 'test/fixtures/flash/pi');

test('write_bytes of a /proc/<pid>/io text; anything else is null, not a number', () => {
  assert.equal(
    parseProcIoWriteBytes(readFileSync(join(ROOT, 'test/fixtures/flash/proc-self-io.txt'), 'utf8')),
    3919872,
  );
  assert.equal(parseProcIoWriteBytes('rchar: 1\nwchar: 2\n'), null);
  assert.equal(parseProcIoWriteBytes('write_bytes: lots\n'), null);
  assert.equal(parseProcIoWriteBytes(''), null);
});

test('sectors written (field 7) x 512 of a /sys/block stat line, old (11 fields) and new (17 fields) kernels', () => {
  assert.equal(parseStatWrittenBytes(readFileSync(join(PI, 'sys/dev/block/179:0/stat'), 'utf8')), 9765625 * 512);
  assert.equal(parseStatWrittenBytes('  100 0 2000 10 300 0 2048 20 0 30 30\n'), 2048 * STAT_SECTOR_BYTES);
  assert.equal(parseStatWrittenBytes('1 2 3'), null, 'too few fields');
  assert.equal(parseStatWrittenBytes('1 2 3 4 5 6 x 8 9 10 11'), null);
});

test('dev_t splits into major and minor (small and large numbers)', () => {
  assert.deepEqual(splitDev(0xfe00n), { major: 254, minor: 0 });
  assert.deepEqual(splitDev(0xb302n), { major: 179, minor: 2 });
  assert.deepEqual(splitDev(0x1bn), { major: 0, minor: 27 }, 'tmpfs: an anonymous device');
  // major 259 (blkext, NVMe partitions), minor 300: both beyond their old 8-bit fields
  const dev = ((259n & 0xfffn) << 8n) | ((259n & ~0xfffn) << 32n) | (300n & 0xffn) | ((300n & ~0xffn) << 12n);
  assert.deepEqual(splitDev(dev), { major: 259, minor: 300 });
});

test('a partition is counted on its disk: the card wears for every partition', async () => {
  const found = await blockDeviceOf(179, 2, PI);
  assert.ok(found.device !== null, found.reason);
  assert.equal(found.device.disk, 'mmcblk0');
  assert.equal(found.device.partition, 'mmcblk0p2');
  assert.equal(found.device.majMin, '179:2');
  assert.equal(await deviceWrittenBytes(found.device), 9765625 * 512, 'the disk stat, not the partition stat');
});

test('a whole disk and a device-mapper volume are read as they are', async () => {
  const disk = await blockDeviceOf(179, 0, PI);
  assert.equal(disk.device?.disk, 'mmcblk0');
  assert.equal(disk.device?.partition, null);
  const dm = await blockDeviceOf(253, 0, PI);
  assert.equal(dm.device?.disk, 'dm-0');
  assert.equal(await deviceWrittenBytes(dm.device), 2048 * 512);
});

test('no block device is an answer with a reason, not an error: tmpfs/overlay, a missing entry, a device without stat', async () => {
  const anon = await blockDeviceOf(0, 27, PI);
  assert.equal(anon.device, null);
  assert.match(anon.reason, /not a block device \(tmpfs, overlay/);
  const missing = await blockDeviceOf(8, 16, PI);
  assert.equal(missing.device, null);
  assert.match(missing.reason, /no \/sys\/dev\/block\/8:16/);
  const noStat = await blockDeviceOf(8, 0, PI);
  assert.equal(noStat.device, null);
  assert.match(noStat.reason, /no stat file/);
  const noSysfs = await blockDeviceOf(179, 2, join(PI, 'nowhere'));
  assert.equal(noSysfs.device, null);
});
