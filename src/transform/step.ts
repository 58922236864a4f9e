/**
 * The contract between a route's compiled steps and the pipeline that runs
 * them (src/transform/pipeline.ts). A step is compiled once from its config and
 * then called for every event of its route; it must never throw anything but
 * StepFailure (which sends the input to the dead letters with the reason).
 */

/** An event while it moves through one route's steps. One instance per (message, route). */
export interface Working {
  /** MQTT topic the message came on */
  readonly topic: string;
  /** MQTT client id of the publisher (embedded) or of the upstream link (client mode) */
  readonly clientId: string;
  /** ms since the epoch, when the gateway received the message */
  readonly receivedAt: number;
  /** the MQTT payload as received */
  readonly payload: Buffer;
  /** topic captures (`+device`), plus `client_id` and `topic` */
  readonly vars: Readonly<Record<string, string>>;
  /**
   * The decoded payload. `undefined` until a decode step ran; a `raw` decode
   * leaves the payload Buffer. After json/cbor decode usually a plain object.
   * Steps replace it (never mutate a value another route may share).
   */
  value: unknown;
  /** Event time in ms: receivedAt, or the device's timestamp once enrich accepted it. */
  eventTime: number;
  /** Where the event goes; start from the route's config, the route step may change them. */
  kafkaTopic: string;
  key: string;
  priority: number;
}

/** Thrown by a step when the input cannot be processed: the input becomes a dead letter with this reason. */
export class StepFailure extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'StepFailure';
  }
}

/** Returned by a step that takes the event out of the stream on purpose (filter, deadband, dedupe, window). */
export const DROPPED: unique symbol = Symbol('dropped');
export type StepResult = Working | typeof DROPPED;

export interface Step {
  /** The step kind, as in the config: decode, validate, filter, map, enrich, deadband, dedupe, window, route. */
  readonly kind: string;
  /** Process one event; return it (possibly changed) to go on, DROPPED to stop here, or throw StepFailure. */
  run(ev: Working, now: number): StepResult;
  /** Time-driven output (windows): events whose period ended by `now`; they go on to the following steps. */
  tick?(now: number): Working[];
  /** The earliest time (ms) at which tick would return something; null when nothing is open. */
  nextDue?(): number | null;
  /**
   * State that holds acknowledged input (open windows). `checkpoint()` returns a
   * CBOR-encodable snapshot when it changed since the last call (null: unchanged);
   * the pipeline stores it in the same transaction as the buffer commit.
   * `restore` gets the last stored snapshot at start.
   */
  checkpoint?(): unknown;
  restore?(state: unknown): void;
}

/** What steps may know about the gateway. */
export interface StepContext {
  readonly gatewayId: string;
  /** The route the step belongs to. */
  readonly route: string;
}

/** A config error in a step, with the path below the step (e.g. ['map', 'compute', 'temp_f']) so the loader can name the line. */
export class StepConfigError extends Error {
  constructor(
    message: string,
    readonly path: ReadonlyArray<string | number>,
  ) {
    super(message);
    this.name = 'StepConfigError';
  }
}
