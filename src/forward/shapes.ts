/**
 * The shapes table of a format 3 batch: the key lists of the transformed
 * values that are maps, each stored once per batch, so that an event carries
 * `[shape index, v1, ..., vn]` instead of its map. Works on the CBOR bytes:
 * keys are compared and written as they were encoded, values copied as they
 * are, so a shaped value decodes exactly like the original map.
 */
import { itemEnd, headSize, MAJOR_MAP, MAJOR_TEXT } from './cbor-bytes.js';

/** A list of keys, checked to be distinct and valid UTF-8. */
interface Keys {
  readonly keyCount: number;
  /** The keys' CBOR items (text strings), concatenated: the array's content in the shapes table. */
  readonly keyItems: Buffer;
  /** `keyItems` as latin1 */
  readonly id: string;
}

export interface Shape extends Keys {
  readonly index: number;
}

/** A map payload taken apart: its values are `payload[bounds[2i], bounds[2i + 1])`. */
export interface ShapedValue {
  readonly shape: Shape;
  readonly payload: Buffer;
  readonly bounds: number[];
  /** Bytes of the event's data item `[shape index, v1, ..., vn]`. */
  readonly size: number;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The keys shaped last, in any batch: batches of one route mostly share them,
 * so a new batch compares its first map with them in place instead of
 * checking its keys again.
 */
let recent: Keys | null = null;

export class ShapeTable {
  readonly shapes: Shape[] = [];
  /** by id; null: keys that cannot be shaped (invalid UTF-8, duplicates) */
  private readonly known = new Map<string, Shape | null>();
  /** events of one batch mostly share one shape: compared in place before any lookup */
  private last: Shape | null = null;

  /**
   * The payload as a shaped value, or null when it is not one CBOR map with
   * distinct text keys whose items can all be copied (see itemEnd); such
   * payloads travel as tag 24.
   */
  shape(payload: Buffer): ShapedValue | null {
    const b = payload;
    const end = b.length;
    if (end === 0 || b[0]! >> 5 !== MAJOR_MAP) return null;
    const ai = b[0]! & 0x1f;
    let n: number;
    let p: number;
    if (ai < 24) {
      n = ai;
      p = 1;
    } else if (ai === 24 && end > 1) {
      n = b[1]!;
      p = 2;
    } else if (ai === 25 && end > 2) {
      n = (b[1]! << 8) | b[2]!;
      p = 3;
    } else return null; // larger or indefinite-length maps are left as they are
    const mapHead = p;
    const last: Keys | null = this.last ?? recent;
    let same = last !== null && last.keyCount === n;
    let q = 0;
    let keyBytes = 0;
    const bounds = new Array<number>(2 * n);
    for (let i = 0; i < n; i++) {
      const ks = p;
      const kb = b[p];
      if (kb === undefined || kb >> 5 !== MAJOR_TEXT) return null;
      const kai = kb & 0x1f;
      let len: number;
      if (kai < 24) {
        len = kai;
        p += 1;
      } else if (kai === 24 && p + 1 < end) {
        len = b[p + 1]!;
        p += 2;
      } else if (kai === 25 && p + 2 < end) {
        len = (b[p + 1]! << 8) | b[p + 2]!;
        p += 3;
      } else return null;
      const ke = p + len;
      if (ke > end) return null;
      if (same) {
        const items = last!.keyItems;
        if (q + ke - ks > items.length) same = false;
        else {
          for (let j = ks; j < ke; j++) {
            if (b[j] !== items[q++]) {
              same = false;
              break;
            }
          }
        }
      }
      keyBytes += ke - ks;
      const ve = itemEnd(b, ke);
      if (ve < 0) return null;
      bounds[2 * i] = ke;
      bounds[2 * i + 1] = ve;
      p = ve;
    }
    if (p !== end) return null;
    const shape =
      same && q === last!.keyItems.length ? (this.last ?? this.add(last!)) : this.lookup(b, mapHead, bounds);
    if (shape === null) return null;
    this.last = shape;
    recent = shape;
    return { shape, payload, bounds, size: headSize(n + 1) + headSize(shape.index) + end - mapHead - keyBytes };
  }

  private lookup(b: Buffer, mapHead: number, bounds: readonly number[]): Shape | null {
    const n = bounds.length / 2;
    const parts: Buffer[] = [];
    for (let i = 0; i < n; i++) parts.push(b.subarray(i === 0 ? mapHead : bounds[2 * i - 1]!, bounds[2 * i]));
    const keyItems = Buffer.concat(parts);
    const id = keyItems.toString('latin1');
    const known = this.known.get(id);
    if (known !== undefined) return known;
    if (!distinctUtf8Keys(parts)) {
      this.known.set(id, null);
      return null;
    }
    return this.add({ keyCount: n, keyItems, id });
  }

  private add(keys: Keys): Shape {
    const shape = { keyCount: keys.keyCount, keyItems: keys.keyItems, id: keys.id, index: this.shapes.length };
    this.shapes.push(shape);
    this.known.set(shape.id, shape);
    return shape;
  }
}

/** Keys a decoder reads as n distinct strings (ill-formed UTF-8 could decode two byte sequences alike). */
function distinctUtf8Keys(keyItems: readonly Buffer[]): boolean {
  const seen = new Set<string>();
  for (const item of keyItems) {
    const ai = item[0]! & 0x1f;
    try {
      seen.add(strictUtf8.decode(item.subarray(ai < 24 ? 1 : ai === 24 ? 2 : 3)));
    } catch {
      return false;
    }
  }
  return seen.size === keyItems.length;
}
