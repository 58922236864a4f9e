/** Every way an event can leave other than delivery. */
export const LOSS_REASONS = ['dropped_full', 'expired', 'rejected', 'corrupt', 'dead_letter', 'downsampled'] as const;
export type LossReason = (typeof LOSS_REASONS)[number];

/**
 * The daemon's counters. One object, owned by the gateway and written by the
 * stages; read by the observer (stats line, /status, /metrics). Names follow
 * `<what>_<unit>_total`; every way an event can leave other than delivery has a
 * counter of its own, so nothing disappears silently.
 */
export class Stats {
  received_messages_total = 0;
  acked_messages_total = 0;
  committed_events_total = 0;
  commits_total = 0;
  commit_errors_total = 0;
  sent_events_total = 0;
  sent_records_total = 0;
  sent_bytes_total = 0;
  send_errors_total = 0;
  store_read_errors_total = 0;
  /** records a send returned without a confirmation (partition and offset) from Kafka: kept and sent again */
  upstream_unconfirmed_records_total = 0;
  /** confirmed records written after an unconfirmed one of the same key (per-key order broken upstream) */
  upstream_reordered_records_total = 0;
  /** ms since epoch of the last send Kafka did not fully confirm; 0: none since start */
  upstream_unconfirmed_at = 0;
  dropped_unrouted_total = 0;
  dropped_oversize_total = 0;
  /** QoS 1/2 re-sends (DUP) of a publish already committed: acknowledged without a second event */
  resends_acked_total = 0;
  connected_clients = 0;
  upstream_connected = false;
  blocked_messages = 0;
  store_damaged_total = 0;
  /** memory-durability events written to disk because the uplink fell behind */
  spilled_events_total = 0;
  /** bytes the daemon made the kernel write to storage since it started (/proc/self/io) */
  disk_written_bytes_total = 0;
  /** group commits the flash budget held back (buffer.flash_budget_bytes_per_day) */
  flash_paced_commits_total = 0;
  /** time those commits were held back, summed */
  flash_paced_seconds_total = 0;
  /** MQTT logins refused: unknown user, wrong password, anonymous while not allowed, certificate CN not a user */
  auth_failures_total = 0;
  /** publishes outside the client's acl (refused: the connection is closed, nothing is forwarded) */
  acl_denied_total = 0;
  /** subscriptions outside the client's acl (refused in the SUBACK) */
  acl_denied_subscriptions_total = 0;
  /** publishes held back because their client exceeded max_publish_per_sec */
  rate_limited_total = 0;
  /** connections refused before login: max_connections reached, too many logins at once, shutting down */
  connections_refused_total = 0;
  /** MQTT packets above max_packet_bytes (the connection is closed) */
  oversize_packets_total = 0;
  /** PUBLISH packets with a topic that is not well-formed UTF-8 or holds U+0000, or packet id 0 at QoS 1/2 (the connection is closed) */
  malformed_publishes_total = 0;
  /** failed TLS handshakes on the embedded TLS listener */
  tls_errors_total = 0;
  /** connections closed for a client error: malformed packets, protocol violations, resets */
  connection_errors_total = 0;
  /** logins to the HTTP endpoint refused (no credentials, malformed, wrong, or too many at once): answered 401 (503 when busy) */
  http_auth_failures_total = 0;
  /** Kafka refused our SASL credentials */
  upstream_auth_failures_total = 0;
  /** the last Kafka connect failed on authentication (cleared by a successful connect) */
  upstream_auth_failed = false;
  /** Events that left (or never entered) the buffer other than by delivery: reason -> route -> count. */
  readonly lost_events_total: Record<LossReason, Record<string, number>> = {
    dropped_full: {},
    expired: {},
    rejected: {},
    corrupt: {},
    dead_letter: {},
    downsampled: {},
  };
  /** Events a transform step took out on purpose (filter, deadband, dedupe, absorbed by a window): `<route>/<index>:<step>` -> count. */
  readonly transform_dropped_total: Record<string, number> = {};
  /** Window aggregates emitted. */
  transform_window_events_total = 0;
  /** ms since epoch of the last loss of any kind; 0: none since start */
  last_loss_at = 0;

  loss(reason: LossReason, route: string, events: number): void {
    if (events <= 0) return;
    const byRoute = this.lost_events_total[reason];
    byRoute[route] = (byRoute[route] ?? 0) + events;
    this.last_loss_at = Date.now();
  }

  lostTotal(): number {
    return Object.values(this.lost_events_total).reduce(
      (n, byRoute) => n + Object.values(byRoute).reduce((a, b) => a + b, 0),
      0,
    );
  }

  snapshot(): Record<string, unknown> {
    return JSON.parse(JSON.stringify(this)) as Record<string, unknown>;
  }
}
