"""A fast Avro binary reader for the ledger's input: the Command record, compiled.

fastavro's `schemaless_reader` spends ~5 µs on a Command of a few fields, most of it per-call
set-up (the schema's named types, the options, a file object) rather than bytes, and the
ledger reads one per command. `compile_reader` turns a record schema built of null, int,
long, string, maps of strings, nested records and unions of those into a `FlatReader`: a
tree of nodes walked by a few functions over the bytes. This module is compiled
(`billy_core.compiled`): the walk runs as C.

It returns exactly what fastavro returns for the same bytes with the options billy reads
with (`return_record_name` and its override): a dict per record, a union's record branch as
`(full name, dict)` when the union has several records. It judges nothing: bytes it cannot
read plainly (truncated, a varint past 64 bits, a union index out of range, bad UTF-8, a
negative length, bytes left over) raise `Unreadable`, and the caller hands them to
fastavro, which reads them or names what is wrong: errors stay fastavro's, word for word.
Tested against fastavro on generated records and on their truncations and bit flips.

A schema with anything else (boolean, float, bytes, fixed, enum, arrays, a union mixing
records and other types) is not compiled: `compile_reader` returns None.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["FlatReader", "Unreadable", "compile_reader"]


class Unreadable(Exception):
    """Bytes this reader does not take: fastavro reads them (or says why not)."""


# What a node reads.
_NULL: Final = 0
_LONG: Final = 1  # int or long: the same varint
_STRING: Final = 2
_MAP: Final = 3  # of strings
_RECORD: Final = 4
_UNION: Final = 5


class _Node:
    """How to read one value: its kind; a record's name and fields; a union's branches,
    and whether a record branch comes back as `(name, value)`."""

    def __init__(
        self,
        kind: int,
        name: str = "",
        fields: list[tuple[str, _Node]] | None = None,
        branches: list[_Node] | None = None,
        tagged: bool = False,
    ) -> None:
        self.kind = kind
        self.name = name
        self.fields: list[tuple[str, _Node]] = fields or []
        self.branches: list[_Node] = branches or []
        self.tagged = tagged


class _Cursor:
    """The bytes and where reading is."""

    def __init__(self, data: bytes, at: int) -> None:
        self.data = data
        self.at = at


def _long(c: _Cursor) -> int:
    """A zig-zag varint of at most 64 bits."""
    data, at = c.data, c.at
    end = len(data)
    if at < end and data[at] < 0x80:  # one byte: lengths, indexes, small numbers
        b = data[at]
        c.at = at + 1
        return (b >> 1) ^ -(b & 1)
    z = 0
    shift = 0
    while True:
        if at >= end:
            raise Unreadable
        b = data[at]
        at += 1
        z |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
        if shift > 63:
            raise Unreadable
    if z >> 64:
        raise Unreadable
    c.at = at
    return (z >> 1) ^ -(z & 1)


def _string(c: _Cursor) -> str:
    size = _long(c)
    at = c.at
    end = at + size
    if size < 0 or end > len(c.data):
        raise Unreadable
    try:
        value = c.data[at:end].decode("utf-8")
    except UnicodeDecodeError:
        raise Unreadable from None
    c.at = end
    return value


def _read(node: _Node, c: _Cursor) -> Any:
    kind = node.kind
    if kind == _STRING:
        return _string(c)
    if kind == _LONG:
        return _long(c)
    if kind == _RECORD:
        record: dict[str, Any] = {}
        for name, field in node.fields:
            record[name] = _read(field, c)
        return record
    if kind == _UNION:
        index = _long(c)
        if index < 0 or index >= len(node.branches):
            raise Unreadable
        branch = node.branches[index]
        value = _read(branch, c)
        if node.tagged and branch.kind == _RECORD:
            return (branch.name, value)
        return value
    if kind == _MAP:
        entries: dict[str, str] = {}
        count = _long(c)
        while count != 0:
            if count < 0:  # a block with its size in bytes, which is not needed here
                count = -count
                _long(c)
            for _ in range(count):
                key = _string(c)
                entries[key] = _string(c)
            count = _long(c)
        return entries
    return None  # _NULL


class FlatReader:
    """The reader of one record schema; `read` is the hot path."""

    def __init__(self, root: _Node) -> None:
        self.root = root

    def read(self, data: bytes, start: int) -> dict[str, Any]:
        """The record in `data[start:]`, which it must fill exactly. Raises Unreadable for
        bytes it does not take (see the module doc)."""
        c = _Cursor(data, start)
        value: dict[str, Any] = _read(self.root, c)
        if c.at != len(data):
            raise Unreadable
        return value


def _node(schema: Any, named: dict[str, _Node], namespace: str) -> _Node | None:
    """The node of a type, or None when not supported. `named`: the records seen so far by
    full name (a later mention of one is its name alone)."""
    if isinstance(schema, str):
        if schema == "null":
            return _Node(_NULL)
        if schema in ("int", "long"):
            return _Node(_LONG)
        if schema == "string":
            return _Node(_STRING)
        fullname = schema if "." in schema else f"{namespace}.{schema}" if namespace else schema
        return named.get(fullname) or named.get(schema)
    if isinstance(schema, list):
        branches = []
        for branch in schema:
            node = _node(branch, named, namespace)
            if node is None:
                return None
            branches.append(node)
        records = sum(1 for b in branches if b.kind == _RECORD)
        if records and records != len(branches):
            return None  # records beside other types: fastavro's naming rules, left to it
        if any(b.kind == _UNION for b in branches):
            return None
        # Several records come back named; a union of one record (the override) does not.
        return _Node(_UNION, branches=branches, tagged=records > 1)
    if not isinstance(schema, dict):
        return None
    kind = schema.get("type")
    if kind == "record":
        name = str(schema["name"])
        space = schema.get("namespace", namespace)
        fullname = name if "." in name else f"{space}.{name}" if space else name
        node = _Node(_RECORD, name=fullname)
        named[fullname] = node  # before the fields: a record may mention itself
        inner = fullname.rpartition(".")[0]
        for spec in schema["fields"]:
            field = _node(spec["type"], named, inner)
            if field is None:
                return None
            node.fields.append((str(spec["name"]), field))
        return node
    if kind == "map":
        return _Node(_MAP) if schema.get("values") == "string" else None
    if kind in ("int", "long", "string", "null"):  # a logical type reads as its base type
        return _node(kind, named, namespace)
    return None


def compile_reader(schema: dict[str, Any]) -> FlatReader | None:
    """A reader of `schema` (a record's self-contained JSON schema, logical types read as
    their base types), or None when a type in it is not one this reader supports."""
    if schema.get("type") != "record":
        return None
    root = _node(schema, {}, "")
    return None if root is None else FlatReader(root)
