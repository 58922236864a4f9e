/** A Kafka record as the forwarder produces it. */
export interface OutRecord {
  readonly topic: string;
  readonly key: string;
  readonly value: Buffer;
  readonly headers: Record<string, string>;
}

/**
 * Where batches go. `send` resolves only when every record is acknowledged by
 * the upstream (acks=all for Kafka); it rejects otherwise, and then none of the
 * records may be assumed delivered.
 */
export interface RecordSink {
  /** Connects ahead of the first send, so the upstream state is known (and logged) at start. */
  connect(): Promise<void>;
  send(records: readonly OutRecord[]): Promise<void>;
  close(): Promise<void>;
}
