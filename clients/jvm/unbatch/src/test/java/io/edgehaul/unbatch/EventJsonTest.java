package io.edgehaul.unbatch;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class EventJsonTest {
  private static Map<String, Object> event() {
    Map<String, Object> e = new LinkedHashMap<>();
    e.put("gateway", "gw-1");
    e.put("incarnation", "9f2c4e1a7b3d5e60");
    e.put("route", "telemetry");
    e.put("key", "dev-7");
    e.put("seq", 1042L);
    e.put("received_at", 1795430000123L);
    e.put("topic", "site/s1/dev-7/telemetry");
    e.put("captures", Map.of("device", "dev-7"));
    return e;
  }

  private static String json(Map<String, Object> e) {
    return new String(new EventJson().write(e), StandardCharsets.UTF_8);
  }

  @Test
  void rawUtf8PayloadIsText() {
    Map<String, Object> e = event();
    e.put("payload", "{\"t\":21.5}".getBytes(StandardCharsets.UTF_8));
    assertEquals("{\"gateway\":\"gw-1\",\"incarnation\":\"9f2c4e1a7b3d5e60\",\"route\":\"telemetry\",\"key\":\"dev-7\",\"seq\":1042,"
        + "\"received_at\":1795430000123,\"topic\":\"site/s1/dev-7/telemetry\",\"captures\":{\"device\":\"dev-7\"},"
        + "\"value\":\"{\\\"t\\\":21.5}\",\"encoding\":\"text\"}", json(e));
  }

  @Test
  void anAggregateSaysHowManyEventsItStandsFor() {
    Map<String, Object> e = event();
    e.put("aggregate", 12L);
    Map<String, Object> v = new LinkedHashMap<>();
    v.put("count", 12L);
    e.put("value", v);
    String j = json(e);
    assertEquals(true, j.endsWith("\"captures\":{\"device\":\"dev-7\"},\"aggregate\":12,\"value\":{\"count\":12},\"encoding\":\"json\"}"), j);
  }

  @Test
  void rawBinaryPayloadIsBase64() {
    Map<String, Object> e = event();
    e.put("payload", new byte[] {(byte) 0xff, 0x00, 0x41});
    String j = json(e);
    assertEquals(true, j.endsWith("\"value\":\"/wBB\",\"encoding\":\"base64\"}"), j);
  }

  @Test
  void transformedValuesKeepTheirTypes() {
    Map<String, Object> e = event();
    Map<Object, Object> odd = new LinkedHashMap<>();
    odd.put(1L, "one");
    Map<String, Object> v = new LinkedHashMap<>();
    v.put("i", Long.MAX_VALUE);
    v.put("big", new BigInteger("123456789012345678901234567890"));
    v.put("f", 3.0);
    v.put("nan", Double.NaN);
    v.put("bytes", new byte[] {1, 2});
    v.put("odd", odd);
    v.put("list", List.of(true, "x"));
    e.put("value", v);
    e.put("incarnation", null);
    String j = json(e);
    assertEquals(true, j.contains("\"incarnation\":null"), j);
    assertEquals(true, j.endsWith("\"value\":{\"i\":9223372036854775807,\"big\":123456789012345678901234567890,\"f\":3.0,\"nan\":\"NaN\","
        + "\"bytes\":\"AQI=\",\"odd\":[[1,\"one\"]],\"list\":[true,\"x\"]},\"encoding\":\"json\"}"), j);
  }

  @Test
  void watermarkRoundTrips() {
    UnbatchProcessor.Mark m = new UnbatchProcessor.Mark("9f2c4e1a7b3d5e60", 77L);
    assertEquals(m, UnbatchProcessor.Mark.read(m.bytes()));
    assertEquals(new UnbatchProcessor.Mark("", 1L), UnbatchProcessor.Mark.read(new UnbatchProcessor.Mark("", 1L).bytes()));
    assertNull(UnbatchProcessor.Mark.read(null));
  }

  @Test
  void settingsNeedTopicsAndBrokers() {
    assertThrows(IllegalArgumentException.class, () -> Settings.load(null, Map.of("EDGEHAUL_UNBATCH_BROKERS", "b:9092")));
    assertThrows(IllegalArgumentException.class, () -> Settings.load(null, Map.of("EDGEHAUL_UNBATCH_TOPICS", "t")));
    assertThrows(IllegalArgumentException.class, () -> Settings.load(null, Map.of("EDGEHAUL_UNBATCH_BROKERS", "b:9092", "EDGEHAUL_UNBATCH_TOPICS", "a,b", "EDGEHAUL_UNBATCH_OUTPUT_TOPIC", "all")));
  }

  @Test
  void settingsFromTheEnvironment() throws Exception {
    Settings s = Settings.load(null, Map.of("EDGEHAUL_UNBATCH_BROKERS", "b:9092", "EDGEHAUL_UNBATCH_TOPICS", "plant.telemetry, edgehaul.health",
        "EDGEHAUL_UNBATCH_KAFKA_NUM_STREAM_THREADS", "3", "EDGEHAUL_UNBATCH_SASL_MECHANISM", "scram-sha-512",
        "EDGEHAUL_UNBATCH_SASL_USERNAME", "u", "EDGEHAUL_UNBATCH_SASL_PASSWORD", "p\"w"));
    assertEquals(List.of("plant.telemetry", "edgehaul.health"), s.topics);
    assertEquals("plant.telemetry.events", s.outputTopic("plant.telemetry"));
    assertEquals("plant.telemetry.unbatch-errors", Settings.errorsTopic("plant.telemetry"));
    assertEquals("3", s.streams.getProperty("num.stream.threads"));
    assertEquals("exactly_once_v2", s.streams.getProperty("processing.guarantee"));
    assertEquals("SCRAM-SHA-512", s.streams.getProperty("sasl.mechanism"));
    assertEquals("SASL_PLAINTEXT", s.streams.getProperty("security.protocol"));
    assertEquals("org.apache.kafka.common.security.scram.ScramLoginModule required username=\"u\" password=\"p\\\"w\";", s.streams.getProperty("sasl.jaas.config"));
    assertEquals(false, s.describe().contains("p\\\"w"));
  }
}
