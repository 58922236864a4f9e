package io.edgehaul.unbatch;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import io.edgehaul.records.Tagged;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.List;
import java.util.Map;

/**
 * One decoded event as the JSON value of its output record:
 * {gateway, incarnation, route, key, seq, received_at, topic, captures, aggregate?, value, encoding}
 * (aggregate: format 5, the number of events an aggregate stands for).
 * encoding says what value holds: "json" (a transformed value), "text" (a raw
 * payload that is valid UTF-8) or "base64" (any other raw payload).
 */
final class EventJson {
  private static final JsonFactory JSON = new JsonFactory();
  private final ByteArrayOutputStream buf = new ByteArrayOutputStream(512);
  private final CharsetDecoder utf8 = StandardCharsets.UTF_8.newDecoder()
      .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT);

  @SuppressWarnings("unchecked")
  byte[] write(Map<String, Object> e) {
    buf.reset();
    try (JsonGenerator g = JSON.createGenerator(buf)) {
      g.writeStartObject();
      g.writeStringField("gateway", (String) e.get("gateway"));
      g.writeFieldName("incarnation");
      if (e.get("incarnation") == null) g.writeNull();
      else g.writeString((String) e.get("incarnation"));
      g.writeStringField("route", (String) e.get("route"));
      g.writeStringField("key", (String) e.get("key"));
      g.writeNumberField("seq", (Long) e.get("seq"));
      g.writeNumberField("received_at", (Long) e.get("received_at"));
      g.writeStringField("topic", (String) e.get("topic"));
      g.writeObjectFieldStart("captures");
      for (Map.Entry<String, String> c : ((Map<String, String>) e.get("captures")).entrySet()) g.writeStringField(c.getKey(), c.getValue());
      g.writeEndObject();
      if (e.get("aggregate") != null) g.writeNumberField("aggregate", (Long) e.get("aggregate"));
      if (e.containsKey("value")) {
        g.writeFieldName("value");
        value(g, e.get("value"));
        g.writeStringField("encoding", "json");
      } else {
        byte[] payload = (byte[]) e.get("payload");
        String text = utf8OrNull(payload);
        if (text != null) {
          g.writeStringField("value", text);
          g.writeStringField("encoding", "text");
        } else {
          g.writeStringField("value", Base64.getEncoder().encodeToString(payload));
          g.writeStringField("encoding", "base64");
        }
      }
      g.writeEndObject();
    } catch (IOException ex) {
      throw new UncheckedIOException(ex);
    }
    return buf.toByteArray();
  }

  private String utf8OrNull(byte[] bytes) {
    try {
      CharBuffer c = utf8.reset().decode(ByteBuffer.wrap(bytes));
      return c.toString();
    } catch (CharacterCodingException ex) {
      return null;
    }
  }

  /** Values as `edgehaul decode` prints them: byte strings base64, NaN/Infinity as text, maps with keys other than text as [key, value] pairs. */
  private static void value(JsonGenerator g, Object v) throws IOException {
    if (v == null) g.writeNull();
    else if (v instanceof String s) g.writeString(s);
    else if (v instanceof Long l) g.writeNumber(l);
    else if (v instanceof Integer i) g.writeNumber(i);
    else if (v instanceof BigInteger b) g.writeNumber(b);
    else if (v instanceof Double d) {
      if (d.isNaN() || d.isInfinite()) g.writeString(d.toString());
      else g.writeNumber(d);
    } else if (v instanceof Float f) {
      if (f.isNaN() || f.isInfinite()) g.writeString(f.toString());
      else g.writeNumber(f);
    } else if (v instanceof Boolean b) g.writeBoolean(b);
    else if (v instanceof byte[] bytes) g.writeString(Base64.getEncoder().encodeToString(bytes));
    else if (v instanceof ByteBuffer bb) {
      byte[] bytes = new byte[bb.remaining()];
      bb.duplicate().get(bytes);
      g.writeString(Base64.getEncoder().encodeToString(bytes));
    } else if (v instanceof List<?> list) {
      g.writeStartArray();
      for (Object o : list) value(g, o);
      g.writeEndArray();
    } else if (v instanceof Map<?, ?> map) {
      boolean textKeys = map.keySet().stream().allMatch(k -> k instanceof String);
      if (textKeys) {
        g.writeStartObject();
        for (Map.Entry<?, ?> me : map.entrySet()) {
          g.writeFieldName((String) me.getKey());
          value(g, me.getValue());
        }
        g.writeEndObject();
      } else {
        g.writeStartArray();
        for (Map.Entry<?, ?> me : map.entrySet()) {
          g.writeStartArray();
          value(g, me.getKey());
          value(g, me.getValue());
          g.writeEndArray();
        }
        g.writeEndArray();
      }
    } else if (v instanceof Tagged t) {
      g.writeStartObject();
      g.writeNumberField("tag", t.tag());
      g.writeFieldName("value");
      value(g, t.value());
      g.writeEndObject();
    } else g.writeString(String.valueOf(v)); // simple values (undefined, others) as their names
  }
}
