"""The compiled reader returns fastavro's values for the same bytes, and leaves fastavro every
byte string it does not read plainly (so errors stay fastavro's)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from billy_core.codec import CorruptBody, SingleObjectCodec, decode_command, encode_command
from billy_core.codec.flat_reader import FlatReader, Unreadable, compile_reader
from billy_core.codec.schemas import schema_set
from billy_core.commands import Charge, Command

LONG = st.integers(-(1 << 63), (1 << 63) - 1)
INT = st.integers(-(1 << 31), (1 << 31) - 1)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)

CURRENT = schema_set().current
COMPILED = {name: rec for name, rec in CURRENT.items() if compile_reader(rec.json) is not None}


def _values(schema: Any, named: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values fastavro writes for a type the reader supports; a union's records as
    fastavro's `(name, record)` so the branch is explicit."""
    if isinstance(schema, list):
        return st.one_of(*(_branch(b, named) for b in schema))
    if isinstance(schema, dict):
        kind = schema["type"]
        if kind == "record":
            named[schema["name"]] = schema
            fields = {f["name"]: _values(f["type"], named) for f in schema["fields"]}
            return st.fixed_dictionaries(fields)
        if kind == "map":
            return st.dictionaries(TEXT, TEXT, max_size=4)
        return _values(kind, named)
    if schema in named:
        return _values(named[schema], named)
    return {"null": st.none(), "int": INT, "long": LONG, "string": TEXT}[schema]


def _branch(schema: Any, named: dict[str, Any]) -> st.SearchStrategy[Any]:
    record = schema if isinstance(schema, dict) and schema["type"] == "record" else None
    if isinstance(schema, str) and schema in named:
        record = named[schema]
    values = _values(schema, named)
    return values.map(lambda v: (record["name"], v)) if record else values


def _write(rec: Any, datum: Any) -> bytes:
    out = io.BytesIO()
    schemaless_writer(out, parse_schema(rec.json, _write_hint=False), datum)
    return out.getvalue()


def _fastavro(rec: Any, data: bytes) -> Any:
    body = io.BytesIO(data)
    value = schemaless_reader(
        body, rec.parsed_plain, None, return_record_name=True, return_record_name_override=True
    )
    if body.tell() != len(data):
        raise ValueError("bytes left over")
    return value


def _reader(rec: Any) -> FlatReader:
    reader = compile_reader(rec.json)
    assert reader is not None
    return reader


def test_the_ledgers_input_is_compiled() -> None:
    assert {"Command", "Charge", "Hold", "UpsertPayer"} <= COMPILED.keys()
    assert "Result" not in COMPILED  # an enum: fastavro's


@pytest.mark.parametrize("name", sorted(COMPILED))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_reads_what_fastavro_reads(name: str, data: st.DataObject) -> None:
    rec = COMPILED[name]
    datum = data.draw(_values(rec.json, {}))
    raw = _write(rec, datum)
    assert _reader(rec).read(raw, 0) == _fastavro(rec, raw)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_damaged_bytes_are_read_as_fastavro_reads_them_or_left_to_it(
    data: st.DataObject,
) -> None:
    rec = CURRENT["Command"]
    raw = bytearray(_write(rec, data.draw(_values(rec.json, {}))))
    how = data.draw(st.sampled_from(["truncate", "flip", "append", "random"]))
    if how == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif how == "flip":
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] ^= 1 << data.draw(st.integers(0, 7))
    elif how == "append":
        raw += data.draw(st.binary(min_size=1, max_size=8))
    else:
        raw = bytearray(data.draw(st.binary(max_size=64)))
    try:
        got = _reader(rec).read(bytes(raw), 0)
    except Unreadable:
        return  # fastavro's to read or refuse
    assert got == _fastavro(rec, bytes(raw))


@pytest.mark.parametrize(
    "raw",
    [
        b"",  # nothing
        b"\x02a",  # a string cut short
        b"\xff" * 11,  # a varint past 64 bits
        b"\x03",  # a negative length
        b"\x02\xff",  # a string that is not UTF-8
    ],
)
def test_bytes_it_cannot_read_plainly_are_unreadable(raw: bytes) -> None:
    with pytest.raises(Unreadable):
        _reader(CURRENT["Command"]).read(raw, 0)


def test_the_codec_reads_commands_through_it_and_errors_stay_fastavros() -> None:
    command = Command("c-1", "client-1", 1_700_000_000_000, Charge("p", 100, "RUB"))
    raw = encode_command(command)
    assert decode_command(raw) == command
    codec = SingleObjectCodec()
    with pytest.raises(CorruptBody, match="undecodable body"):
        codec.decode(raw[:-3])
    with pytest.raises(CorruptBody, match="bytes after the record"):
        codec.decode(raw + b"\x00")
