package io.edgehaul.records;

import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads one CBOR data item (RFC 8949) into plain Java values, exactly: the
 * values inside an event. Jackson's streaming parser reads the record around
 * them, but turns map keys into text (the integer key 1 and the text key "1"
 * become alike); events keep what the device sent, so values are read here.
 *
 * <ul>
 *   <li>integers: {@link Long} when they fit, else {@link BigInteger} (bignums, tags 2 and 3, too);
 *   <li>floats (half, single, double): {@link Double}; -0.0 and NaN as such;
 *   <li>byte strings: {@code byte[]}; as map keys, read-only {@link ByteBuffer}s (equal by content);
 *   <li>text: {@link String}; arrays: {@link List}; maps: {@link LinkedHashMap} in wire order;
 *   <li>false, true, null (undefined too); other tags: {@link Tagged}.
 * </ul>
 */
final class CborValues {
  private static final int MAX_DEPTH = 256;
  private final byte[] b;
  private final int end;
  private final String where;
  private int p;

  private CborValues(byte[] b, int start, int end, String where) {
    this.b = b;
    this.p = start;
    this.end = end;
    this.where = where;
  }

  /** One item filling b[start, end) exactly. */
  static Object readExactly(byte[] b, int start, int end, String where) {
    CborValues r = new CborValues(b, start, end, where);
    Object v = r.item(0);
    if (r.p != end) throw r.fail("trailing bytes after the item", r.p);
    return v;
  }

  /** One item starting at `start`; returns it and sets endOut[0] to where it ends. */
  static Object readAt(byte[] b, int start, int end, String where, int[] endOut) {
    CborValues r = new CborValues(b, start, end, where);
    Object v = r.item(0);
    endOut[0] = r.p;
    return v;
  }

  private RecordException fail(String what, int at) {
    return new RecordException(where + ": " + what + " at byte " + at);
  }

  private int u8() {
    if (p >= end) throw fail("truncated", p);
    return b[p++] & 0xff;
  }

  /** The argument of a head, as an unsigned long in a long. */
  private long arg(int ai) {
    if (ai < 24) return ai;
    switch (ai) {
      case 24: return u8();
      case 25: return ((long) u8() << 8) | u8();
      case 26: return ((long) u8() << 24) | ((long) u8() << 16) | ((long) u8() << 8) | u8();
      case 27: {
        long v = 0;
        for (int i = 0; i < 8; i++) v = (v << 8) | u8();
        return v;
      }
      default: throw fail("reserved additional information " + ai, p - 1);
    }
  }

  private int length(long n, int at) {
    if (n < 0 || n > end - p) throw fail("truncated: a length of " + Long.toUnsignedString(n) + " bytes or items", at);
    return (int) n;
  }

  private Object item(int depth) {
    if (depth > MAX_DEPTH) throw fail("nested deeper than " + MAX_DEPTH, p);
    int at = p;
    int ib = u8();
    int major = ib >> 5;
    int ai = ib & 0x1f;
    if (major == 7) return simple(ai, at);
    boolean indefinite = ai == 31;
    if (indefinite && (major < 2 || major == 6)) throw fail("indefinite length for major type " + major, at);
    long n = indefinite ? 0 : arg(ai); // unsigned: negative when above 2^63
    switch (major) {
      case 0: return n >= 0 ? (Object) n : new BigInteger(Long.toUnsignedString(n));
      case 1: return n >= 0 ? (Object) (-1 - n) : new BigInteger(Long.toUnsignedString(n)).negate().subtract(BigInteger.ONE);
      case 2: return indefinite ? chunks(2, at) : bytes(length(n, at));
      case 3: return indefinite ? new String(chunks(3, at), StandardCharsets.UTF_8) : text(length(n, at), at);
      case 4: {
        List<Object> list = new ArrayList<>();
        if (indefinite) {
          while (!peekBreak()) list.add(item(depth + 1));
        } else {
          int count = length(n, at);
          for (int i = 0; i < count; i++) list.add(item(depth + 1));
        }
        return list;
      }
      case 5: {
        Map<Object, Object> map = new LinkedHashMap<>();
        if (indefinite) {
          while (!peekBreak()) put(map, depth);
        } else {
          int count = length(n, at);
          for (int i = 0; i < count; i++) put(map, depth);
        }
        return map;
      }
      default: { // 6: tag
        Object inner = item(depth + 1);
        if ((n == 2 || n == 3) && inner instanceof byte[] mag) {
          BigInteger v = new BigInteger(1, mag);
          return normal(n == 2 ? v : v.negate().subtract(BigInteger.ONE));
        }
        return new Tagged(n, inner);
      }
    }
  }

  private void put(Map<Object, Object> map, int depth) {
    Object k = item(depth + 1);
    if (k instanceof byte[] bytes) k = ByteBuffer.wrap(bytes).asReadOnlyBuffer();
    map.put(k, item(depth + 1));
  }

  private boolean peekBreak() {
    if (p >= end) throw fail("truncated: no break", p);
    if ((b[p] & 0xff) == 0xff) {
      p++;
      return true;
    }
    return false;
  }

  private byte[] chunks(int major, int at) {
    java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
    while (!peekBreak()) {
      int cat = p;
      int ib = u8();
      if (ib >> 5 != major || (ib & 0x1f) == 31) throw fail("a chunk of another type in an indefinite string", cat);
      out.writeBytes(bytes(length(arg(ib & 0x1f), cat)));
    }
    return out.toByteArray();
  }

  private byte[] bytes(int n) {
    byte[] out = java.util.Arrays.copyOfRange(b, p, p + n);
    p += n;
    return out;
  }

  private String text(int n, int at) {
    try {
      String s = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT)
          .decode(ByteBuffer.wrap(b, p, n)).toString();
      p += n;
      return s;
    } catch (CharacterCodingException e) {
      throw fail("a text string that is not UTF-8", at);
    }
  }

  private Object simple(int ai, int at) {
    switch (ai) {
      case 20: return Boolean.FALSE;
      case 21: return Boolean.TRUE;
      case 22: case 23: return null;
      case 25: return half((int) arg(25));
      case 26: return (double) Float.intBitsToFloat((int) arg(26));
      case 27: return Double.longBitsToDouble(arg(27));
      default: throw fail("simple value " + ai + " is not used by edgehaul", at);
    }
  }

  /** IEEE 754 half precision to double (Float.float16ToFloat is Java 20+). */
  static double half(int h) {
    int exp = (h >> 10) & 0x1f;
    int mant = h & 0x3ff;
    double v;
    if (exp == 0) v = mant * Math.pow(2, -24);
    else if (exp == 31) v = mant == 0 ? Double.POSITIVE_INFINITY : Double.NaN;
    else v = (mant + 1024) * Math.pow(2, exp - 25);
    return (h & 0x8000) != 0 ? -v : v;
  }

  /** Integers as Long when they fit. */
  static Object normal(BigInteger v) {
    return v.bitLength() < 64 ? (Object) v.longValue() : v;
  }
}
