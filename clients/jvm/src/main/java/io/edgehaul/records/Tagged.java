package io.edgehaul.records;

/** A CBOR tag this decoder gives no meaning of its own (bignums 2 and 3 are integers, not Tagged). */
public record Tagged(long tag, Object value) {}
