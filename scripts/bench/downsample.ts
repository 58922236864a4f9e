/**
 * Downsample stall benchmark: `npm run bench:downsample` (builds, then runs this).
 *
 * What `when_full: downsample` adds to group commits (whose PUBACKs wait for
 * them): a GroupCommitWriter on a real SQLite buffer (synchronous normal, in a
 * temp dir) takes --readings CBOR map readings of --devices devices, 10 ms
 * apart, 100 per commit (10 messages of 10), into one route bounded at
 * --max-bytes with --bucket-secs buckets, and prints the commit durations
 * (p50, p99, p99.9, max), the events folded into aggregates and evicted, and
 * the wall time. Nothing may be evicted (the run fails otherwise).
 *
 * Options: --readings N (1000000), --devices N (100), --max-bytes N (8388608),
 * --bucket-secs N (10).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Encoder } from 'cbor-x';
import type { RoutedEvent } from '../../src/core/event.js';
import type { BufferLimits } from '../../src/buffer/policy.js';
import { openSqliteStore } from '../../src/buffer/store.js';
import { GroupCommitWriter } from '../../src/buffer/writer.js';

const { values } = parseArgs({
  options: {
    readings: { type: 'string', default: '1000000' },
    devices: { type: 'string', default: '100' },
    'max-bytes': { type: 'string', default: String(8 << 20) },
    'bucket-secs': { type: 'string', default: '10' },
  },
});
const N = Number(values.readings);
const DEVICES = Number(values.devices);
const MAX = Number(values['max-bytes']);
const PER_COMMIT = 100;
const T0 = 1_795_430_000_000;

const cbor = new Encoder({ useRecords: false, tagUint8Array: false, variableMapSize: true });
const dir = mkdtempSync(join(tmpdir(), 'edgehaul-bench-downsample-'));
const store = openSqliteStore(join(dir, 'buffer.db'), { synchronous: 'normal' });
const limits: BufferLimits = {
  totalBytes: 1 << 30,
  routes: new Map([
    [
      'r',
      {
        priority: 0,
        whenFull: 'downsample',
        maxBytes: MAX,
        downsample: { bucketMs: Number(values['bucket-secs']) * 1000 },
      },
    ],
  ]),
};
let downsampled = 0;
let evicted = 0;
const writer = new GroupCommitWriter(
  store,
  { maxWaitMs: 0, maxEvents: 1000, maxBytes: 1 << 20 },
  () => limits,
  () => new Set(),
  {
    onCommit: () => {},
    onError: (err) => {
      throw err;
    },
    onFull: (_route, n) => void (evicted += n),
    onDownsampled: (_route, n) => void (downsampled += n),
  },
);

try {
  const durations: number[] = [];
  const started = performance.now();
  for (let i = 0; i < N; i += PER_COMMIT) {
    const batch: RoutedEvent[] = [];
    for (let j = 0; j < PER_COMMIT; j++) {
      const n = i + j;
      batch.push({
        route: 'r',
        kafkaTopic: 'plant',
        key: `dev-${n % DEVICES}`,
        topic: `d/${n % DEVICES}`,
        receivedAt: T0 + n * 10,
        encoded: true,
        payload: cbor.encode({ temp: 20 + (n % 97) / 10, hum: (i * 7 + j) % 100, status: 'ok', fw: '1.2.3', n }),
      });
    }
    const at = performance.now();
    await Promise.all(
      Array.from(
        { length: 10 },
        (_, m) =>
          new Promise<void>((resolve, reject) =>
            writer.submit(batch.slice(m * 10, m * 10 + 10), (err) => (err ? reject(err) : resolve())),
          ),
      ),
    );
    durations.push(performance.now() - at);
  }
  durations.sort((a, b) => a - b);
  const q = (p: number): string =>
    durations[Math.min(durations.length - 1, Math.floor(p * durations.length))]!.toFixed(1);
  console.log(
    `${N} readings of ${DEVICES} devices into ${MAX} bytes, ${durations.length} commits of ${PER_COMMIT}: ` +
      `commit p50 ${q(0.5)} ms, p99 ${q(0.99)} ms, p99.9 ${q(0.999)} ms, max ${durations.at(-1)!.toFixed(1)} ms; ` +
      `downsampled ${downsampled}, evicted ${evicted}, stored ${store.bytes('r')} bytes; ` +
      `${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  if (evicted > 0) process.exitCode = 1;
} finally {
  store.close();
  rmSync(dir, { recursive: true, force: true });
}
