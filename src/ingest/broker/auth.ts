import { randomBytes } from 'node:crypto';
import { TLSSocket } from 'node:tls';
import type { Client } from 'aedes';
import type { TokenBucket } from 'limiter';
import { compileAcl, type Acl, type AclRule } from '../../security/acl.js';
import { hashPassword, parseHash, type ParsedHash } from '../../security/password.js';
import { Slots, verifyInSlot } from '../../security/slots.js';
import type { Connection, Warn } from './connection.js';

/** scrypt runs on libuv's pool (4 threads by default): at most this many logins hash at once, the rest wait in line. */
const SCRYPT_SLOTS = 2;
const SCRYPT_QUEUE = 256;

/** MQTT 3.1.1 CONNACK return codes. */
const CONNACK = { UNAVAILABLE: 3, BAD_CREDENTIALS: 4, NOT_AUTHORIZED: 5 } as const;

/** ingest.embedded's login settings; absent: anonymous, no connection limit. */
export interface AuthSettings {
  readonly max_connections: number;
  readonly auth: {
    readonly allow_anonymous: boolean;
    readonly users: ReadonlyArray<{
      readonly username: string;
      readonly password_hash?: string | undefined;
      readonly publish?: readonly string[] | undefined;
      readonly subscribe?: readonly string[] | undefined;
    }>;
    readonly acl: readonly AclRule[];
  };
}

export interface AuthCounters {
  connections_refused_total: number;
  auth_failures_total: number;
  acl_denied_total: number;
  acl_denied_subscriptions_total: number;
}

type Refusal = Error & { returnCode: never };

function refusal(returnCode: number, message: string): Refusal {
  return Object.assign(new Error(message), { returnCode }) as Refusal;
}

export interface AuthDeps {
  readonly emb: AuthSettings | undefined;
  readonly stats: AuthCounters | undefined;
  readonly warn: Warn;
  /** The connection state of an aedes client. */
  readonly connection: (client: Client) => Connection | undefined;
  /** False once the broker stops accepting: logins are refused. */
  readonly accepting: () => boolean;
  /** The rate-limit bucket a connection gets when it logs in. */
  readonly bucket: () => TokenBucket | null;
}

/**
 * Who may connect (scrypt password hashes or a client certificate's CN, a
 * connection limit) and what they may publish and subscribe to (topic ACLs).
 */
export class BrokerAuth {
  private readonly emb: AuthSettings | undefined;
  private readonly stats: AuthCounters | undefined;
  private readonly warn: Warn;
  private readonly acl: Acl;
  private readonly users: Map<string, ParsedHash | null>;
  private readonly allowAnonymous: boolean;
  private readonly slots = new Slots(SCRYPT_SLOTS, SCRYPT_QUEUE);
  /** Unknown users are checked against this, so they take as long as a wrong password. */
  private dummyHash: ParsedHash | null = null;

  constructor(private readonly deps: AuthDeps) {
    const { emb } = deps;
    this.emb = emb;
    this.stats = deps.stats;
    this.warn = deps.warn;
    const auth = emb?.auth;
    this.acl = compileAcl([
      ...(auth?.users ?? [])
        .filter((u) => u.publish !== undefined || u.subscribe !== undefined)
        .map((u) => ({ username: u.username, publish: u.publish ?? [], subscribe: u.subscribe ?? [] })),
      ...(auth?.acl ?? []),
    ]);
    this.users = new Map<string, ParsedHash | null>(
      (auth?.users ?? []).map((u) => [u.username, u.password_hash !== undefined ? parseHash(u.password_hash) : null]),
    );
    this.allowAnonymous = emb === undefined || auth!.allow_anonymous;
  }

  /** Before the broker starts: the hash unknown users are checked against. */
  async prepare(): Promise<void> {
    if (this.users.size > 0) this.dummyHash = parseHash(await hashPassword(randomBytes(16).toString('hex')));
  }

  /** aedes' authenticate hook. */
  readonly authenticate = (
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
    callback: (err: Refusal | null, ok: boolean | null) => void,
  ): void => {
    const { emb, stats, users } = this;
    const state = this.deps.connection(client);
    if (state === undefined) return callback(refusal(CONNACK.UNAVAILABLE, 'unknown connection'), false);
    const fail = (code: number, reason: string, fields: Record<string, unknown> = {}): void => {
      if (stats !== undefined) {
        if (code === CONNACK.UNAVAILABLE) stats.connections_refused_total++;
        else stats.auth_failures_total++;
      }
      state.closedByUs = true;
      const errCode = code === CONNACK.UNAVAILABLE ? 'EH_ERR_INGEST_CONNECTIONS' : 'EH_ERR_AUTH_FAILED';
      this.warn(
        `auth:${errCode}:${reason}`,
        {
          code: errCode,
          reason,
          client_id: client.id,
          username,
          remote: state.remote,
          transport: state.transport,
          ...fields,
        },
        code === CONNACK.UNAVAILABLE ? 'mqtt connection refused' : 'mqtt login refused',
      );
      callback(refusal(code, reason), false);
    };
    const succeed = (user: string | null): void => {
      state.username = user;
      state.acl = this.acl.forSubject({ username: user, clientId: client.id });
      state.bucket = this.deps.bucket();
      callback(null, true);
    };
    if (!this.deps.accepting()) return fail(CONNACK.UNAVAILABLE, 'shutting down');
    if (state.overLimit)
      return fail(CONNACK.UNAVAILABLE, 'max_connections reached', { max_connections: emb?.max_connections });
    if (emb === undefined) return succeed(username ?? null);

    const conn = client.conn as unknown;
    if (conn instanceof TLSSocket && conn.authorized) {
      const cn = conn.getPeerCertificate()?.subject?.CN;
      const name = Array.isArray(cn) ? cn[0] : cn;
      if (typeof name === 'string' && name !== '') {
        if (!users.has(name))
          return fail(CONNACK.NOT_AUTHORIZED, 'certificate CN is not a configured user', { cn: name });
        if (username !== undefined && username !== name)
          return fail(CONNACK.BAD_CREDENTIALS, 'username differs from the certificate CN', { cn: name });
        return succeed(name);
      }
    }
    if (username === undefined || username === '') {
      if (this.allowAnonymous) return succeed(null);
      return fail(CONNACK.NOT_AUTHORIZED, 'anonymous access is off');
    }
    const known = users.get(username);
    const target = known ?? this.dummyHash;
    if (target === null || target === undefined || password === undefined) {
      // certificate-only users, or no hash to compare: no password can match (and nothing to leak by timing)
      return fail(
        CONNACK.BAD_CREDENTIALS,
        known === null ? 'user logs in with a certificate only' : 'wrong username or password',
      );
    }
    void verifyInSlot(this.slots, password, target).then((ok) => {
      if (ok === 'busy') fail(CONNACK.UNAVAILABLE, 'too many logins at once');
      else if (ok && known !== undefined) succeed(username);
      else fail(CONNACK.BAD_CREDENTIALS, 'wrong username or password');
    });
  };

  /** Whether the subscription is within the client's ACL; counted and logged when not. */
  canSubscribe(client: Client, filter: string): boolean {
    const state = this.deps.connection(client);
    if (state?.acl !== null && state?.acl !== undefined && !state.acl.canSubscribe(filter)) {
      if (this.stats !== undefined) this.stats.acl_denied_subscriptions_total++;
      this.warn(
        `sub:${client.id}`,
        { code: 'EH_ERR_ACL_SUBSCRIBE', client_id: client.id, username: state.username, filter },
        'subscription outside the acl refused',
      );
      return false;
    }
    return true;
  }

  /** Whether the publish is within the connection's ACL; counted and logged (and the connection marked closed by us) when not. */
  canPublish(client: Client, state: Connection | undefined, topic: string): boolean {
    if (state !== undefined && state.acl !== null && !state.acl.canPublish(topic)) {
      if (this.stats !== undefined) this.stats.acl_denied_total++;
      state.closedByUs = true;
      this.warn(
        `pub:${client.id}`,
        { code: 'EH_ERR_ACL_PUBLISH', client_id: client.id, username: state.username, topic },
        'publish outside the acl refused; connection closed',
      );
      return false;
    }
    return true;
  }
}
