package io.edgehaul.records;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * The bounded duplicate rule (docs/record-format.md, "Identity and duplicates"):
 * one watermark per (gateway, route, key), the incarnation and the highest
 * sequence number seen. Feed it one topic's records in partition order.
 */
public final class Deduper {
  private record Key(String gateway, String route, String key) {}

  private static final class Mark {
    String incarnation;
    long seq;
    boolean any;
  }

  private final Map<Key, Mark> marks = new HashMap<>();

  /** How many watermarks are kept: the whole state. */
  public int size() {
    return marks.size();
  }

  /** True when every event of the record was seen: skip it without decoding. */
  public boolean seenWhole(Map<String, String> headers, String recordKey) {
    String inc = headers.get("edgehaul-incarnation");
    String gateway = headers.get("edgehaul-gateway");
    String route = headers.get("edgehaul-route");
    String last = headers.get("edgehaul-seq-last");
    if (inc == null || gateway == null || route == null || last == null) return false;
    Mark m = marks.get(new Key(gateway, route, recordKey == null ? "" : recordKey));
    try {
      return m != null && m.any && m.incarnation.equals(inc) && Long.parseLong(last) <= m.seq;
    } catch (NumberFormatException e) {
      return false;
    }
  }

  /** The events not seen before, in order; remembers them. */
  public List<Map<String, Object>> fresh(List<Map<String, Object>> events) {
    List<Map<String, Object>> out = new ArrayList<>();
    for (Map<String, Object> e : events) {
      Key k = new Key((String) e.get("gateway"), (String) e.get("route"), (String) e.get("key"));
      String inc = Objects.requireNonNullElse((String) e.get("incarnation"), "");
      Mark m = marks.get(k);
      if (m == null || !m.incarnation.equals(inc)) {
        m = new Mark();
        m.incarnation = inc;
        marks.put(k, m);
      }
      long seq = (Long) e.get("seq");
      if (m.any && seq <= m.seq) continue;
      m.seq = seq;
      m.any = true;
      out.add(e);
    }
    return out;
  }
}
