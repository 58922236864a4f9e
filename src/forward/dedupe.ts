/**
 * The consumer's duplicate rule (docs/record-format.md, "Duplicates"), with
 * state bounded by the number of partition keys rather than by the number of
 * events:
 *
 * - within one Kafka topic, the events of one (gateway, route, key) are in one
 *   partition, in sequence order, and all numbered by one buffer incarnation
 *   until that buffer is lost;
 * - so it is enough to remember, per (gateway, route, key), the incarnation
 *   and the highest sequence number seen (the watermark): an event of the same
 *   incarnation at or below the watermark is a re-send; an event of another
 *   incarnation starts a new watermark (the old buffer is gone: it can send
 *   nothing more).
 *
 * Use one Deduper per topic, fed with the topic's records in partition order.
 */
import type { Batch, BatchEvent } from './format.js';
import { HEADERS } from './format.js';

interface Mark {
  incarnation: string;
  seq: number;
}

export class Deduper {
  private readonly marks = new Map<string, Mark>();

  /** How many (gateway, route, key) watermarks are kept: the state's whole size. */
  get size(): number {
    return this.marks.size;
  }

  /**
   * From the headers and the record key alone: true when every event of the record was seen
   * (the record need not be decoded). Records of formats before 4 (no
   * incarnation header) are never skipped here.
   */
  seenWhole(headers: Readonly<Record<string, string | undefined>>, recordKey: string): boolean {
    const gateway = headers[HEADERS.gateway];
    const incarnation = headers[HEADERS.incarnation];
    const route = headers[HEADERS.route];
    const last = Number(headers[HEADERS.seqLast]);
    if (gateway === undefined || incarnation === undefined || route === undefined || !Number.isSafeInteger(last))
      return false;
    const mark = this.marks.get(markKey(gateway, route, recordKey));
    return mark !== undefined && mark.incarnation === incarnation && last <= mark.seq;
  }

  /** The batch's events that were not seen before, in order; remembers them. */
  accept(batch: Batch): BatchEvent[] {
    const k = markKey(batch.gatewayId, batch.route, batch.key);
    const incarnation = batch.incarnation ?? '';
    let mark = this.marks.get(k);
    if (mark === undefined || mark.incarnation !== incarnation) {
      mark = { incarnation, seq: Number.NEGATIVE_INFINITY };
      this.marks.set(k, mark);
    }
    const fresh: BatchEvent[] = [];
    for (const e of batch.events) {
      if (e.seq <= mark.seq) continue;
      mark.seq = e.seq;
      fresh.push(e);
    }
    return fresh;
  }
}

function markKey(gateway: string, route: string, key: string): string {
  return `${gateway}\u0000${route}\u0000${key}`;
}
