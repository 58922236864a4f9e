/**
 * Numbers as devices sent them. JavaScript has one number type (float64), so
 * two things need care on the way from a JSON payload to a CBOR record:
 *
 * - `JSON.parse` rounds integers beyond 2^53 (a 64-bit id, a nanosecond
 *   timestamp); `parseJsonExact` reads such integers as BigInt instead.
 * - cbor-x writes integers of more than 32 bits as float64, so a field such as
 *   an epoch-ms `ts` would change CBOR type when it crosses 2^32;
 *   `wideIntegers` hands such integers to cbor-x as BigInt, which it writes as
 *   a CBOR integer (64-bit head), and a BigInt beyond 64 bits as a bignum
 *   (tag 2/3).
 */
import { isInteger, parse as parseLossless } from 'lossless-json';

/** 2^53 has 16 digits: a text with no run of 16 digits has no integer JSON.parse could round. */
const LONG_DIGITS = /\d{16}/;

/**
 * JSON.parse, except that integer literals outside the safe range come out as
 * BigInt with every digit. Only texts with a run of 16 or more digits take the
 * slower exact parser (lossless-json), which unlike JSON.parse refuses a key
 * repeated with another value (the error names it and its position).
 */
export function parseJsonExact(text: string): unknown {
  if (!LONG_DIGITS.test(text)) return JSON.parse(text) as unknown;
  return parseLossless(text, null, exactNumber);
}

function exactNumber(literal: string): number | bigint {
  const n = Number(literal);
  if (Number.isSafeInteger(n) || !isInteger(literal)) return n;
  return BigInt(literal);
}

const TWO_32 = 0x100000000;

function isWide(n: number): boolean {
  return (n >= TWO_32 || n < -TWO_32) && Number.isSafeInteger(n);
}

/**
 * The value with every safe integer of more than 32 bits replaced by a BigInt,
 * so that cbor-x writes it as a CBOR integer rather than a float64. Walks plain
 * objects, arrays and Maps; copies only what changes (the input is never
 * modified, and is returned itself when nothing changes).
 */
export function wideIntegers(value: unknown, depth = 0): unknown {
  if (typeof value === 'number') return isWide(value) ? BigInt(value) : value;
  if (typeof value !== 'object' || value === null || depth > 256) return value;
  if (Array.isArray(value)) {
    let out: unknown[] | null = null;
    for (let i = 0; i < value.length; i++) {
      const v = value[i] as unknown;
      const w = wideIntegers(v, depth + 1);
      if (w !== v) {
        out ??= value.slice();
        out[i] = w;
      }
    }
    return out ?? value;
  }
  if (value instanceof Map) {
    let changed = false;
    const out = new Map<unknown, unknown>();
    for (const [k, v] of value) {
      const wk = wideIntegers(k, depth + 1);
      const wv = wideIntegers(v, depth + 1);
      if (wk !== k || wv !== v) changed = true;
      out.set(wk, wv);
    }
    return changed ? out : value;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return value;
  const obj = value as Record<string, unknown>;
  let out: Record<string, unknown> | null = null;
  for (const k in obj) {
    if (!Object.hasOwn(obj, k)) continue;
    const v = obj[k];
    const w = wideIntegers(v, depth + 1);
    if (w !== v) {
      if (out === null) {
        out = {};
        for (const k2 in obj) if (Object.hasOwn(obj, k2)) setOwnField(out, k2, obj[k2]);
      }
      setOwnField(out, k, w);
    }
  }
  return out ?? value;
}

function setOwnField(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__')
    Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}

/**
 * The opposite, for readers: a BigInt that a float64 holds exactly (a safe
 * integer) becomes a number; larger ones stay BigInt.
 */
export function narrowInteger(v: bigint): number | bigint {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
}
