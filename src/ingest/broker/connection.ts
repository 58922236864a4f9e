import type { Client } from 'aedes';
import type { TokenBucket } from 'limiter';
import type { SubjectAcl } from '../../security/acl.js';

export type Transport = 'tcp' | 'tls' | 'ws';

/** What the broker keeps per connection, from accept to close. */
export interface Connection {
  readonly remote: string;
  readonly transport: Transport;
  overLimit: boolean;
  username: string | null;
  acl: SubjectAcl | null;
  bucket: TokenBucket | null;
  /** publishes waiting for a token, in arrival order */
  queue: Array<() => void>;
  timer: NodeJS.Timeout | null;
  /** the connection was closed by edgehaul for a counted reason (not a protocol error of the client) */
  closedByUs: boolean;
}

/** The parts of aedes' mqtt-packet parser (9.x) the doors hook into. */
export interface PacketParser {
  _parseLength?: () => boolean;
  _parsePublish?: () => void;
  _emitError?: (err: Error) => void;
  /** the bytes of the packet being parsed (a BufferList) and the read position in it */
  _list?: { length: number; readUInt16BE(offset: number): number; slice(start: number, end: number): Buffer };
  _pos?: number;
  error?: Error | null;
  packet?: { length: number; qos?: number; messageId?: number };
}

export type ClientWithParser = Client & { _parser?: PacketParser };

/** A warning logged at most once per key and interval (LogThrottle), with the count it held back. */
export type Warn = (key: string, fields: Record<string, unknown>, msg: string) => void;
