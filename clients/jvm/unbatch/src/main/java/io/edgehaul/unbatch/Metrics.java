package io.edgehaul.unbatch;

import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.Supplier;

/**
 * Counters in the Prometheus text format on /metrics, and /healthz. Under
 * exactly-once a counter counts processing, so after a failure that aborted
 * a transaction it may count a record twice; the output topic does not.
 */
final class Metrics {
  private final Map<String, LongAdder> counters = new ConcurrentHashMap<>();
  private static final Map<String, String> HELP = Map.of(
      "edgehaul_unbatch_records_total", "Input records (batches) processed",
      "edgehaul_unbatch_events_total", "Events written, one output record each",
      "edgehaul_unbatch_duplicates_total", "Re-sent events dropped by the bounded rule",
      "edgehaul_unbatch_errors_total", "Undecodable input records sent to <topic>.unbatch-errors");
  private HttpServer server;

  LongAdder counter(String name, String labels) {
    return counters.computeIfAbsent(name + "{" + labels + "}", k -> new LongAdder());
  }

  String text() {
    StringBuilder sb = new StringBuilder();
    Map<String, Map<String, Long>> byName = new TreeMap<>();
    for (Map.Entry<String, LongAdder> e : counters.entrySet()) {
      String name = e.getKey().substring(0, e.getKey().indexOf('{'));
      byName.computeIfAbsent(name, k -> new TreeMap<>()).put(e.getKey(), e.getValue().sum());
    }
    for (String name : HELP.keySet()) byName.putIfAbsent(name, Map.of());
    for (Map.Entry<String, Map<String, Long>> e : byName.entrySet()) {
      sb.append("# HELP ").append(e.getKey()).append(' ').append(HELP.getOrDefault(e.getKey(), e.getKey())).append('\n');
      sb.append("# TYPE ").append(e.getKey()).append(" counter\n");
      for (Map.Entry<String, Long> s : e.getValue().entrySet()) sb.append(s.getKey()).append(' ').append(s.getValue()).append('\n');
    }
    return sb.toString();
  }

  /** Starts the endpoint; returns the bound port. */
  int serve(String host, int port, Supplier<String> state) throws IOException {
    server = HttpServer.create(new InetSocketAddress(host, port), 0);
    server.createContext("/metrics", ex -> {
      byte[] body = text().getBytes(StandardCharsets.UTF_8);
      ex.getResponseHeaders().set("content-type", "text/plain; version=0.0.4");
      ex.sendResponseHeaders(200, body.length);
      try (OutputStream os = ex.getResponseBody()) {
        os.write(body);
      }
    });
    server.createContext("/healthz", ex -> {
      String s = state.get();
      byte[] body = ("{\"state\":\"" + s + "\"}").getBytes(StandardCharsets.UTF_8);
      ex.getResponseHeaders().set("content-type", "application/json");
      ex.sendResponseHeaders("RUNNING".equals(s) || "REBALANCING".equals(s) ? 200 : 503, body.length);
      try (OutputStream os = ex.getResponseBody()) {
        os.write(body);
      }
    });
    server.start();
    return server.getAddress().getPort();
  }

  void stop() {
    if (server != null) server.stop(0);
  }
}
