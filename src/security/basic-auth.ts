import { createHmac, randomBytes } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import { hashPassword, parseHash, type ParsedHash } from './password.js';
import { Slots, verifyInSlot } from './slots.js';

/**
 * Loopback: 127.0.0.0/8, ::1 (and ::ffff:127.x.x.x), and the name `localhost`
 * (RFC 6761 keeps it on loopback). Anything else, the wildcards 0.0.0.0 and
 * :: included, reaches beyond the machine.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost') return true;
  const v4 = h.startsWith('::ffff:') && isIP(h.slice(7)) === 4 ? h.slice(7) : h;
  if (isIP(v4) === 4) return v4.split('.')[0] === '127';
  return isIP(h) === 6 && LOOPBACK_V6.check(h, 'ipv6');
}

const LOOPBACK_V6 = new BlockList();
LOOPBACK_V6.addAddress('::1', 'ipv6');

export interface BasicAuthUser {
  readonly username: string;
  readonly password_hash: string;
}

export type BasicAuthResult =
  | { readonly ok: true; readonly username: string }
  | { readonly ok: false; readonly why: 'missing' | 'malformed' | 'wrong' | 'busy'; readonly username?: string };

/** scrypt logins at once; the rest wait in line (as the MQTT broker's logins do). */
const SCRYPT_SLOTS = 2;
const SCRYPT_QUEUE = 64;
/** A browser sends the same Authorization header with every request: a verified one is remembered this long. */
const REMEMBER_MS = 10 * 60_000;
const REMEMBER_MAX = 64;

/**
 * HTTP Basic authentication (RFC 7617) against the scrypt hashes of
 * security/password.ts, the format and code of the embedded broker's users.
 * A page refreshing every few seconds would otherwise cost one scrypt (about
 * 16 MiB and tens of ms on a Pi) per request: a verified header is kept as an
 * HMAC under a key made at start (never the header itself) for REMEMBER_MS.
 * Failures are never remembered. Unknown users are checked against a dummy
 * hash, so they take as long as a wrong password.
 */
export class BasicAuth {
  private readonly users: Map<string, ParsedHash>;
  private readonly slots = new Slots(SCRYPT_SLOTS, SCRYPT_QUEUE);
  private readonly key = randomBytes(32);
  private readonly remembered = new Map<string, { username: string; until: number }>();
  private dummy: ParsedHash | null = null;

  constructor(
    users: readonly BasicAuthUser[],
    private readonly now: () => number = Date.now,
  ) {
    this.users = new Map();
    for (const u of users) {
      const parsed = parseHash(u.password_hash);
      if (parsed !== null) this.users.set(u.username, parsed);
    }
  }

  /** Makes the dummy hash unknown users are checked against (once, before serving). */
  async prepare(): Promise<void> {
    this.dummy ??= parseHash(await hashPassword(randomBytes(16).toString('hex')));
  }

  /** Checks an Authorization header value. Never throws. */
  async check(header: string | undefined): Promise<BasicAuthResult> {
    if (header === undefined || header === '') return { ok: false, why: 'missing' };
    const m = /^Basic[ ]+([A-Za-z0-9+/=_-]{1,1024})$/i.exec(header.trim());
    if (m === null) return { ok: false, why: 'malformed' };
    const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) return { ok: false, why: 'malformed' };
    const username = decoded.slice(0, colon);
    const password = decoded.slice(colon + 1);
    const tag = createHmac('sha256', this.key).update(header.trim()).digest('base64');
    const now = this.now();
    const hit = this.remembered.get(tag);
    if (hit !== undefined && hit.until > now && hit.username === username) return { ok: true, username };
    const known = this.users.get(username);
    const target = known ?? this.dummy;
    if (target === null || target === undefined) return { ok: false, why: 'wrong', username };
    const ok = await verifyInSlot(this.slots, password, target);
    if (ok === 'busy') return { ok: false, why: 'busy', username };
    // a dummy-hash match is impossible in practice; still, an unknown user never passes
    if (!ok || known === undefined) return { ok: false, why: 'wrong', username };
    this.remember(tag, username, now);
    return { ok: true, username };
  }

  private remember(tag: string, username: string, now: number): void {
    for (const [k, v] of this.remembered) if (v.until <= now) this.remembered.delete(k);
    while (this.remembered.size >= REMEMBER_MAX) {
      const oldest = this.remembered.keys().next().value;
      if (oldest === undefined) break;
      this.remembered.delete(oldest);
    }
    this.remembered.set(tag, { username, until: now + REMEMBER_MS });
  }
}
