import assert from 'node:assert/strict';
import { statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { test } from 'node:test';
import { DiskRoom } from '../../../src/buffer/room.js';

const free = (): number => {
  const s = statfsSync(tmpdir());
  return s.bavail * s.bsize;
};

test('the filesystem bound: stored bytes now plus what the filesystem and the free pages can take beyond the reserve, never below what is stored', () => {
  let stored = 1_000_000;
  let clock = 0;
  const view = { bytes: () => stored, reusableBytes: () => 50_000 };
  const room = new DiskRoom(
    tmpdir(),
    () => 0,
    view,
    200,
    () => clock,
  );
  const limit = room.limitBytes();
  // other processes write to /tmp meanwhile: the figure is checked within a margin
  const expected = stored + (free() + 50_000) / 1.25;
  assert.ok(Math.abs(limit - expected) < (64 * 1_048_576) / 1.25, `limit ${limit}, expected about ${expected}`);
  assert.equal(room.freeBytes !== null && room.freeBytes > 0, true);

  // sampled at most every 200 ms: in between the bound stays put, and what is stored meanwhile counts against it
  stored += 1e12;
  assert.equal(room.limitBytes(), limit);
  clock = 200;
  assert.ok(room.limitBytes() > 1e12, 'sampled again: the stored bytes moved the base');

  // a reserve larger than the filesystem: no growth at all, and no eviction demanded either
  const full = new DiskRoom(
    tmpdir(),
    () => Number.MAX_SAFE_INTEGER,
    view,
    200,
    () => clock,
  );
  assert.equal(full.limitBytes(), stored);
});

test('an unreadable filesystem puts no bound of its own (buffer.max_bytes still applies)', () => {
  const room = new DiskRoom('/nonexistent/edgehaul', () => 0, { bytes: () => 0, reusableBytes: () => 0 });
  assert.equal(room.limitBytes(), Number.POSITIVE_INFINITY);
  assert.equal(room.freeBytes, null);
});
