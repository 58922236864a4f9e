/** What ingest hands to the pipeline: one MQTT PUBLISH as received. */
export interface InboundMessage {
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: 0 | 1 | 2;
  /** MQTT client id of the publishing device (embedded mode) or of the upstream broker link (client mode). */
  readonly clientId: string;
  /** Milliseconds since the epoch, when the gateway received the message. */
  readonly receivedAt: number;
  /** QoS 1/2: the PUBLISH's packet id, and whether its DUP flag is set (a re-send). */
  readonly packetId?: number;
  readonly dup?: boolean;
}

/** An event after routing, as it is stored in the buffer and sent upstream. */
export interface RoutedEvent {
  readonly route: string;
  /** Kafka topic the event goes to. */
  readonly kafkaTopic: string;
  /** Kafka partition key: events with the same key keep their order. */
  readonly key: string;
  readonly topic: string;
  /** The MQTT payload as received; or, when `encoded`, a transform's output value encoded as CBOR. */
  readonly payload: Buffer;
  readonly receivedAt: number;
  /** true: `payload` is one CBOR data item (a transformed value), sent as such rather than as bytes. */
  readonly encoded?: boolean;
  /** The route's named topic captures (`+device` -> {device: ...}); absent when it has none. */
  readonly captures?: Readonly<Record<string, string>>;
  /** Send and eviction priority when a transform chose one; else the route's. */
  readonly priority?: number;
  /**
   * Set on an aggregate made by `when_full: downsample`: the number of
   * original events it stands for (`payload` is then its CBOR value).
   */
  readonly aggregate?: number;
}

/** A stored event: a routed event with its gateway-wide sequence number. */
export interface SequencedEvent extends RoutedEvent {
  readonly seq: number;
}

/**
 * Called once per inbound message when its fate is durable: committed to the
 * buffer, or decided by a rule that needs no storage (e.g. unrouted). An error
 * means the message was not made durable and must not be acknowledged.
 */
export type SettleCallback = (err: Error | null) => void;

/** The one entry point ingest calls; the pipeline settles each message exactly once. */
export type MessageSink = (message: InboundMessage, settle: SettleCallback) => void;

/** An input a transform step could not process, kept for `edgehaul inspect` (transform/ makes it, buffer/ stores it). */
export interface DeadLetterRecord {
  readonly at: number;
  readonly route: string;
  /** `<index>:<kind>` of the step that failed, e.g. `0:decode` */
  readonly step: string;
  readonly reason: string;
  readonly topic: string;
  readonly clientId: string;
  /** The payload as received, cut to the buffer's DEAD_LETTER_PAYLOAD_BYTES (the Kafka copy is whole). */
  readonly payload: Buffer;
}

/** A transform step's checkpoint (open windows); null state removes it. */
export interface StateRecord {
  readonly route: string;
  readonly step: number;
  readonly state: Buffer | null;
}
