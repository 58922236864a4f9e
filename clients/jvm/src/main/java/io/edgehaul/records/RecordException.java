package io.edgehaul.records;

/** The record is not an edgehaul batch; the message names the field or the byte offset. */
public final class RecordException extends RuntimeException {
  public RecordException(String message) {
    super("not an edgehaul batch: " + message);
  }

  public RecordException(String message, Throwable cause) {
    super("not an edgehaul batch: " + message, cause);
  }
}
