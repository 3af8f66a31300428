"""A fast Avro binary writer for flat records: the ledger's hot-path encoder.

fastavro's `schemaless_writer` spends ~6 µs a call on a record of a dozen fields, most of
it per-call set-up rather than bytes; the ledger encodes three records per command (result,
applied service, wallet snapshot). `compile_flat` turns a record schema whose fields are
all primitive (null, boolean, int, long, string), enums, unions of those, or maps of
strings into a `FlatWriter`: the fields as a list of steps, each a kind and what writing it
needs (a range, an enum's symbols, a union's branches), walked by one loop. This module is
compiled (`billy_core.compiled`): the loop runs as C, several times faster than fastavro.

It writes exactly fastavro's bytes (tested type by type against fastavro) and accepts only
what it can write without judgment: exact `int`, `str`, `bool`, `dict` and None values,
every field present and no other key. Anything else (a datetime for a timestamp-millis
field, an unknown enum symbol, a long out of range, a lone surrogate, a missing field with
a default) raises `Unsupported`, and the caller hands the datum to fastavro, which writes
it or names what is wrong: errors stay fastavro's, word for word.

A schema with anything else (float, bytes, fixed, arrays, nested records) is not compiled:
`compile_flat` returns None and that record always goes through fastavro.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

__all__ = ["FlatWriter", "Unsupported", "compile_flat", "varint"]


class Unsupported(Exception):
    """A value this writer does not take: fastavro writes it (or explains why not)."""


# Zig-zag varints of the small numbers every record is full of (lengths, indexes, 0/1).
_SMALL: Final = tuple(bytes([(i << 1) if i >= 0 else ((-i << 1) - 1)]) for i in range(-32, 64))


def varint(n: int) -> bytes:
    """Avro's zig-zag varint of a long (the caller checked the range)."""
    if -32 <= n < 64:
        return _SMALL[n + 32]
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _utf8(value: str) -> bytes:
    if value.isascii():
        return value.encode("ascii")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: fastavro's to refuse
        raise Unsupported from None


# What a step writes.
_NULL: Final = 0
_BOOLEAN: Final = 1
_INTEGER: Final = 2  # int or long: the range tells them apart
_STRING: Final = 3
_ENUM: Final = 4
_MAP: Final = 5  # of strings

_RANGES: Final = {"int": (-(1 << 31), (1 << 31) - 1), "long": (-(1 << 63), (1 << 63) - 1)}
_KINDS: Final = {"null": _NULL, "boolean": _BOOLEAN, "int": _INTEGER, "long": _INTEGER}
_PYTHON: Final[dict[int, type]] = {
    _NULL: type(None),
    _BOOLEAN: bool,
    _INTEGER: int,
    _STRING: str,
    _ENUM: str,
    _MAP: dict,
}


class _Step:
    """How to write one value: its kind, and the range or symbols that kind needs."""

    def __init__(
        self, kind: int, lo: int = 0, hi: int = 0, symbols: dict[str, bytes] | None = None
    ) -> None:
        self.kind = kind
        self.lo = lo
        self.hi = hi
        self.symbols: dict[str, bytes] = symbols or {}


class _Field:
    """A record field: its name and its step, or a union's branches by the value's type
    (each the branch index's bytes and the step)."""

    def __init__(
        self, name: str, step: _Step | None, branches: dict[type, tuple[bytes, _Step]]
    ) -> None:
        self.name = name
        self.step = step
        self.branches = branches


def _write(step: _Step, value: object, out: list[bytes]) -> None:
    """Append `value`'s bytes to `out`, or raise Unsupported when it is not exactly the
    Python type and range `step` writes."""
    kind = step.kind
    if kind == _STRING:
        if type(value) is not str:
            raise Unsupported
        data = _utf8(value)
        out.append(varint(len(data)))
        out.append(data)
    elif kind == _INTEGER:
        if type(value) is not int or not step.lo <= value <= step.hi:
            raise Unsupported
        out.append(varint(value))
    elif kind == _ENUM:
        index = step.symbols.get(value) if type(value) is str else None
        if index is None:
            raise Unsupported
        out.append(index)
    elif kind == _BOOLEAN:
        if type(value) is not bool:
            raise Unsupported
        out.append(b"\x01" if value else b"\x00")
    elif kind == _NULL:
        if value is not None:
            raise Unsupported
    else:  # a map of strings
        if type(value) is not dict:
            raise Unsupported
        if value:  # one block of every entry, then the empty block that ends the map
            out.append(varint(len(value)))
            for k, v in value.items():
                if type(k) is not str or type(v) is not str:
                    raise Unsupported
                key, data = _utf8(k), _utf8(v)
                out.append(varint(len(key)))
                out.append(key)
                out.append(varint(len(data)))
                out.append(data)
        out.append(b"\x00")


class FlatWriter:
    """The writer of one flat record schema; `encode` is the hot path."""

    def __init__(self, header: bytes, fields: list[_Field]) -> None:
        self.header = header
        self.fields = fields
        self.count = len(fields)

    def encode(self, datum: object) -> bytes:
        """The record's bytes after the header. Raises Unsupported for a datum it does not
        take (see the module doc)."""
        if type(datum) is not dict or len(datum) != self.count:
            raise Unsupported
        out = [self.header]
        for field in self.fields:
            try:
                value = datum[field.name]
            except KeyError:
                raise Unsupported from None
            step = field.step
            if step is None:
                branch = field.branches.get(type(value))
                if branch is None:
                    raise Unsupported
                out.append(branch[0])
                step = branch[1]
            _write(step, value, out)
        return b"".join(out)


def _step(schema: Any) -> _Step | None:
    """The step of a (non-union) field type, or None when not supported."""
    if isinstance(schema, dict):
        kind = schema.get("type")
        if kind == "enum":
            return _Step(_ENUM, symbols={s: varint(i) for i, s in enumerate(schema["symbols"])})
        if kind == "map":
            return _Step(_MAP) if schema.get("values") == "string" else None
        # A primitive with a logical type (timestamp-millis...) is written as its base
        # type; fastavro would also take a datetime there, which is left to it.
        return _step(kind) if kind in ("int", "long", "string", "boolean") else None
    if schema == "string":
        return _Step(_STRING)
    if schema in _KINDS:
        lo, hi = _RANGES.get(schema, (0, 0))
        return _Step(_KINDS[schema], lo, hi)
    return None


def _field(spec: dict[str, Any]) -> _Field | None:
    schema = spec["type"]
    if not isinstance(schema, list):
        step = _step(schema)
        return None if step is None else _Field(spec["name"], step, {})
    # A union whose branches take distinct Python types: the branch is the value's type.
    branches: dict[type, tuple[bytes, _Step]] = {}
    for i, branch in enumerate(schema):
        step = _step(branch)
        if step is None:
            return None  # unsupported or nested
        python = _PYTHON[step.kind]
        if python in branches:
            return None  # two branches a value could belong to
        branches[python] = (varint(i), step)
    return _Field(spec["name"], None, branches)


def compile_flat(schema: dict[str, Any], header: bytes) -> Callable[[object], bytes] | None:
    """An encoder of `schema` (a record's self-contained JSON schema) whose bytes start with
    `header`, or None when a field's type is not one this writer supports. The encoder
    raises `Unsupported` for a datum it does not take."""
    if schema.get("type") != "record":
        return None
    fields = []
    for spec in schema["fields"]:
        field = _field(spec)
        if field is None:
            return None
        fields.append(field)
    return FlatWriter(header, fields).encode
