package io.edgehaul.records;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.dataformat.cbor.CBORFactory;
import com.fasterxml.jackson.dataformat.cbor.CBORParser;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Decodes edgehaul's Kafka records (format versions 1 to 5; the spec is
 * docs/record-format.md) into plain events, one map per event:
 * {@code {gateway, incarnation, route, key, seq, received_at, topic, captures, value | payload}}.
 *
 * <p>The record is read with Jackson's CBOR streaming parser, which sees the
 * tag 24 around a transformed value (a tree-model reader drops it and cannot
 * tell it from a raw payload); the values themselves are read exactly by
 * {@link CborValues}. The whole record is decoded before anything is returned:
 * a bad record throws one {@link RecordException} naming the field or byte offset.
 */
public final class Records {
  public static final String CONTENT_TYPE = "application/vnd.edgehaul.batch+cbor";
  public static final List<Integer> READ_VERSIONS = List.of(1, 2, 3, 4, 5);
  private static final CBORFactory FACTORY = new CBORFactory();

  private Records() {}

  /** The events of a record value; headers may be null, else they must agree with the value. */
  public static List<Map<String, Object>> events(byte[] value, Map<String, String> headers) {
    String ct = headers == null ? null : headers.get("content-type");
    if (ct != null && !ct.equals(CONTENT_TYPE)) throw new RecordException("header content-type is " + ct + ", not " + CONTENT_TYPE);
    Wire w;
    try (JsonParser p = FACTORY.createParser(value)) {
      w = readWire((CBORParser) p, value);
      if (p.nextToken() != null) throw new RecordException("bytes after the record's map at byte " + p.currentTokenLocation().getByteOffset());
    } catch (JsonProcessingException e) {
      long at = e.getLocation() == null ? -1 : e.getLocation().getByteOffset();
      throw new RecordException("truncated or not CBOR at byte " + at + " of " + value.length + ": " + e.getOriginalMessage(), e);
    } catch (IOException e) {
      throw new RecordException("unreadable: " + e.getMessage(), e);
    }
    String fmt = headers == null ? null : headers.get("edgehaul-format");
    if (fmt != null && !fmt.equals(String.valueOf(w.v))) throw new RecordException("header edgehaul-format " + fmt + " disagrees with the value's version " + w.v);
    return w.events();
  }

  public static List<Map<String, Object>> events(byte[] value) {
    return events(value, null);
  }

  /** One event's data before the shapes table is known (map keys may come in any order). */
  /** aggregate: format 5, the number of events an aggregate stands for; null on other events */
  private record RawEvent(long ds, long dt, int ti, Object data, boolean embedded, Long aggregate) {}

  private static final class Wire {
    Integer v;
    String gw, inc, route, key;
    Long s0, t0;
    List<String> topics;
    Object caps; // Map<String,String> or List<Map<String,String>>
    List<List<String>> shapes = List.of();
    List<RawEvent> ev;

    List<Map<String, Object>> events() {
      if (v == null || !READ_VERSIONS.contains(v)) throw new RecordException("field v: unsupported format version " + v + " (this decoder reads 1, 2, 3, 4, 5)");
      require(gw, "gw");
      require(route, "route");
      require(key, "key");
      if (v >= 4 && (inc == null || inc.isEmpty())) throw new RecordException("field inc: expected a non-empty text string");
      require(s0, "s0");
      require(t0, "t0");
      require(topics, "topics");
      require(ev, "ev");
      if (caps instanceof List<?> l && l.size() != topics.size()) throw new RecordException("field caps: " + l.size() + " entries for " + topics.size() + " topics");
      List<Map<String, Object>> out = new ArrayList<>(ev.size());
      for (int i = 0; i < ev.size(); i++) {
        RawEvent e = ev.get(i);
        if (e.ti < 0 || e.ti >= topics.size()) throw new RecordException("ev[" + i + "][2]: topic index " + e.ti + " is not in topics (" + topics.size() + " topics)");
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("gateway", gw);
        m.put("incarnation", v >= 4 ? inc : null);
        m.put("route", route);
        m.put("key", key);
        m.put("seq", s0 + e.ds);
        m.put("received_at", t0 + e.dt);
        m.put("topic", topics.get(e.ti));
        Object c = caps instanceof List<?> l ? l.get(e.ti) : caps;
        @SuppressWarnings("unchecked")
        Map<String, String> captures = c == null ? Map.of() : (Map<String, String>) c;
        m.put("captures", Collections.unmodifiableMap(new LinkedHashMap<>(captures)));
        if (e.aggregate != null) {
          if (v < 5) throw new RecordException("ev[" + i + "]: expected a 4-array (aggregates are format 5), got 5 items");
          if (e.aggregate < 1) throw new RecordException("ev[" + i + "][4] (aggregate count): expected a positive integer, got " + e.aggregate);
          m.put("aggregate", e.aggregate);
        }
        if (e.data instanceof byte[] bytes && !e.embedded) m.put("payload", bytes);
        else if (e.data instanceof byte[] inner) {
          if (v < 2) throw new RecordException("ev[" + i + "][3]: tag 24 before format 2");
          m.put("value", CborValues.readExactly(inner, 0, inner.length, "ev[" + i + "][3] (tag 24)"));
        } else {
          List<?> data = (List<?>) e.data;
          if (v < 3) throw new RecordException("ev[" + i + "][3]: a shaped value before format 3");
          Object s = data.isEmpty() ? null : data.get(0);
          if (!(s instanceof Long idx) || idx < 0 || idx >= shapes.size()) throw new RecordException("ev[" + i + "][3]: shape " + s + " is not in the shapes table (" + shapes.size() + " shapes)");
          List<String> keys = shapes.get((int) (long) idx);
          if (data.size() != keys.size() + 1) throw new RecordException("ev[" + i + "][3]: " + (data.size() - 1) + " values for a shape of " + keys.size() + " keys");
          Map<Object, Object> map = new LinkedHashMap<>();
          for (int k = 0; k < keys.size(); k++) map.put(keys.get(k), data.get(k + 1));
          m.put("value", map);
        }
        out.add(m);
      }
      return out;
    }
  }

  private static void require(Object v, String field) {
    if (v == null) throw new RecordException("field " + field + ": missing");
  }

  private static Wire readWire(CBORParser p, byte[] value) throws IOException {
    if (p.nextToken() != JsonToken.START_OBJECT) throw new RecordException("the value is not a CBOR map");
    Wire w = new Wire();
    while (p.nextToken() == JsonToken.FIELD_NAME) {
      String name = p.currentName();
      JsonToken t = p.nextToken();
      switch (name) {
        case "v" -> w.v = t == JsonToken.VALUE_NUMBER_INT && p.getNumberType() == JsonParser.NumberType.INT ? p.getIntValue() : fieldError("v", t);
        case "gw" -> w.gw = text(p, t, "gw");
        case "inc" -> w.inc = text(p, t, "inc");
        case "route" -> w.route = text(p, t, "route");
        case "key" -> w.key = text(p, t, "key");
        case "s0" -> w.s0 = integer(p, t, "s0");
        case "t0" -> w.t0 = integer(p, t, "t0");
        case "topics" -> w.topics = texts(p, t, "topics");
        case "caps" -> w.caps = captures(p, t);
        case "shapes" -> w.shapes = shapes(p, t);
        case "ev" -> w.ev = events(p, t, value);
        default -> p.skipChildren();
      }
    }
    return w;
  }

  private static <T> T fieldError(String field, JsonToken t) {
    throw new RecordException("field " + field + ": wrong type (" + t + ")");
  }

  private static String text(JsonParser p, JsonToken t, String field) throws IOException {
    if (t != JsonToken.VALUE_STRING) return fieldError(field, t);
    return p.getText();
  }

  private static long integer(JsonParser p, JsonToken t, String field) throws IOException {
    if (t == JsonToken.VALUE_NUMBER_INT && p.getNumberType() != JsonParser.NumberType.BIG_INTEGER) return p.getLongValue();
    // formats 1 to 3 wrote integers above 2^32 as float64
    if (t == JsonToken.VALUE_NUMBER_FLOAT) {
      double d = p.getDoubleValue();
      if (d == Math.rint(d) && Math.abs(d) < 0x1p53) return (long) d;
    }
    return fieldError(field, t);
  }

  private static List<String> texts(JsonParser p, JsonToken t, String field) throws IOException {
    if (t != JsonToken.START_ARRAY) return fieldError(field, t);
    List<String> out = new ArrayList<>();
    for (JsonToken x = p.nextToken(); x != JsonToken.END_ARRAY; x = p.nextToken()) out.add(text(p, x, field + "[" + out.size() + "]"));
    return out;
  }

  private static Map<String, String> captureMap(JsonParser p, JsonToken t, String field) throws IOException {
    if (t != JsonToken.START_OBJECT) return fieldError(field, t);
    Map<String, String> out = new LinkedHashMap<>();
    while (p.nextToken() == JsonToken.FIELD_NAME) {
      String k = p.currentName();
      out.put(k, text(p, p.nextToken(), field + "." + k));
    }
    return out;
  }

  private static Object captures(JsonParser p, JsonToken t) throws IOException {
    if (t == JsonToken.START_OBJECT) return captureMap(p, t, "caps");
    if (t != JsonToken.START_ARRAY) return fieldError("caps", t);
    List<Map<String, String>> out = new ArrayList<>();
    for (JsonToken x = p.nextToken(); x != JsonToken.END_ARRAY; x = p.nextToken()) out.add(captureMap(p, x, "caps[" + out.size() + "]"));
    return out;
  }

  private static List<List<String>> shapes(JsonParser p, JsonToken t) throws IOException {
    if (t != JsonToken.START_ARRAY) return fieldError("shapes", t);
    List<List<String>> out = new ArrayList<>();
    for (JsonToken x = p.nextToken(); x != JsonToken.END_ARRAY; x = p.nextToken()) {
      String field = "shapes[" + out.size() + "]";
      List<String> keys = texts(p, x, field);
      if (keys.stream().distinct().count() != keys.size()) throw new RecordException("field " + field + ": a key repeats");
      out.add(keys);
    }
    return out;
  }

  private static List<RawEvent> events(CBORParser p, JsonToken t, byte[] value) throws IOException {
    if (t != JsonToken.START_ARRAY) return fieldError("ev", t);
    List<RawEvent> out = new ArrayList<>();
    for (JsonToken x = p.nextToken(); x != JsonToken.END_ARRAY; x = p.nextToken()) {
      String at = "ev[" + out.size() + "]";
      if (x != JsonToken.START_ARRAY) throw new RecordException(at + ": expected a 4-array (5 for an aggregate), got " + x);
      long ds = integer(p, p.nextToken(), at + "[0] (seq - s0)");
      long dt = integer(p, p.nextToken(), at + "[1] (received_at - t0)");
      JsonToken ti = p.nextToken();
      if (ti != JsonToken.VALUE_NUMBER_INT || p.getNumberType() != JsonParser.NumberType.INT) throw new RecordException(at + "[2]: the topic index is not a small integer (" + ti + ")");
      int topic = p.getIntValue();
      JsonToken d = p.nextToken();
      Object data;
      boolean embedded = false;
      if (d == JsonToken.VALUE_EMBEDDED_OBJECT) {
        // a byte string: the raw payload, or with tag 24 an embedded CBOR item (a transformed value)
        embedded = p.getCurrentTag() == 24;
        data = p.getBinaryValue();
      } else if (d == JsonToken.START_ARRAY) {
        // a shaped map: its values are read exactly from the record's bytes
        int start = (int) p.currentTokenLocation().getByteOffset();
        int[] end = new int[1];
        data = CborValues.readAt(value, start, value.length, at + "[3]", end);
        p.skipChildren();
      } else {
        throw new RecordException(at + "[3]: expected a byte string, tag 24 or a shaped array, got " + d);
      }
      Long aggregate = null;
      JsonToken next = p.nextToken();
      if (next != JsonToken.END_ARRAY) {
        aggregate = integer(p, next, at + "[4] (aggregate count)");
        if (p.nextToken() != JsonToken.END_ARRAY) throw new RecordException(at + ": more than 5 items");
      }
      out.add(new RawEvent(ds, dt, topic, data, embedded, aggregate));
    }
    return out;
  }
}
