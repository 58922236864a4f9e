package io.edgehaul.records;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/** The shared corpus (test/vectors): every record decodes to its expected events, every bad one fails. */
class VectorsTest {
  private static final Path DIR = Path.of(System.getProperty("edgehaul.vectors", "../../test/vectors"));
  private static final ObjectMapper JSON = new ObjectMapper().enable(DeserializationFeature.USE_BIG_INTEGER_FOR_INTS);

  private static JsonNode manifest() throws IOException {
    return JSON.readTree(DIR.resolve("manifest.json").toFile());
  }

  private static Map<String, String> headers(JsonNode v) {
    Map<String, String> h = new LinkedHashMap<>();
    v.get("headers").fields().forEachRemaining((e) -> h.put(e.getKey(), e.getValue().asText()));
    return h;
  }

  /** Expected JSON to the values Records gives (docs/record-format.md, "Test vectors"). */
  static Object fromExpected(JsonNode n, boolean asKey) {
    if (n.isNull()) return null;
    if (n.isBoolean()) return n.booleanValue();
    if (n.isIntegralNumber()) return CborValues.normal(n.bigIntegerValue());
    if (n.isFloatingPointNumber()) return n.doubleValue();
    if (n.isTextual()) return n.textValue();
    if (n.isArray()) {
      List<Object> out = new ArrayList<>();
      n.forEach((x) -> out.add(fromExpected(x, false)));
      return out;
    }
    List<String> names = new ArrayList<>();
    n.fieldNames().forEachRemaining(names::add);
    if (names.equals(List.of("$bytes"))) {
      byte[] b = Base64.getDecoder().decode(n.get("$bytes").textValue());
      return asKey ? ByteBuffer.wrap(b).asReadOnlyBuffer() : b;
    }
    if (names.equals(List.of("$float"))) {
      return switch (n.get("$float").textValue()) {
        case "NaN" -> Double.NaN;
        case "Infinity" -> Double.POSITIVE_INFINITY;
        default -> Double.NEGATIVE_INFINITY;
      };
    }
    Map<Object, Object> out = new LinkedHashMap<>();
    if (names.equals(List.of("$map"))) {
      n.get("$map").forEach((kv) -> out.put(fromExpected(kv.get(0), true), fromExpected(kv.get(1), false)));
      return out;
    }
    for (String k : names) out.put(k, fromExpected(n.get(k), false));
    return out;
  }

  /** Equal with types: integers are not floats, -0.0 is not 0.0, NaN equals NaN. */
  static void same(Object got, Object want, String where) {
    if (want == null || got == null) {
      assertEquals(want, got, where);
      return;
    }
    if (want instanceof Double d) {
      assertTrue(got instanceof Double, where + ": a float expected, got " + got.getClass().getSimpleName() + " " + got);
      assertEquals(0, Double.compare((Double) got, d), where + ": " + got + " vs " + d);
    } else if (want instanceof Long || want instanceof BigInteger) {
      assertTrue(got instanceof Long || got instanceof BigInteger, where + ": an integer expected, got " + got.getClass().getSimpleName() + " " + got);
      assertEquals(new BigInteger(want.toString()), new BigInteger(got.toString()), where);
    } else if (want instanceof byte[] b) {
      assertTrue(got instanceof byte[] && Arrays.equals((byte[]) got, b), where + ": bytes differ");
    } else if (want instanceof List<?> l) {
      assertTrue(got instanceof List<?>, where + ": a list expected, got " + got);
      List<?> g = (List<?>) got;
      assertEquals(l.size(), g.size(), where + ": items");
      for (int i = 0; i < l.size(); i++) same(g.get(i), l.get(i), where + "[" + i + "]");
    } else if (want instanceof Map<?, ?> m) {
      assertTrue(got instanceof Map<?, ?>, where + ": a map expected, got " + got);
      Map<?, ?> g = (Map<?, ?>) got;
      assertEquals(new HashSet<>(m.keySet()), new HashSet<>(g.keySet()), where + ": keys");
      for (Object k : m.keySet()) same(g.get(k), m.get(k), where + "." + k);
    } else {
      assertEquals(want, got, where);
    }
  }

  @Test
  void everyFormatVersionIsCovered() throws IOException {
    var versions = new HashSet<Integer>();
    manifest().get("vectors").forEach((v) -> versions.add(v.get("format").intValue()));
    assertEquals(new HashSet<>(Records.READ_VERSIONS), versions);
  }

  @TestFactory
  Stream<DynamicTest> everyVectorDecodesToItsEvents() throws IOException {
    List<DynamicTest> tests = new ArrayList<>();
    for (JsonNode v : manifest().get("vectors")) {
      String name = v.get("name").textValue();
      tests.add(DynamicTest.dynamicTest(name, () -> {
        byte[] value = Files.readAllBytes(DIR.resolve(v.get("value").textValue()));
        List<Map<String, Object>> got = Records.events(value, headers(v));
        List<String> lines = Files.readAllLines(DIR.resolve(v.get("events").textValue()), StandardCharsets.UTF_8);
        assertEquals(lines.size(), got.size(), name + ": events");
        for (int i = 0; i < lines.size(); i++) same(got.get(i), fromExpected(JSON.readTree(lines.get(i)), false), name + "[" + i + "]");
      }));
    }
    return tests.stream();
  }

  @TestFactory
  Stream<DynamicTest> everyBadRecordRaisesOneErrorNamingTheField() throws IOException {
    List<DynamicTest> tests = new ArrayList<>();
    for (JsonNode v : manifest().get("invalid")) {
      tests.add(DynamicTest.dynamicTest(v.get("name").textValue(), () -> {
        byte[] value = Files.readAllBytes(DIR.resolve(v.get("value").textValue()));
        RecordException e = assertThrows(RecordException.class, () -> Records.events(value));
        assertTrue(e.getMessage().contains(v.get("error").textValue()), e.getMessage() + " should name " + v.get("error").textValue());
      }));
    }
    return tests.stream();
  }

  @Test
  void dedupeKeepsOneWatermarkPerKeyAndDropsResends() throws IOException {
    JsonNode shaped = null;
    for (Iterator<JsonNode> it = manifest().get("vectors").elements(); it.hasNext(); ) {
      JsonNode v = it.next();
      if (v.get("name").textValue().equals("v4-shaped")) shaped = v;
    }
    if (shaped == null) fail("no v4-shaped vector");
    byte[] value = Files.readAllBytes(DIR.resolve(shaped.get("value").textValue()));
    Deduper d = new Deduper();
    assertEquals(6, d.fresh(Records.events(value)).size());
    assertEquals(1, d.size());
    assertTrue(d.seenWhole(headers(shaped), shaped.get("key").textValue()));
    assertEquals(0, d.fresh(Records.events(value)).size(), "a re-sent record is dropped");
    List<Map<String, Object>> reborn = new ArrayList<>();
    for (Map<String, Object> e : Records.events(value)) {
      Map<String, Object> c = new LinkedHashMap<>(e);
      c.put("incarnation", "0000000000000001");
      c.put("seq", (Long) e.get("seq") - 6);
      reborn.add(c);
    }
    assertEquals(6, d.fresh(reborn).size(), "a new incarnation starts again");
    assertEquals(1, d.size());
    assertFalse(d.seenWhole(headers(shaped), shaped.get("key").textValue()));
  }
}
