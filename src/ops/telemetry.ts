import type { Config, RouteConfig } from '../config/schema.js';
import { HEALTH_ROUTE } from '../config/schema.js';
import type { InboundMessage } from '../core/event.js';
import type { Health } from './health.js';
import type { SystemSample } from './system.js';

/**
 * Health records enter the gateway as messages on this topic, through the
 * same sink as device messages: buffered, batched, counted and sent like any
 * event. Wildcard filters never match `$` topics (MQTT-4.7.2-1), so the
 * configured routes do not pick them up.
 */
export const HEALTH_TOPIC = '$edgehaul/health';

/** The configured routes, plus the internal health route when telemetry is on. */
export function effectiveRoutes(config: Config): RouteConfig[] {
  const routes = [...config.routes];
  if (config.telemetry.enabled) {
    routes.push({
      name: HEALTH_ROUTE,
      match: HEALTH_TOPIC,
      topic: config.telemetry.topic,
      // the message's client id is the gateway id: one key, one partition, in order
      key: '{client_id}',
      priority: config.telemetry.priority,
      // a record newer than the one it evicts says more about the box
      when_full: 'drop_oldest',
      downsample: { bucket_secs: 60 },
      durability: 'disk',
      steps: [],
    });
  }
  return routes;
}

/** One health record (the event payload, JSON). Field names carry their unit. */
export interface HealthRecord {
  readonly type: 'edgehaul.health';
  readonly version: 1;
  readonly gateway_id: string;
  readonly at: string;
  readonly health: { readonly status: Health['status']; readonly reasons: readonly string[] };
  readonly system: SystemSample;
  readonly buffer: {
    readonly events: number;
    readonly bytes: number;
    readonly max_bytes: number;
    readonly oldest_age_secs: number | null;
  };
  readonly upstream: { readonly connected: boolean };
  readonly counters: {
    readonly received_messages_total: number;
    readonly committed_events_total: number;
    readonly sent_events_total: number;
    readonly lost_events_total: number;
    readonly connected_clients: number;
  };
}

export function healthMessage(gatewayId: string, record: HealthRecord, now: number): InboundMessage {
  return {
    topic: HEALTH_TOPIC,
    payload: Buffer.from(JSON.stringify(record)),
    qos: 1,
    clientId: gatewayId,
    receivedAt: now,
  };
}
