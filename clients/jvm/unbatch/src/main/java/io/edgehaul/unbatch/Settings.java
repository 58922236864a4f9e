package io.edgehaul.unbatch;

import java.io.IOException;
import java.io.Reader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.streams.StreamsConfig;

/**
 * The application's settings: a Java properties file, then environment
 * variables over it. Keys under {@code unbatch.} are ours; every other key is
 * a Kafka Streams / client property and is passed through as it is
 * (security.protocol, ssl.*, sasl.*, num.stream.threads, ...).
 */
public final class Settings {
  public static final String ENV_PREFIX = "EDGEHAUL_UNBATCH_";
  /** Environment variables that name our own settings; any other EDGEHAUL_UNBATCH_KAFKA_X_Y sets the Kafka property x.y. */
  private static final Map<String, String> ENV_KEYS = Map.ofEntries(
      Map.entry("BROKERS", StreamsConfig.BOOTSTRAP_SERVERS_CONFIG),
      Map.entry("APPLICATION_ID", StreamsConfig.APPLICATION_ID_CONFIG),
      Map.entry("STATE_DIR", StreamsConfig.STATE_DIR_CONFIG),
      Map.entry("TOPICS", "unbatch.topics"),
      Map.entry("OUTPUT_TOPIC", "unbatch.output.topic"),
      Map.entry("DEAD_LETTERS_TOPIC", "unbatch.output.dead_letters_topic"),
      Map.entry("HEALTH_TOPIC", "unbatch.output.health_topic"),
      Map.entry("REPLICATION_FACTOR", "unbatch.output.replication_factor"),
      Map.entry("METRICS_PORT", "unbatch.metrics.port"),
      Map.entry("METRICS_HOST", "unbatch.metrics.host"),
      Map.entry("SASL_MECHANISM", "unbatch.sasl.mechanism"),
      Map.entry("SASL_USERNAME", "unbatch.sasl.username"),
      Map.entry("SASL_PASSWORD", "unbatch.sasl.password"),
      Map.entry("TLS_CA", "unbatch.tls.ca"));

  public final List<String> topics;
  /** Output topic of an input's events; {topic} is the input topic's name. */
  public final String outputTemplate;
  public final String deadLettersTopic;
  public final String healthTopic;
  public final short replicationFactor;
  public final int metricsPort;
  public final String metricsHost;
  /** What Kafka Streams gets. */
  public final Properties streams;

  private Settings(Properties all) {
    String topicList = all.getProperty("unbatch.topics", "").trim();
    topics = new ArrayList<>();
    for (String t : topicList.split(",")) if (!t.isBlank()) topics.add(t.trim());
    if (topics.isEmpty()) throw new IllegalArgumentException("unbatch.topics (or " + ENV_PREFIX + "TOPICS) names no topic: give the edgehaul topics to read, comma-separated");
    outputTemplate = all.getProperty("unbatch.output.topic", "{topic}.events");
    if (!outputTemplate.contains("{topic}") && topics.size() > 1) {
      throw new IllegalArgumentException("unbatch.output.topic must contain {topic} when several topics are read: one output topic per input");
    }
    deadLettersTopic = all.getProperty("unbatch.output.dead_letters_topic", "edgehaul.deadletters.events");
    healthTopic = all.getProperty("unbatch.output.health_topic", "edgehaul.health.events");
    replicationFactor = Short.parseShort(all.getProperty("unbatch.output.replication_factor", "-1"));
    metricsPort = Integer.parseInt(all.getProperty("unbatch.metrics.port", "-1"));
    metricsHost = all.getProperty("unbatch.metrics.host", "127.0.0.1");

    streams = new Properties();
    for (String k : all.stringPropertyNames()) if (!k.startsWith("unbatch.")) streams.setProperty(k, all.getProperty(k));
    streams.putIfAbsent(StreamsConfig.APPLICATION_ID_CONFIG, "edgehaul-unbatch");
    if (!streams.containsKey(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG)) {
      throw new IllegalArgumentException("bootstrap.servers (or " + ENV_PREFIX + "BROKERS) is not set");
    }
    // the contract of this application, not a default to tune
    streams.setProperty(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    // throughput defaults (one record in, many small records out); the file may override them
    streams.putIfAbsent(StreamsConfig.producerPrefix("batch.size"), "262144");
    streams.putIfAbsent(StreamsConfig.producerPrefix("compression.type"), "lz4");
    streams.putIfAbsent(StreamsConfig.producerPrefix("linger.ms"), "20");
    // one stream thread per core: each takes whole partitions, so they share nothing
    streams.putIfAbsent(StreamsConfig.NUM_STREAM_THREADS_CONFIG, String.valueOf(Runtime.getRuntime().availableProcessors()));
    // one transaction per second instead of exactly_once_v2's 100 ms: output becomes visible to
    // read_committed consumers up to a second later, and a transaction costs the same at any size
    streams.putIfAbsent(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, "1000");
    // the application has no global state; this only keeps Kafka Streams 4's warning about it quiet
    streams.putIfAbsent("processing.exception.handler.global.enabled", "true");

    String mechanism = all.getProperty("unbatch.sasl.mechanism");
    if (mechanism != null && !mechanism.isBlank()) {
      String user = all.getProperty("unbatch.sasl.username", "");
      String password = all.getProperty("unbatch.sasl.password", "");
      String module = mechanism.toUpperCase(Locale.ROOT).startsWith("SCRAM")
          ? "org.apache.kafka.common.security.scram.ScramLoginModule"
          : "org.apache.kafka.common.security.plain.PlainLoginModule";
      streams.setProperty("sasl.mechanism", mechanism.toUpperCase(Locale.ROOT));
      streams.setProperty("sasl.jaas.config", module + " required username=\"" + jaasQuote(user) + "\" password=\"" + jaasQuote(password) + "\";");
      streams.putIfAbsent("security.protocol", all.getProperty("unbatch.tls.ca") != null ? "SASL_SSL" : "SASL_PLAINTEXT");
    }
    String ca = all.getProperty("unbatch.tls.ca");
    if (ca != null && !ca.isBlank()) {
      streams.setProperty("ssl.truststore.type", "PEM");
      streams.setProperty("ssl.truststore.location", ca);
      streams.putIfAbsent("security.protocol", "SSL");
    }
  }

  private static String jaasQuote(String s) {
    return s.replace("\\", "\\\\").replace("\"", "\\\"");
  }

  public String outputTopic(String input) {
    return outputTemplate.replace("{topic}", input);
  }

  public static String errorsTopic(String input) {
    return input + ".unbatch-errors";
  }

  /** The file (may be null), then the environment. */
  public static Settings load(Path file, Map<String, String> env) throws IOException {
    Properties all = new Properties();
    if (file != null) {
      try (Reader r = Files.newBufferedReader(file)) {
        all.load(r);
      }
    }
    for (Map.Entry<String, String> e : env.entrySet()) {
      if (!e.getKey().startsWith(ENV_PREFIX)) continue;
      String name = e.getKey().substring(ENV_PREFIX.length());
      String key = ENV_KEYS.get(name);
      if (key == null && name.startsWith("KAFKA_")) key = name.substring("KAFKA_".length()).toLowerCase(Locale.ROOT).replace('_', '.');
      if (key != null) all.setProperty(key, e.getValue());
    }
    return new Settings(all);
  }

  /** The settings without secrets, for the start-up log line. */
  public String describe() {
    return "topics=" + topics + " output=" + outputTemplate + " dead_letters=" + deadLettersTopic + " health=" + healthTopic
        + " brokers=" + streams.getProperty(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG) + " application.id=" + streams.getProperty(StreamsConfig.APPLICATION_ID_CONFIG);
  }
}
