package io.edgehaul.unbatch;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import java.io.IOException;
import java.io.PrintStream;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * edgehaul-unbatch dump --brokers B --topic T: every committed record of a
 * topic as it stands now (a read_committed consumer up to each partition's
 * last stable offset), one JSON line each: {partition, offset, key, headers,
 * value}; value is the record's text, or value_base64 when it is not UTF-8.
 * For tests and for looking at an output topic by hand.
 */
final class Dump {
  private Dump() {}

  static int run(String[] args, PrintStream out) throws IOException {
    String brokers = System.getenv().getOrDefault(Settings.ENV_PREFIX + "BROKERS", null);
    String topic = null;
    long timeoutMs = 60_000;
    boolean waitStable = false;
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--brokers" -> brokers = args[++i];
        case "--topic" -> topic = args[++i];
        case "--timeout-ms" -> timeoutMs = Long.parseLong(args[++i]);
        case "--wait-stable" -> waitStable = true;
        default -> {
          System.err.println("usage: edgehaul-unbatch dump --brokers HOST:PORT --topic TOPIC [--timeout-ms N] [--wait-stable]");
          return 2;
        }
      }
    }
    if (brokers == null || topic == null) {
      System.err.println("usage: edgehaul-unbatch dump --brokers HOST:PORT --topic TOPIC [--timeout-ms N] [--wait-stable]");
      return 2;
    }
    Properties p = new Properties();
    p.setProperty(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
    p.setProperty(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    p.setProperty(ConsumerConfig.GROUP_ID_CONFIG, "edgehaul-dump-" + UUID.randomUUID());
    p.setProperty(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    JsonFactory json = new JsonFactory();
    try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
      List<TopicPartition> parts = new ArrayList<>();
      for (PartitionInfo pi : c.partitionsFor(topic, Duration.ofMillis(timeoutMs))) parts.add(new TopicPartition(topic, pi.partition()));
      if (waitStable && !waitStable(brokers, parts, c, timeoutMs)) return 1;
      c.assign(parts);
      c.seekToBeginning(parts);
      // read_committed: the end offsets are the last stable offsets
      Map<TopicPartition, Long> end = new HashMap<>(c.endOffsets(parts, Duration.ofMillis(timeoutMs)));
      long deadline = System.currentTimeMillis() + timeoutMs;
      while (!end.isEmpty()) {
        if (System.currentTimeMillis() > deadline) {
          System.err.println("dump: timed out before the end of " + end.keySet());
          return 1;
        }
        for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) out.println(line(json, r));
        end.entrySet().removeIf(e -> c.position(e.getKey()) >= e.getValue());
      }
    }
    out.flush();
    return 0;
  }

  /**
   * Waits until no transaction is open on the partitions: each one's last
   * stable offset (the read_committed end) equals its high watermark. A
   * producer killed mid-transaction (an unbatch instance SIGKILLed) leaves its
   * transaction open until the broker aborts it (transaction.timeout.ms, then
   * the broker's check, every 10 s by default): until then read_committed
   * readers stop at its first record, even before later committed records.
   */
  private static boolean waitStable(String brokers, List<TopicPartition> parts, KafkaConsumer<byte[], byte[]> committed, long timeoutMs) {
    Properties p = new Properties();
    p.setProperty(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
    p.setProperty(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_uncommitted");
    long start = System.currentTimeMillis();
    try (KafkaConsumer<byte[], byte[]> all = new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
      for (;;) {
        Map<TopicPartition, Long> stable = committed.endOffsets(parts, Duration.ofMillis(timeoutMs));
        Map<TopicPartition, Long> high = all.endOffsets(parts, Duration.ofMillis(timeoutMs));
        if (stable.equals(high)) {
          System.err.println("dump: no open transaction after " + (System.currentTimeMillis() - start) + " ms");
          return true;
        }
        if (System.currentTimeMillis() - start > timeoutMs) {
          System.err.println("dump: transactions still open after " + timeoutMs + " ms: last stable " + stable + ", high " + high);
          return false;
        }
        try {
          Thread.sleep(200);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          return false;
        }
      }
    }
  }

  private static String line(JsonFactory json, ConsumerRecord<byte[], byte[]> r) throws IOException {
    StringWriter w = new StringWriter();
    try (JsonGenerator g = json.createGenerator(w)) {
      g.writeStartObject();
      g.writeNumberField("partition", r.partition());
      g.writeNumberField("offset", r.offset());
      g.writeStringField("key", r.key() == null ? null : new String(r.key(), StandardCharsets.UTF_8));
      g.writeObjectFieldStart("headers");
      for (Header h : r.headers()) g.writeStringField(h.key(), h.value() == null ? null : new String(h.value(), StandardCharsets.UTF_8));
      g.writeEndObject();
      if (r.value() == null) g.writeNullField("value");
      else {
        String text = new String(r.value(), StandardCharsets.UTF_8);
        if (java.util.Arrays.equals(text.getBytes(StandardCharsets.UTF_8), r.value())) g.writeStringField("value", text);
        else g.writeStringField("value_base64", Base64.getEncoder().encodeToString(r.value()));
      }
      g.writeEndObject();
    }
    return w.toString();
  }
}
