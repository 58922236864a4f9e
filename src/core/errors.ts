/**
 * Every error edgehaul raises on purpose has a code made here, so that logs,
 * exit codes and the README speak the same words. The README lists them all;
 * test/unit/errors.test.ts checks both directions.
 */
export const ERROR_CODES = {
  EH_ERR_CONFIG_READ: 'the config file cannot be read',
  EH_ERR_CONFIG_YAML: 'the config file is not valid YAML',
  EH_ERR_CONFIG_INVALID: 'the config does not match the schema',
  EH_ERR_CONFIG_SECRET:
    'a secret named by the config (env or file) is missing or unreadable; the daemon does not start (exit 78)',
  EH_ERR_CONFIG_HTTP_OPEN:
    'http.host is beyond loopback and http.auth.users is empty: the daemon does not start rather than open its status to the network',
  EH_ERR_CONFIG_RELOAD: 'a reloaded config was rejected or could not be applied; the running config stays',
  EH_ERR_STORE_OPEN: 'the buffer database cannot be opened',
  EH_ERR_STORE_DAMAGED: 'the buffer database was damaged; it was moved aside and an empty one started',
  EH_ERR_BUFFER_FULL: 'the buffer reached its bound; the route policy dropped or held events',
  EH_ERR_BUFFER_EXPIRED: 'events older than their route TTL were dropped',
  EH_ERR_STORE_WRITE: 'a buffer commit failed; the affected publishes were not acknowledged',
  EH_ERR_STORE_READ:
    'the forwarder could not read or delete buffered events (an I/O error, a damaged page); they stay buffered and it retries with backoff',
  EH_ERR_INGEST_LISTEN: 'the MQTT listener cannot bind its address',
  EH_ERR_INGEST_OVERSIZE: 'a payload exceeded ingest max_payload_bytes and was dropped',
  EH_ERR_INGEST_UNROUTED: 'a publish matched no route and was dropped',
  EH_ERR_TRANSFORM_FAILED: 'a transform step could not process an input; it became a dead letter',
  EH_ERR_AUTH_FAILED:
    'an MQTT login was refused (unknown user, wrong password, anonymous not allowed, certificate not a user)',
  EH_ERR_ACL_PUBLISH: 'a publish outside the client ACL was refused and its connection closed',
  EH_ERR_ACL_SUBSCRIBE: 'a subscription outside the client ACL was refused',
  EH_ERR_INGEST_CONNECTIONS:
    'an MQTT connection was refused: max_connections reached, too many logins at once, or shutting down',
  EH_ERR_INGEST_PACKET_TOO_LARGE: 'an MQTT packet exceeded max_packet_bytes; the connection was closed',
  EH_ERR_INGEST_MALFORMED:
    'a PUBLISH had a topic that is not well-formed UTF-8 or holds U+0000, or packet id 0 at QoS 1/2; the connection was closed',
  EH_ERR_INGEST_RATE_LIMITED: 'a client published faster than max_publish_per_sec and was slowed down',
  EH_ERR_INGEST_TLS: 'a TLS handshake on the embedded TLS listener failed',
  EH_ERR_UPSTREAM_AUTH: 'Kafka refused the SASL credentials; events stay buffered',
  EH_ERR_UPSTREAM_SEND: 'a batch could not be sent to Kafka; it stays buffered and is retried',
  EH_ERR_UPSTREAM_UNCONFIRMED:
    'a send returned without a confirmation (partition and offset) for every record; all its events stay buffered and are sent again',
  EH_ERR_DECODE_FORMAT: 'a Kafka record value is not an edgehaul batch',
  EH_ERR_SHUTDOWN_TIMEOUT: 'shutdown did not finish within its deadline',
  EH_ERR_HTTP_LISTEN: 'the HTTP endpoint (/metrics, /healthz, /status) cannot bind its address',
  EH_ERR_HTTP_AUTH: 'a login to the HTTP endpoint (status page, /status, /metrics, /healthz) was refused; answered 401',
  EH_ERR_SCHEDULE_FAILED:
    'a scheduled job (telemetry, TTL sweep, store maintenance) failed; it runs again at its next time',
  EH_ERR_STATUS_UNREACHABLE: 'edgehaul status found no daemon answering at the HTTP address',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class EdgehaulError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EdgehaulError';
    this.code = code;
  }
}

/** Process exit codes: the meaning is part of the CLI contract (see README). */
export const EXIT = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  SHUTDOWN_TIMEOUT: 3,
  /** sysexits EX_UNAVAILABLE: `edgehaul status` found no running daemon */
  UNAVAILABLE: 69,
  /** sysexits EX_CONFIG: systemd's RestartPreventExitStatus keeps a broken config from crash-looping */
  CONFIG: 78,
} as const;
