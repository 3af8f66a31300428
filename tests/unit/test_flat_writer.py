"""The compiled flat-record writer writes fastavro's bytes, and leaves fastavro every datum
it does not take (so errors stay fastavro's)."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from billy_core.codec import EncodeError, SingleObjectCodec
from billy_core.codec.flat_writer import Unsupported, compile_flat, varint
from billy_core.codec.schemas import schema_set

LONG = st.integers(-(1 << 63), (1 << 63) - 1)
INT = st.integers(-(1 << 31), (1 << 31) - 1)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=80)


def _values(schema: Any) -> st.SearchStrategy[Any]:
    """Valid Python values of a field type the writer supports."""
    if isinstance(schema, list):
        return st.one_of(*(_values(b) for b in schema))
    if isinstance(schema, dict):
        kind = schema["type"]
        if kind == "enum":
            return st.sampled_from(schema["symbols"])
        if kind == "map":
            return st.dictionaries(TEXT, TEXT, max_size=5)
        return _values(kind)
    return {
        "null": st.none(),
        "boolean": st.booleans(),
        "int": INT,
        "long": LONG,
        "string": TEXT,
    }[schema]


def _fastavro(schema: dict[str, Any], datum: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    schemaless_writer(out, parse_schema(schema, _write_hint=False), datum)
    return out.getvalue()


COMPILED = {
    name: rec.json
    for name, rec in schema_set().current.items()
    if compile_flat(rec.json, b"") is not None
}


def test_the_ledgers_outputs_are_compiled() -> None:
    assert {"Result", "AppliedService", "WalletSnapshot"} <= COMPILED.keys()
    assert "Command" not in COMPILED  # a union of records: fastavro's


@pytest.mark.parametrize("name", sorted(COMPILED))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_bytes_are_fastavros(name: str, data: st.DataObject) -> None:
    schema = COMPILED[name]
    encode = compile_flat(schema, b"HDR")
    assert encode is not None
    datum = {f["name"]: data.draw(_values(f["type"]), label=f["name"]) for f in schema["fields"]}
    written = encode(datum)
    assert written == b"HDR" + _fastavro(schema, datum)
    plain = parse_schema(_without_logical_types(schema), _write_hint=False)
    assert schemaless_reader(io.BytesIO(written[3:]), plain) == datum


def _without_logical_types(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_without_logical_types(v) for v in schema]
    return schema


GENERIC = {
    "type": "record",
    "name": "T",
    "fields": [
        {"name": "s", "type": "string"},
        {"name": "i", "type": "int"},
        {"name": "n", "type": "long"},
        {"name": "b", "type": "boolean"},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
        {"name": "o", "type": ["null", "string", "long"]},
        {"name": "m", "type": {"type": "map", "values": "string"}},
        {"name": "t", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}
GOOD = {"s": "é", "i": -1, "n": 1 << 40, "b": True, "e": "B", "o": 7, "m": {"k": "v"}, "t": 5}


@pytest.mark.parametrize(
    "change",
    [
        {"t": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)},  # fastavro takes it; so must the codec
        {"n": 1 << 63},
        {"i": 1 << 31},
        {"n": True},
        {"b": 1},
        {"e": "C"},
        {"s": "\ud800"},
        {"m": {"k": 1}},
        {"o": 1.5},
        {"extra": 1},
    ],
    ids=repr,
)
def test_what_it_does_not_take_is_left_to_fastavro(change: dict[str, Any]) -> None:
    encode = compile_flat(GENERIC, b"")
    assert encode is not None
    assert encode(dict(GOOD)) == _fastavro(GENERIC, GOOD)
    with pytest.raises(Unsupported):
        encode({**GOOD, **change})
    missing = dict(GOOD)
    del missing["s"]
    with pytest.raises(Unsupported):
        encode(missing)


def test_unsupported_schemas_are_not_compiled() -> None:
    for field_type in ("double", "bytes", {"type": "array", "items": "string"}, ["int", "long"]):
        schema = {"type": "record", "name": "X", "fields": [{"name": "f", "type": field_type}]}
        assert compile_flat(schema, b"") is None


def test_the_codec_still_reports_fastavros_errors() -> None:
    codec = SingleObjectCodec()
    rec = schema_set().get("WalletSnapshot")
    datum = {f["name"]: 0 for f in rec.json["fields"]}
    datum |= {"tenant": "t", "client_id": "c", "currency": "RUB", "wallet_version": 1 << 64}
    with pytest.raises(EncodeError, match="WalletSnapshot"):
        codec.encode("WalletSnapshot", datum)
    aware = {**datum, "wallet_version": 1, "updated_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}
    assert codec.encode("WalletSnapshot", aware) == codec.encode(
        "WalletSnapshot", {**aware, "updated_at": 1767225600000}
    )


@pytest.mark.parametrize("n", [0, -1, 63, 64, -32, -33, 1 << 62, -(1 << 63), (1 << 63) - 1])
def test_varint(n: int) -> None:
    schema = {"type": "record", "name": "L", "fields": [{"name": "x", "type": "long"}]}
    assert varint(n) == _fastavro(schema, {"x": n})
