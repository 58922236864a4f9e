/**
 * CBOR (RFC 8949) at the byte level, for the batch format: finding where a
 * data item ends without decoding it, and writing heads, strings and copied
 * items into a buffer of a size computed beforehand. Copying an item's bytes
 * instead of decoding and re-encoding it keeps it exactly as it was (float
 * widths, negative zero, 64-bit integers, tags) and costs less.
 */

/** Deeper items are left to the caller's fallback, so that hostile nesting cannot exhaust the stack. */
const MAX_DEPTH = 64;

/**
 * Tags whose meaning cbor-x takes from earlier items of the same decode
 * (value sharing 28/29, stringref 25/256, packed CBOR 6/51 and its
 * prefix/suffix ranges, cbor-x's bundled strings 14/15 and record
 * definitions 105 and 0xdf00 up): an item holding one decodes differently
 * once moved into another CBOR item.
 */
function tagNeedsContext(tag: number): boolean {
  return (
    tag === 6 ||
    tag === 14 ||
    tag === 15 ||
    tag === 25 ||
    tag === 28 ||
    tag === 29 ||
    tag === 51 ||
    tag === 105 ||
    tag === 256 ||
    (tag >= 216 && tag <= 255) ||
    (tag >= 27647 && tag <= 32767) ||
    tag >= 0xdf00
  );
}

/**
 * Where the data item starting at `pos` ends, or -1 when it is not well
 * formed, runs past the end, nests deeper than MAX_DEPTH, or could decode
 * differently outside its own item: a context-dependent tag (tagNeedsContext),
 * a simple value cbor-x reads from a packed table (other than false, true,
 * null, undefined), or an indefinite-length string (which cbor-x rejects).
 */
export function itemEnd(b: Uint8Array, pos: number, depth = 0): number {
  const end = b.length;
  if (pos >= end) return -1;
  const ib = b[pos]!;
  const major = ib >> 5;
  const ai = ib & 0x1f;
  let p = pos + 1;
  let arg: number;
  if (ai < 24) arg = ai;
  else if (ai === 24) {
    if (p + 1 > end) return -1;
    arg = b[p]!;
    p += 1;
  } else if (ai === 25) {
    if (p + 2 > end) return -1;
    arg = (b[p]! << 8) | b[p + 1]!;
    p += 2;
  } else if (ai === 26) {
    if (p + 4 > end) return -1;
    arg = b[p]! * 0x1000000 + ((b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!);
    p += 4;
  } else if (ai === 27) {
    if (p + 8 > end) return -1;
    // exact below 2^53; anything larger is past the end as a length and context-dependent as a tag
    arg =
      (b[p]! * 0x1000000 + ((b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!)) * 0x100000000 +
      b[p + 4]! * 0x1000000 +
      ((b[p + 5]! << 16) | (b[p + 6]! << 8) | b[p + 7]!);
    p += 8;
  } else if (ai === 31 && (major === 4 || major === 5)) {
    if (depth >= MAX_DEPTH) return -1;
    let items = 0;
    while (p < end && b[p] !== 0xff) {
      p = itemEnd(b, p, depth + 1);
      if (p < 0) return -1;
      items++;
    }
    if (p >= end || (major === 5 && items % 2 !== 0)) return -1;
    return p + 1;
  } else return -1;

  switch (major) {
    case 0:
    case 1:
      return p;
    case 2:
    case 3:
      return arg <= end - p ? p + arg : -1;
    case 4:
    case 5: {
      const items = major === 5 ? arg * 2 : arg;
      if (items > end - p || depth >= MAX_DEPTH) return -1;
      for (let i = 0; i < items; i++) {
        p = itemEnd(b, p, depth + 1);
        if (p < 0) return -1;
      }
      return p;
    }
    case 6:
      if (tagNeedsContext(arg) || depth >= MAX_DEPTH) return -1;
      return itemEnd(b, p, depth + 1);
    default: // 7: false, true, null, undefined; half, single and double floats
      return (ai >= 20 && ai <= 23) || ai >= 25 ? p : -1;
  }
}

/** Bytes of a head (initial byte and argument) for argument `n` >= 0. */
export function headSize(n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n < 0x100000000 ? 5 : 9;
}

/** Bytes of a safe integer as `int` writes it (the shortest integer head). */
export function intSize(n: number): number {
  return headSize(n < 0 ? -1 - n : n);
}

/** Bytes of a text string. */
export function textSize(s: string): number {
  const n = isShortAscii(s) ? s.length : Buffer.byteLength(s, 'utf8');
  return headSize(n) + n;
}

/** Field names, ids and topics: written in JS, which for such strings costs less than a call into the runtime. */
function isShortAscii(s: string): boolean {
  if (s.length > 0xff) return false;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

export const MAJOR_UINT = 0;
export const MAJOR_NEGINT = 1;
export const MAJOR_BYTES = 2;
export const MAJOR_TEXT = 3;
export const MAJOR_ARRAY = 4;
export const MAJOR_MAP = 5;
export const MAJOR_TAG = 6;

/**
 * Writes into a buffer of exactly the size the caller computed with the
 * *Size functions above; `done()` checks that it was filled exactly.
 */
export class CborWriter {
  private readonly buf: Buffer;
  private pos = 0;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  head(major: number, n: number): void {
    const b = this.buf;
    const m = major << 5;
    if (n < 24) b[this.pos++] = m | n;
    else if (n < 0x100) {
      b[this.pos++] = m | 24;
      b[this.pos++] = n;
    } else if (n < 0x10000) {
      b[this.pos++] = m | 25;
      b[this.pos++] = n >> 8;
      b[this.pos++] = n & 0xff;
    } else if (n < 0x100000000) {
      b[this.pos++] = m | 26;
      b.writeUInt32BE(n, this.pos);
      this.pos += 4;
    } else {
      b[this.pos++] = m | 27;
      b.writeUInt32BE(Math.floor(n / 0x100000000), this.pos);
      b.writeUInt32BE(n >>> 0, this.pos + 4);
      this.pos += 8;
    }
  }

  /** A safe integer, as a CBOR integer of the shortest head (64-bit heads above 2^32). */
  int(n: number): void {
    if (n >= 0) this.head(MAJOR_UINT, n);
    else this.head(MAJOR_NEGINT, -1 - n);
  }

  text(s: string): void {
    if (isShortAscii(s)) {
      this.head(MAJOR_TEXT, s.length);
      const b = this.buf;
      let p = this.pos;
      for (let i = 0; i < s.length; i++) b[p++] = s.charCodeAt(i);
      this.pos = p;
      return;
    }
    const n = Buffer.byteLength(s, 'utf8');
    this.head(MAJOR_TEXT, n);
    this.pos += this.buf.write(s, this.pos, n, 'utf8');
  }

  bytes(data: Uint8Array): void {
    this.head(MAJOR_BYTES, data.length);
    this.raw(data, 0, data.length);
  }

  /** Copies `data[start, end)`: encoded CBOR, as it is. */
  raw(data: Uint8Array, start: number, end: number): void {
    const b = this.buf;
    if (end - start <= 32) {
      // a shaped value's items are a few bytes each: a view per item would cost more than the copy
      let p = this.pos;
      for (let i = start; i < end; i++) b[p++] = data[i]!;
    } else b.set(start === 0 && end === data.length ? data : data.subarray(start, end), this.pos);
    this.pos += end - start;
  }

  done(): Buffer {
    if (this.pos !== this.buf.length) throw new Error(`CBOR writer: wrote ${this.pos} of ${this.buf.length} bytes`);
    return this.buf;
  }
}
