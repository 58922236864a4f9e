/**
 * Preloaded into the daemon by `durability.ts --memprobe` (node --import, with
 * --expose-gc): once a second, one line on stderr with process.memoryUsage(),
 * so that the benchmark can tell which part of the RSS grows (V8 heap,
 * external/Buffers, or neither: native allocations such as SQLite's or the
 * allocator's). On SIGUSR2 it runs a full garbage collection first and writes
 * a `memprobe-gc` line: what is still referenced, as opposed to garbage V8 has
 * not collected yet. With EDGEHAUL_MEMPROBE_SNAPSHOT_DIR set, it also writes a
 * heap snapshot there after that GC (slow: for finding what holds memory).
 * Nothing else; the daemon's own code is untouched.
 */
import { join } from 'node:path';
import { writeHeapSnapshot } from 'node:v8';

const line = (tag: string): void => {
  const m = process.memoryUsage();
  process.stderr.write(
    `${tag} ${JSON.stringify({ at: Date.now(), rss: m.rss, heapTotal: m.heapTotal, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers })}\n`,
  );
};
const timer = setInterval(() => line('memprobe'), 1000);
timer.unref();
process.on('SIGUSR2', () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc !== undefined) gc();
  line(gc !== undefined ? 'memprobe-gc' : 'memprobe');
  const dir = process.env.EDGEHAUL_MEMPROBE_SNAPSHOT_DIR;
  if (dir !== undefined && dir !== '') writeHeapSnapshot(join(dir, `daemon-${process.pid}-${Date.now()}.heapsnapshot`));
});
