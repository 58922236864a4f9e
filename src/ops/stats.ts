/**
 * The daemon's counters. One object, owned by the gateway, read by the stats
 * log line, the demo and (later) the metrics endpoint. Names follow
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
  dropped_unrouted_total = 0;
  dropped_oversize_total = 0;
  connected_clients = 0;
  upstream_connected = false;

  snapshot(): Record<string, number | boolean> {
    return Object.fromEntries(Object.entries(this)) as Record<string, number | boolean>;
  }
}
