package io.edgehaul.unbatch;

import io.edgehaul.records.Records;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.LongAdder;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.Headers;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * One input topic's records: skip or decode each batch, drop re-sent events
 * with the bounded rule (docs/record-format.md, "Identity and duplicates"),
 * forward one JSON record per fresh event. The watermarks live in a
 * changelogged store, written in the same transaction as the output
 * (exactly_once_v2), so an instance that dies hands them on intact.
 */
final class UnbatchProcessor implements Processor<byte[], byte[], byte[], byte[]> {
  static final String EVENTS = "events";
  static final String DEAD_LETTERS = "dead-letters";
  static final String HEALTH = "health";
  static final String ERRORS = "errors";
  static final String DEAD_LETTERS_ROUTE = "$dead_letters";
  static final String HEALTH_ROUTE = "edgehaul.health";
  /** The error code of an undecodable record, the daemon's own for the same failure. */
  static final String DECODE_ERROR = "EH_ERR_DECODE_FORMAT";

  private final String storeName;
  private final String topic;
  private final LongAdder records;
  private final LongAdder events;
  private final LongAdder duplicates;
  private final LongAdder errors;
  private final EventJson json = new EventJson();
  private ProcessorContext<byte[], byte[]> context;
  private KeyValueStore<String, byte[]> marks;

  UnbatchProcessor(String topic, String storeName, Metrics metrics) {
    this.topic = topic;
    this.storeName = storeName;
    String label = "topic=\"" + topic + "\"";
    records = metrics.counter("edgehaul_unbatch_records_total", label);
    events = metrics.counter("edgehaul_unbatch_events_total", label);
    duplicates = metrics.counter("edgehaul_unbatch_duplicates_total", label);
    errors = metrics.counter("edgehaul_unbatch_errors_total", label + ",code=\"" + DECODE_ERROR + "\"");
  }

  @Override
  public void init(ProcessorContext<byte[], byte[]> context) {
    this.context = context;
    this.marks = context.getStateStore(storeName);
  }

  @Override
  public void process(Record<byte[], byte[]> in) {
    records.increment();
    String key = in.key() == null ? "" : new String(in.key(), StandardCharsets.UTF_8);
    Map<String, String> headers = new HashMap<>();
    for (Header h : in.headers()) headers.put(h.key(), h.value() == null ? "" : new String(h.value(), StandardCharsets.UTF_8));

    // a whole re-sent record is skipped from its headers, undecoded
    String gateway = headers.get("edgehaul-gateway");
    String route = headers.get("edgehaul-route");
    String last = headers.get("edgehaul-seq-last");
    if (gateway != null && route != null && last != null && headers.containsKey("edgehaul-incarnation")) {
      Mark m = Mark.read(marks.get(markKey(gateway, route, key)));
      try {
        if (m != null && m.incarnation.equals(headers.get("edgehaul-incarnation")) && Long.parseLong(last) <= m.seq) {
          duplicates.add(parseOr(headers.get("edgehaul-events"), 1));
          return;
        }
      } catch (NumberFormatException e) {
        // not skippable from its headers: decoding says what is wrong
      }
    }

    List<Map<String, Object>> decoded;
    try {
      if (in.value() == null) throw new IllegalArgumentException("the record has no value (a tombstone)");
      decoded = Records.events(in.value(), headers);
    } catch (RuntimeException e) {
      toErrors(in, e);
      return;
    }
    if (decoded.isEmpty()) return;

    // one record holds one (gateway, route, key): one watermark to read and write.
    // Every output is built before the first is forwarded: a record that fails half-way
    // goes to the errors topic whole, and never half of it to the output.
    List<Record<byte[], byte[]>> outs = new ArrayList<>(decoded.size());
    List<String> children = new ArrayList<>(decoded.size());
    Mark m;
    String mk;
    boolean moved = false;
    try {
      Map<String, Object> first = decoded.get(0);
      mk = markKey((String) first.get("gateway"), (String) first.get("route"), (String) first.get("key"));
      m = Mark.read(marks.get(mk));
      for (Map<String, Object> e : decoded) {
        String inc = e.get("incarnation") == null ? "" : (String) e.get("incarnation");
        long seq = (Long) e.get("seq");
        if (m != null && m.incarnation.equals(inc) && seq <= m.seq) {
          duplicates.increment();
          continue;
        }
        m = new Mark(inc, seq);
        moved = true;
        String eventRoute = (String) e.get("route");
        Headers out = new RecordHeaders();
        out.add("edgehaul-gateway", ((String) e.get("gateway")).getBytes(StandardCharsets.UTF_8));
        out.add("edgehaul-incarnation", inc.getBytes(StandardCharsets.UTF_8));
        out.add("edgehaul-route", eventRoute.getBytes(StandardCharsets.UTF_8));
        out.add("edgehaul-seq", Long.toString(seq).getBytes(StandardCharsets.UTF_8));
        byte[] outKey = ((String) e.get("key")).getBytes(StandardCharsets.UTF_8);
        outs.add(new Record<>(outKey, json.write(e), in.timestamp(), out));
        children.add((DEAD_LETTERS_ROUTE.equals(eventRoute) ? DEAD_LETTERS : HEALTH_ROUTE.equals(eventRoute) ? HEALTH : EVENTS) + ":" + topic);
      }
    } catch (RuntimeException e) {
      toErrors(in, e);
      return;
    }
    for (int i = 0; i < outs.size(); i++) context.forward(outs.get(i), children.get(i));
    events.add(outs.size());
    if (moved) marks.put(mk, m.bytes());
  }

  /** The input record as it came, with the reason in two headers, to <topic>.unbatch-errors. */
  private void toErrors(Record<byte[], byte[]> in, RuntimeException e) {
    errors.increment();
    String reason = e.getMessage() == null ? e.getClass().getName() : e.getMessage();
    Headers out = new RecordHeaders(in.headers().toArray());
    out.add("edgehaul-unbatch-error-code", DECODE_ERROR.getBytes(StandardCharsets.UTF_8));
    out.add("edgehaul-unbatch-error", reason.getBytes(StandardCharsets.UTF_8));
    context.forward(new Record<>(in.key(), in.value(), in.timestamp(), out), ERRORS + ":" + topic);
    Log.warn("undecodable record", "code", DECODE_ERROR, "topic", topic, "reason", reason);
  }

  private static long parseOr(String s, long fallback) {
    try {
      return s == null ? fallback : Long.parseLong(s);
    } catch (NumberFormatException e) {
      return fallback;
    }
  }

  /** (gateway, route, key); the store is the topic's own. NUL cannot occur in the gateway id or route name. */
  static String markKey(String gateway, String route, String key) {
    return gateway + '\0' + route + '\0' + key;
  }

  /** The watermark: the incarnation and the highest sequence number seen. */
  record Mark(String incarnation, long seq) {
    byte[] bytes() {
      byte[] inc = incarnation.getBytes(StandardCharsets.UTF_8);
      return ByteBuffer.allocate(8 + inc.length).putLong(seq).put(inc).array();
    }

    static Mark read(byte[] b) {
      if (b == null) return null;
      ByteBuffer bb = ByteBuffer.wrap(b);
      long seq = bb.getLong();
      return new Mark(new String(b, 8, b.length - 8, StandardCharsets.UTF_8), seq);
    }
  }
}
