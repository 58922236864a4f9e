"""The shared corpus (test/vectors): every record decodes to its expected events, every bad one fails."""

import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import cbor2
import pytest

from edgehaul_records import Deduper, RecordError, events

ROOT = Path(__file__).resolve().parents[3]
VECTORS = ROOT / "test" / "vectors"
MANIFEST = json.loads((VECTORS / "manifest.json").read_text("utf-8"))


def from_expected(v):
    """Expected JSON to Python values (docs/record-format.md, "Test vectors")."""
    if isinstance(v, list):
        return [from_expected(x) for x in v]
    if isinstance(v, dict):
        if list(v) == ["$bytes"]:
            import base64
            return base64.b64decode(v["$bytes"])
        if list(v) == ["$float"]:
            return float(v["$float"].replace("Infinity", "inf"))
        if list(v) == ["$map"]:
            return {from_expected(k): from_expected(x) for k, x in v["$map"]}
        return {k: from_expected(x) for k, x in v.items()}
    return v


def same(a, b, where):
    """Equal with types: int is not float, -0.0 is not 0.0, NaN equals NaN."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} {a!r} vs {type(b).__name__} {b!r}"
    if isinstance(a, float):
        if math.isnan(b):
            assert math.isnan(a), where
        else:
            assert a == b and math.copysign(1, a) == math.copysign(1, b), f"{where}: {a!r} vs {b!r}"
    elif isinstance(a, dict):
        assert list(a.keys()) == list(b.keys()) or set(a) == set(b), f"{where}: keys {list(a)} vs {list(b)}"
        for k in b:
            same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), f"{where}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


def test_every_format_version_is_covered():
    assert sorted({v["format"] for v in MANIFEST["vectors"]}) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("vector", MANIFEST["vectors"], ids=lambda v: v["name"])
def test_vector_decodes_to_its_events(vector):
    value = (VECTORS / vector["value"]).read_bytes()
    # as a Kafka client gives headers: a list of (name, bytes)
    headers = [(k, x.encode()) for k, x in vector["headers"].items()]
    got = events(value, headers)
    lines = (VECTORS / vector["events"]).read_text("utf-8").splitlines()
    expected = [from_expected(json.loads(line)) for line in lines]
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected)):
        same(g, e, f"{vector['name']}[{i}]")


@pytest.mark.parametrize("vector", MANIFEST["invalid"], ids=lambda v: v["name"])
def test_bad_record_raises_one_error_naming_the_field(vector):
    value = (VECTORS / vector["value"]).read_bytes()
    with pytest.raises(RecordError) as err:
        events(value)
    assert vector["error"] in str(err.value)


def test_headers_that_disagree_are_refused():
    v = MANIFEST["vectors"][0]
    value = (VECTORS / v["value"]).read_bytes()
    with pytest.raises(RecordError, match="edgehaul-format"):
        events(value, {**v["headers"], "edgehaul-format": "3"})
    with pytest.raises(RecordError, match="content-type"):
        events(value, {"content-type": "application/json"})


def test_deduper_keeps_one_watermark_per_key_and_drops_resends():
    by_name = {v["name"]: v for v in MANIFEST["vectors"]}
    shaped = by_name["v4-shaped"]
    value = (VECTORS / shaped["value"]).read_bytes()
    d = Deduper()
    first = list(d.fresh(events(value)))
    assert len(first) == 6 and len(d) == 1
    assert d.seen_whole(shaped["headers"], shaped["key"].encode())
    assert list(d.fresh(events(value))) == [], "a re-sent record is dropped"
    # a new incarnation (the gateway lost its buffer) starts again from seq 1: kept
    reborn = [dict(e, incarnation="0000000000000001", seq=e["seq"] - 6) for e in events(value)]
    assert len(list(d.fresh(reborn))) == 6 and len(d) == 1
    assert not d.seen_whole(shaped["headers"], shaped["key"]), "the old incarnation's header no longer matches"


def cddl_blocks():
    text = (ROOT / "docs" / "record-format.md").read_text("utf-8")
    return re.findall(r"```cddl\n(.*?)```", text, re.S)


def test_the_cddl_schema_accepts_every_vector_and_refuses_malformed_ones(tmp_path):
    # cddl-verifier (PyPI) is installed with the test extra; the schema is the spec's own CDDL blocks
    verify = shutil.which("cddl-verify")
    assert verify is not None, "cddl-verify not found: pip install './clients/python[test]'"
    blocks = cddl_blocks()
    schema = tmp_path / "record.cddl"
    schema.write_text(blocks[1] + "\n" + blocks[0], "utf-8")

    def valid(path, root):
        r = subprocess.run([verify, "-t", root, "--no-annotate", "-o", os.devnull, str(schema), str(path)], capture_output=True, text=True)
        return r.returncode == 0

    for v in MANIFEST["vectors"]:
        assert valid(VECTORS / v["value"], "record"), v["name"]
        h = tmp_path / f"{v['name']}.headers.cbor"
        h.write_bytes(cbor2.dumps(v["headers"]))
        assert valid(h, "headers"), f"{v['name']} headers"
    # schema-level faults (a shape index out of range is the decoders' to find)
    for v in MANIFEST["invalid"]:
        if v["name"] in ("bad-version", "bad-topic-index", "bad-s0", "bad-no-inc", "bad-not-map", "bad-truncated"):
            assert not valid(VECTORS / v["value"], "record"), v["name"]
