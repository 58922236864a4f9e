/**
 * The embedded MQTT broker ingest. Its parts live in ./broker/: the aedes
 * wiring (broker.ts), authentication and ACLs (auth.ts), the packet size and
 * MQTT conformance checks (packet-limit.ts), the publish rate limit
 * (rate-limit.ts) and one module per listener (listeners/).
 */
export { createBrokerIngest, type BrokerOptions } from './broker/broker.js';
