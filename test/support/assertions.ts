import assert from 'node:assert/strict';
import type { ConsumedRecord } from './kafka.js';
import type { DeviceRun } from './devices.js';

export interface DeliveryCheck {
  /** events read from Kafka, duplicates included */
  readonly delivered: number;
  /** events whose sequence number was seen before (same content required) */
  readonly duplicates: number;
}

/**
 * The delivery contract, checked from what a consumer reads: every
 * acknowledged message is there; a duplicate carries a sequence number already
 * seen with the same content; after dropping duplicates, each device's
 * messages are in publish order and their sequence numbers increase.
 */
export function assertDelivered(
  records: readonly ConsumedRecord[],
  runs: readonly DeviceRun[],
  opts: { exactlyOnce: boolean; gatewayId: string },
): DeliveryCheck {
  // (incarnation, seq): a buffer lost between runs numbers from 1 again under a new incarnation
  const bySeq = new Map<string, string>();
  const perDevice = new Map<string, Array<{ seq: number; n: number }>>();
  let delivered = 0;
  let duplicates = 0;
  const ordered = [...records].sort((a, b) => a.partition - b.partition || Number(BigInt(a.offset) - BigInt(b.offset)));
  for (const r of ordered) {
    assert.equal(r.batch.gatewayId, opts.gatewayId);
    assert.equal(r.key, r.batch.key, 'record key = batch key');
    assert.equal(r.headers['edgehaul-seq-first'], String(r.batch.events[0]!.seq));
    assert.equal(r.headers['edgehaul-seq-last'], String(r.batch.events.at(-1)!.seq));
    for (const e of r.batch.events) {
      delivered++;
      const body = e.payload.toString();
      const id = `${r.batch.incarnation ?? ''}:${e.seq}`;
      const seen = bySeq.get(id);
      if (seen !== undefined) {
        assert.equal(body, seen, `seq ${e.seq} delivered twice with different content`);
        duplicates++;
        continue;
      }
      bySeq.set(id, body);
      const msg = JSON.parse(body) as { device: string; n: number };
      assert.equal(r.batch.key, msg.device, 'partition key is the device');
      let list = perDevice.get(msg.device);
      if (list === undefined) perDevice.set(msg.device, (list = []));
      list.push({ seq: e.seq, n: msg.n });
    }
  }
  for (const run of runs) {
    const got = perDevice.get(run.device) ?? [];
    const numbers = new Set(got.map((g) => g.n));
    const missing = run.acked.filter((n) => !numbers.has(n));
    assert.deepEqual(missing.slice(0, 10), [], `${run.device}: ${missing.length} acknowledged messages missing`);
    for (let i = 1; i < got.length; i++) {
      assert.ok(got[i]!.seq > got[i - 1]!.seq, `${run.device}: sequence numbers not increasing at ${i}`);
      assert.ok(got[i]!.n > got[i - 1]!.n, `${run.device}: out of order at ${i}: ${got[i - 1]!.n} then ${got[i]!.n}`);
    }
  }
  if (opts.exactlyOnce) assert.equal(duplicates, 0, 'no duplicates without a restart');
  return { delivered, duplicates };
}
