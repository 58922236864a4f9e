package io.edgehaul.unbatch;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import java.io.IOException;
import java.io.StringWriter;

/** One JSON object per line on stdout, like the daemon's log: {level, time, msg, ...fields}. */
final class Log {
  private static final JsonFactory JSON = new JsonFactory();

  private Log() {}

  static void info(String msg, Object... fields) {
    write("info", msg, fields);
  }

  static void warn(String msg, Object... fields) {
    write("warn", msg, fields);
  }

  static void error(String msg, Object... fields) {
    write("error", msg, fields);
  }

  private static void write(String level, String msg, Object... fields) {
    StringWriter out = new StringWriter();
    try (JsonGenerator g = JSON.createGenerator(out)) {
      g.writeStartObject();
      g.writeStringField("level", level);
      g.writeNumberField("time", System.currentTimeMillis());
      g.writeStringField("msg", msg);
      for (int i = 0; i + 1 < fields.length; i += 2) {
        Object v = fields[i + 1];
        g.writeFieldName(String.valueOf(fields[i]));
        if (v instanceof Number n) g.writeNumber(n.longValue());
        else if (v == null) g.writeNull();
        else g.writeString(String.valueOf(v));
      }
      g.writeEndObject();
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
    synchronized (System.out) {
      System.out.println(out);
      System.out.flush();
    }
  }
}
