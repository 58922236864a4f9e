package io.edgehaul.unbatch;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.state.Stores;

/** edgehaul-unbatch [--config FILE]: see docs/upstream.md. */
public final class Main {
  private Main() {}

  public static void main(String[] args) throws Exception {
    // Kafka's own logging is chatty at info; ours goes to stdout as JSON lines
    System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", System.getProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn"));
    if (args.length > 0 && args[0].equals("dump")) {
      System.exit(Dump.run(java.util.Arrays.copyOfRange(args, 1, args.length), System.out));
    }
    Path config = null;
    for (int i = 0; i < args.length; i++) {
      if ((args[i].equals("--config") || args[i].equals("-c")) && i + 1 < args.length) config = Path.of(args[++i]);
      else if (args[i].equals("--help") || args[i].equals("-h")) {
        System.out.println("usage: edgehaul-unbatch [--config FILE]   (settings: docs/upstream.md; env EDGEHAUL_UNBATCH_*)\n       edgehaul-unbatch dump --brokers HOST:PORT --topic TOPIC");
        return;
      } else {
        System.err.println("edgehaul-unbatch: unknown argument " + args[i]);
        System.exit(2);
      }
    }
    Settings settings;
    try {
      settings = Settings.load(config, System.getenv());
    } catch (IllegalArgumentException e) {
      Log.error("bad configuration", "reason", e.getMessage());
      System.exit(2);
      return;
    }
    Log.info("edgehaul-unbatch starting", "settings", settings.describe());

    Map<String, Integer> partitions = prepareTopics(settings);
    Metrics metrics = new Metrics();
    Topology topology = topology(settings, metrics);
    KafkaStreams streams = new KafkaStreams(topology, settings.streams);
    streams.setUncaughtExceptionHandler(e -> {
      Log.error("stream thread failed; replacing it", "reason", String.valueOf(e));
      return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.REPLACE_THREAD;
    });
    CountDownLatch stopped = new CountDownLatch(1);
    streams.setStateListener((now, before) -> {
      Log.info("state", "from", before.name(), "to", now.name());
      if (now == KafkaStreams.State.RUNNING) Log.info("unbatch running", "partitions", partitions.toString());
      if (now == KafkaStreams.State.NOT_RUNNING || now == KafkaStreams.State.ERROR) stopped.countDown();
    });
    if (settings.metricsPort >= 0) {
      int port = metrics.serve(settings.metricsHost, settings.metricsPort, () -> streams.state().name());
      Log.info("http listening", "http", settings.metricsHost + ":" + port);
    }
    Runnable close = () -> {
      Log.info("stopping");
      boolean done = streams.close(Duration.ofSeconds(30));
      metrics.stop();
      Log.info("stopped", "clean", done ? 1 : 0);
    };
    // SIGTERM/SIGINT: a clean stop is exit code 0, as systemd and the daemon expect (the JVM's default would be 143)
    for (String name : new String[] {"TERM", "INT"}) {
      sun.misc.Signal.handle(new sun.misc.Signal(name), sig -> new Thread(() -> {
        close.run();
        Runtime.getRuntime().halt(0);
      }, "edgehaul-unbatch-stop").start());
    }
    Runtime.getRuntime().addShutdownHook(new Thread(close, "edgehaul-unbatch-shutdown"));
    streams.start();
    stopped.await();
    if (streams.state() == KafkaStreams.State.ERROR) {
      Log.error("Kafka Streams stopped in state ERROR");
      System.exit(1);
    }
  }

  /** source -> processor (+ its watermark store) -> the four sinks, once per input topic: each input is its own sub-topology. */
  static Topology topology(Settings s, Metrics metrics) {
    Topology t = new Topology();
    for (String topic : s.topics) {
      String source = "source:" + topic;
      String proc = "unbatch:" + topic;
      String store = "watermarks-" + topic;
      t.addSource(source, new ByteArrayDeserializer(), new ByteArrayDeserializer(), topic);
      t.addProcessor(proc, () -> new UnbatchProcessor(topic, store, metrics), source);
      // in memory, changelogged: the state is one small entry per (gateway, route, key), restored from the changelog on a move
      // cached: a key's watermark reaches the changelog once per commit, not once per record
      t.addStateStore(Stores.keyValueStoreBuilder(Stores.inMemoryKeyValueStore(store), Serdes.String(), Serdes.ByteArray()).withCachingEnabled(), proc);
      t.addSink(UnbatchProcessor.EVENTS + ":" + topic, s.outputTopic(topic), new ByteArraySerializer(), new ByteArraySerializer(), proc);
      t.addSink(UnbatchProcessor.DEAD_LETTERS + ":" + topic, s.deadLettersTopic, new ByteArraySerializer(), new ByteArraySerializer(), proc);
      t.addSink(UnbatchProcessor.HEALTH + ":" + topic, s.healthTopic, new ByteArraySerializer(), new ByteArraySerializer(), proc);
      t.addSink(UnbatchProcessor.ERRORS + ":" + topic, Settings.errorsTopic(topic), new ByteArraySerializer(), new ByteArraySerializer(), proc);
    }
    return t;
  }

  /**
   * Waits for the input topics, then creates the output topics that are
   * missing with the partition count of their input (so keys spread the same
   * way downstream). Returns the inputs' partition counts.
   */
  static Map<String, Integer> prepareTopics(Settings s) throws InterruptedException {
    Properties p = new Properties();
    for (String k : s.streams.stringPropertyNames()) {
      if (AdminClientConfig.configNames().contains(k)) p.setProperty(k, s.streams.getProperty(k));
    }
    Map<String, Integer> counts = new HashMap<>();
    try (Admin admin = Admin.create(p)) {
      long waitingSince = System.currentTimeMillis();
      boolean said = false;
      for (;;) {
        try {
          Map<String, TopicDescription> d = admin.describeTopics(s.topics).allTopicNames().get();
          d.forEach((name, desc) -> counts.put(name, desc.partitions().size()));
          break;
        } catch (ExecutionException e) {
          if (!(e.getCause() instanceof UnknownTopicOrPartitionException)) throw new IllegalStateException("cannot describe " + s.topics + ": " + e.getCause(), e.getCause());
          if (!said && System.currentTimeMillis() - waitingSince > 5000) {
            Log.warn("waiting for the input topics to exist", "topics", s.topics.toString());
            said = true;
          }
          Thread.sleep(500);
        }
      }
      int most = counts.values().stream().mapToInt(Integer::intValue).max().orElse(1);
      Map<String, Integer> wanted = new HashMap<>();
      for (String topic : s.topics) {
        wanted.put(s.outputTopic(topic), counts.get(topic));
        wanted.put(Settings.errorsTopic(topic), counts.get(topic));
      }
      wanted.putIfAbsent(s.deadLettersTopic, most);
      wanted.putIfAbsent(s.healthTopic, most);
      Set<String> existing;
      try {
        existing = admin.listTopics().names().get();
      } catch (ExecutionException e) {
        throw new IllegalStateException("cannot list topics: " + e.getCause(), e.getCause());
      }
      List<NewTopic> create = new ArrayList<>();
      for (Map.Entry<String, Integer> w : wanted.entrySet()) {
        if (!existing.contains(w.getKey())) create.add(new NewTopic(w.getKey(), Optional.of(w.getValue()), s.replicationFactor < 0 ? Optional.empty() : Optional.of(s.replicationFactor)));
      }
      if (!create.isEmpty()) {
        try {
          admin.createTopics(create).all().get();
          Log.info("created output topics", "topics", create.stream().map(NewTopic::name).sorted().toList().toString());
        } catch (ExecutionException e) {
          if (!(e.getCause() instanceof TopicExistsException)) throw new IllegalStateException("cannot create output topics: " + e.getCause(), e.getCause());
        }
      }
    }
    return counts;
  }
}
