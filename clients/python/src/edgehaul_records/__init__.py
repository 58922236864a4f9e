"""Decoder for edgehaul's Kafka records, and the bounded duplicate rule.

The format is specified in docs/record-format.md of the edgehaul repository;
test/vectors holds records with the events they decode to, which this module
is tested against.
"""

from __future__ import annotations

import io
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import cbor2

__all__ = ["Deduper", "RecordError", "events", "READ_VERSIONS", "CONTENT_TYPE", "HEADERS"]

READ_VERSIONS = (1, 2, 3, 4, 5)
CONTENT_TYPE = "application/vnd.edgehaul.batch+cbor"
HEADERS = {
    "content_type": "content-type",
    "format": "edgehaul-format",
    "gateway": "edgehaul-gateway",
    "incarnation": "edgehaul-incarnation",
    "route": "edgehaul-route",
    "seq_first": "edgehaul-seq-first",
    "seq_last": "edgehaul-seq-last",
    "events": "edgehaul-events",
}

HeadersLike = Union[None, Mapping[str, Any], Sequence[Tuple[str, Any]]]


class RecordError(ValueError):
    """The record is not an edgehaul batch; the message names the field or byte offset."""


def _fail(message: str) -> RecordError:
    return RecordError(f"not an edgehaul batch: {message}")


def _describe(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"the boolean {v}"
    if isinstance(v, (int, float)):
        return f"the number {v!r}"
    if isinstance(v, str):
        return f"the text {v[:40]!r}"
    if isinstance(v, (bytes, bytearray)):
        return f"a byte string ({len(v)} bytes)"
    if isinstance(v, (list, tuple)):
        return f"an array of {len(v)}"
    if isinstance(v, dict):
        return f"a map of {len(v)}"
    if isinstance(v, cbor2.CBORTag):
        return f"tag {v.tag}"
    return type(v).__name__


def _loads(data: bytes, what: str) -> Any:
    """One CBOR item and nothing after it."""
    fp = io.BytesIO(data)
    try:
        item = cbor2.CBORDecoder(fp).decode()
    except cbor2.CBORDecodeError as err:
        raise _fail(f"{what}: truncated or not CBOR at byte {fp.tell()} of {len(data)}: {err}") from None
    if fp.tell() != len(data):
        raise _fail(f"{what}: {len(data) - fp.tell()} bytes after the CBOR item (at byte {fp.tell()})")
    return item


def _int(v: Any, field: str) -> int:
    # formats 1 to 3 wrote integers above 2^32 as float64
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    raise _fail(f"field {field}: expected an integer, got {_describe(v)}")


def _text(v: Any, field: str) -> str:
    if not isinstance(v, str):
        raise _fail(f"field {field}: expected a text string, got {_describe(v)}")
    return v


def _captures(m: Any, field: str) -> Dict[str, str]:
    if not isinstance(m, dict) or not all(isinstance(k, str) and isinstance(x, str) for k, x in m.items()):
        raise _fail(f"field {field}: expected a map of text to text, got {_describe(m)}")
    return dict(m)


def _decode(value: bytes) -> Tuple[int, List[Dict[str, Any]]]:
    wire = _loads(bytes(value), "record")
    if not isinstance(wire, dict):
        raise _fail(f"the value is not a CBOR map but {_describe(wire)}")
    v = wire.get("v")
    if isinstance(v, bool) or v not in READ_VERSIONS:
        raise _fail(f"field v: unsupported format version {_describe(v)} (this decoder reads {', '.join(map(str, READ_VERSIONS))})")
    gateway = _text(wire.get("gw"), "gw")
    route = _text(wire.get("route"), "route")
    key = _text(wire.get("key"), "key")
    incarnation: Optional[str] = None
    if v >= 4:
        incarnation = wire.get("inc")
        if not isinstance(incarnation, str) or incarnation == "":
            raise _fail(f"field inc: expected a non-empty text string, got {_describe(incarnation)}")
    s0 = _int(wire.get("s0"), "s0")
    t0 = _int(wire.get("t0"), "t0")
    topics = wire.get("topics")
    if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
        raise _fail("field topics: expected an array of text strings")
    evs = wire.get("ev")
    if not isinstance(evs, list):
        raise _fail(f"field ev: expected an array, got {_describe(evs)}")
    caps: Union[None, Dict[str, str], List[Dict[str, str]]] = None
    if v >= 4 and "caps" in wire:
        c = wire["caps"]
        if isinstance(c, dict):
            caps = _captures(c, "caps")
        elif isinstance(c, list):
            if len(c) != len(topics):
                raise _fail(f"field caps: {len(c)} entries for {len(topics)} topics")
            caps = [_captures(x, f"caps[{i}]") for i, x in enumerate(c)]
        else:
            raise _fail(f"field caps: expected a map or an array of maps, got {_describe(c)}")
    shapes: List[List[str]] = []
    if v >= 3 and "shapes" in wire:
        sh = wire["shapes"]
        if not isinstance(sh, list):
            raise _fail(f"field shapes: expected an array, got {_describe(sh)}")
        for i, keys in enumerate(sh):
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                raise _fail(f"field shapes[{i}]: expected an array of text strings")
            if len(set(keys)) != len(keys):
                raise _fail(f"field shapes[{i}]: a key repeats")
            shapes.append(keys)

    out: List[Dict[str, Any]] = []
    for i, e in enumerate(evs):
        if not isinstance(e, list) or not (len(e) == 4 or (v >= 5 and len(e) == 5)):
            raise _fail(f"ev[{i}]: expected a 4-array{' or 5-array' if v >= 5 else ''}, got {_describe(e)}")
        ds = _int(e[0], f"ev[{i}][0] (seq - s0)")
        dt = _int(e[1], f"ev[{i}][1] (received_at - t0)")
        ti = e[2]
        if isinstance(ti, bool) or not isinstance(ti, int) or not 0 <= ti < len(topics):
            raise _fail(f"ev[{i}][2]: topic index {_describe(ti)} is not in topics ({len(topics)} topics)")
        event: Dict[str, Any] = {
            "gateway": gateway,
            "incarnation": incarnation,
            "route": route,
            "key": key,
            "seq": s0 + ds,
            "received_at": t0 + dt,
            "topic": topics[ti],
            "captures": dict(caps[ti] if isinstance(caps, list) else caps or {}),
        }
        if len(e) == 5:
            # format 5: an aggregate (when_full: downsample) standing for this many events
            n = _int(e[4], f"ev[{i}][4] (aggregate count)")
            if n < 1:
                raise _fail(f"ev[{i}][4] (aggregate count): expected a positive integer, got {n}")
            event["aggregate"] = n
        data = e[3]
        if isinstance(data, (bytes, bytearray)):
            event["payload"] = bytes(data)
        elif isinstance(data, cbor2.CBORTag) and data.tag == 24 and isinstance(data.value, (bytes, bytearray)) and v >= 2:
            event["value"] = _loads(bytes(data.value), f"ev[{i}][3] (tag 24)")
        elif isinstance(data, list) and v >= 3:
            if not data or isinstance(data[0], bool) or not isinstance(data[0], int) or not 0 <= data[0] < len(shapes):
                raise _fail(f"ev[{i}][3]: shape {_describe(data[0] if data else None)} is not in the shapes table ({len(shapes)} shapes)")
            keys = shapes[data[0]]
            if len(data) != len(keys) + 1:
                raise _fail(f"ev[{i}][3]: {len(data) - 1} values for a shape of {len(keys)} keys")
            event["value"] = dict(zip(keys, data[1:]))
        else:
            raise _fail(f"ev[{i}][3]: expected a byte string, tag 24 or a shaped array, got {_describe(data)}")
        out.append(event)
    return v, out


def _header_map(headers: HeadersLike) -> Dict[str, str]:
    if headers is None:
        return {}
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: Dict[str, str] = {}
    for k, x in items:
        if isinstance(x, (bytes, bytearray)):
            x = bytes(x).decode("utf-8", errors="replace")
        out[k] = "" if x is None else str(x)
    return out


def events(value: bytes, headers: HeadersLike = None) -> List[Dict[str, Any]]:
    """The events of one Kafka record (its value and, optionally, its headers), in order.

    Headers may be a dict or a list of (name, value) pairs with str or bytes
    values (as Kafka clients give them); when given, the content type and
    format version they state must agree with the value. The whole record is
    decoded before anything is returned: a bad record raises RecordError.
    """
    h = _header_map(headers)
    ct = h.get(HEADERS["content_type"])
    if ct is not None and ct != CONTENT_TYPE:
        raise _fail(f"header content-type is {ct!r}, not {CONTENT_TYPE}")
    version, out = _decode(value)
    fmt = h.get(HEADERS["format"])
    if fmt is not None and fmt != str(version):
        raise _fail(f"header edgehaul-format {fmt} disagrees with the value's version {version}")
    return out


class Deduper:
    """The bounded duplicate rule (docs/record-format.md, "Identity and duplicates").

    Keeps one watermark per (gateway, route, key): the incarnation and the
    highest sequence number seen. Feed it one topic's records in partition order.
    """

    def __init__(self) -> None:
        self._marks: Dict[Tuple[str, str, str], List[Any]] = {}

    def __len__(self) -> int:
        return len(self._marks)

    def seen_whole(self, headers: HeadersLike, key: Union[bytes, str, None]) -> bool:
        """True when every event of the record was seen: skip it without decoding."""
        h = _header_map(headers)
        inc = h.get(HEADERS["incarnation"])
        gateway = h.get(HEADERS["gateway"])
        route = h.get(HEADERS["route"])
        try:
            last = int(h.get(HEADERS["seq_last"], ""))
        except ValueError:
            return False
        if inc is None or gateway is None or route is None:
            return False
        k = key.decode("utf-8", errors="replace") if isinstance(key, (bytes, bytearray)) else (key or "")
        mark = self._marks.get((gateway, route, k))
        return mark is not None and mark[0] == inc and last <= mark[1]

    def fresh(self, evs: Iterable[Dict[str, Any]]) -> Iterator[Dict[str, Any]]:
        """The events not seen before, in order; remembers them."""
        for e in evs:
            k = (e["gateway"], e["route"], e["key"])
            inc = e["incarnation"] or ""
            mark = self._marks.get(k)
            if mark is None or mark[0] != inc:
                mark = [inc, None]
                self._marks[k] = mark
            if mark[1] is not None and e["seq"] <= mark[1]:
                continue
            mark[1] = e["seq"]
            yield e
