import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/**
 * Password hashes in a self-describing string: `scrypt$N$r$p$salt$hash`
 * (salt and hash in unpadded base64url). scrypt comes with Node (no native
 * add-on to build on a Pi), is memory-hard, and its parameters travel with the
 * hash, so stronger settings later do not invalidate stored hashes.
 */
export const SCRYPT_DEFAULTS = { N: 16_384, r: 8, p: 1 } as const;
const KEY_BYTES = 32;
const SALT_BYTES = 16;

/** What check-config accepts: bounded parameters, so a config cannot make one login take minutes or gigabytes. */
export const HASH_PATTERN =
  /^scrypt\$(\d{1,7})\$(\d{1,2})\$(\d{1,2})\$([A-Za-z0-9_-]{16,128})\$([A-Za-z0-9_-]{32,256})$/;

export interface ParsedHash {
  readonly N: number;
  readonly r: number;
  readonly p: number;
  readonly salt: Buffer;
  readonly hash: Buffer;
}

/** Parses and bounds-checks a hash string; null when it is not one this version can verify. */
export function parseHash(text: string): ParsedHash | null {
  const m = HASH_PATTERN.exec(text);
  if (m === null) return null;
  const N = Number(m[1]);
  const r = Number(m[2]);
  const p = Number(m[3]);
  // N a power of two from 2^10 to 2^20; memory 128*N*r at most 256 MiB
  if (N < 1024 || N > 1_048_576 || (N & (N - 1)) !== 0 || r < 1 || p < 1 || 128 * N * r > 256 * 1024 * 1024)
    return null;
  const salt = Buffer.from(m[4]!, 'base64url');
  const hash = Buffer.from(m[5]!, 'base64url');
  if (salt.length < 8 || hash.length < 16) return null;
  return { N, r, p, salt, hash };
}

export function describeHashProblem(text: string): string | null {
  return parseHash(text) === null
    ? 'not a password hash edgehaul can verify: expected scrypt$N$r$p$salt$hash (N a power of two from 1024 to 1048576); make one with `edgehaul hash-password`'
    : null;
}

function scryptAsync(password: Buffer | string, salt: Buffer, keylen: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // the async form runs on libuv's thread pool: other clients keep being served while it works
    scrypt(password, salt, keylen, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

function maxmem(N: number, r: number): number {
  return 128 * N * r * 2 + 1024 * 1024;
}

export async function hashPassword(
  password: string,
  params: { N: number; r: number; p: number } = SCRYPT_DEFAULTS,
): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await scryptAsync(password.normalize('NFC'), salt, KEY_BYTES, {
    N: params.N,
    r: params.r,
    p: params.p,
    maxmem: maxmem(params.N, params.r),
  });
  return `scrypt$${params.N}$${params.r}$${params.p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

/** Compares in constant time (for a given hash length). Never throws for a wrong password. */
export async function verifyPassword(password: Buffer | string, parsed: ParsedHash): Promise<boolean> {
  const candidate =
    typeof password === 'string' ? password.normalize('NFC') : Buffer.from(password.toString('utf8').normalize('NFC'));
  const key = await scryptAsync(candidate, parsed.salt, parsed.hash.length, {
    N: parsed.N,
    r: parsed.r,
    p: parsed.p,
    maxmem: maxmem(parsed.N, parsed.r),
  });
  return timingSafeEqual(key, parsed.hash);
}
