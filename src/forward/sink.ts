/** A Kafka record as the forwarder produces it. */
export interface OutRecord {
  readonly topic: string;
  readonly key: string;
  readonly value: Buffer;
  readonly headers: Record<string, string>;
}

/** What the upstream confirmed of one record: where it was written. */
export interface Confirmation {
  readonly partition: number;
  /** Kafka's offset of the record in its partition (a decimal string: offsets exceed 2^53 in principle). */
  readonly offset: string;
}

/**
 * Where batches go. `send` resolves with one entry per record, in the order
 * given: the record's confirmation (acks=all for Kafka: a partition and an
 * offset), or null when the upstream did not confirm it. A record without a
 * confirmation was not delivered, whatever else happened; the forwarder checks
 * every entry and never trusts a resolved promise alone. `send` rejects when
 * nothing can be said about any record (not connected, closed).
 */
export interface RecordSink {
  /** Connects ahead of the first send, so the upstream state is known (and logged) at start. */
  connect(): Promise<void>;
  send(records: readonly OutRecord[]): Promise<ReadonlyArray<Confirmation | null>>;
  close(): Promise<void>;
}
