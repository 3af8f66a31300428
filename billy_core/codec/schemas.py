"""billy's Avro schemas, loaded once from the `.avsc` files in the repository's `schemas/`.

Each record is in its own file, `schemas/<Name>.avsc`, namespace `billy.v1`; a record
refers to records of other files by full name (`"billy.v1.Charge"`). Loading resolves
those references by inlining each referenced definition at its first use, which gives
one self-contained schema per record: the form a JVM service, the Schema Registry and
the Parsing Canonical Form all need.

The frozen earlier versions live in `schemas/history/<Name>/v<N>.avsc` (self-contained,
as written at that version). Every version's fingerprint is known to the decoder, so
records written with an older version still decode (read with the current schema).

The directory is `billy_core/_schemas` (see `schemas_dir`), or `$BILLY_SCHEMAS_DIR` when
set. `schema_set()` loads it on first use and caches it for the process's life;
`load_schemas(path)` loads any directory, uncached.

Raises `SchemaError` (billy_core.codec.errors) when the directory is missing or a file
does not parse, names the wrong record, or refers to an unknown type.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from fastavro.schema import fingerprint as _fastavro_fingerprint
from fastavro.schema import parse_schema, to_parsing_canonical_form

from billy_core.codec.errors import SchemaError

__all__ = [
    "NAMESPACE",
    "SCHEMAS_DIR_ENV",
    "RecordSchema",
    "SchemaSet",
    "crc64_avro",
    "load_schemas",
    "schema",
    "schema_set",
    "schemas_dir",
    "self_contained",
]

NAMESPACE = "billy.v1"
SCHEMAS_DIR_ENV = "BILLY_SCHEMAS_DIR"

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "error", "enum", "fixed"})
_VERSION_FILE = re.compile(r"^v(\d+)\.avsc$")


@dataclass(frozen=True, slots=True, eq=False)
class RecordSchema:
    """One version of one record's schema, with everything the codec needs precomputed."""

    name: str
    """Short name, e.g. "Command" (also the file name)."""
    fullname: str
    """e.g. "billy.v1.Command"."""
    version: int | None
    """The history version (v<N>.avsc); None for the current file in `schemas/`."""
    json: dict[str, Any]
    """Self-contained schema (referenced records inlined at first use), docs kept. Shared:
    do not modify."""
    canonical: str
    """The Avro Parsing Canonical Form of `json`: what the fingerprint is taken of."""
    fingerprint: bytes
    """CRC-64-AVRO of `canonical`: the 8 bytes exactly as they follow `C3 01` on the wire
    (little-endian)."""
    parsed: dict[str, Any]
    """fastavro-parsed `json`: timestamp-millis fields read as aware datetimes."""
    parsed_plain: dict[str, Any]
    """fastavro-parsed `json` without logical types: timestamp-millis fields are read and
    written as int milliseconds. Same Parsing Canonical Form, fingerprint and bytes."""

    @property
    def fingerprint_int(self) -> int:
        """The fingerprint as the unsigned 64-bit number (Java's `long`, read unsigned)."""
        return int.from_bytes(self.fingerprint, "little")

    @property
    def fingerprint_hex(self) -> str:
        return self.fingerprint.hex()

    @property
    def schema_str(self) -> str:
        """`json` as compact JSON text: what a JVM service or the Schema Registry is given."""
        return json.dumps(self.json, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True, eq=False)
class SchemaSet:
    """All records of one `schemas/` directory."""

    directory: Path
    current: Mapping[str, RecordSchema]
    """By short name: the schema every reader and writer uses now."""
    history: Mapping[str, tuple[RecordSchema, ...]]
    """By short name: the frozen versions v1..vN, in order (empty when there are none)."""
    by_fingerprint: Mapping[bytes, RecordSchema]
    """Every known writer schema (current and history) by fingerprint."""

    def get(self, name: str) -> RecordSchema:
        """The current schema by short or full name. Raises KeyError when there is none."""
        short = name.rsplit(".", 1)[-1]
        rec = self.current.get(short)
        if rec is None or (name != short and name != rec.fullname):
            raise KeyError(name)
        return rec


def crc64_avro(data: bytes | str) -> bytes:
    """CRC-64-AVRO (Rabin) fingerprint of `data`, as 8 little-endian bytes (wire order)."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    return bytes.fromhex(_fastavro_fingerprint(text, "CRC-64-AVRO"))


def schemas_dir() -> Path:
    """`$BILLY_SCHEMAS_DIR`, else `billy_core/_schemas`, resolved.

    One source, two shapes: in a checkout `billy_core/_schemas` is a symlink to the
    repository's `schemas/` (resolved, so paths in messages and `--freeze` point there); in an
    installed wheel it is a directory of the same files, package data of billy_core, so the
    SDK encodes with the schemas it was built with.
    """
    override = os.environ.get(SCHEMAS_DIR_ENV)
    if override:
        return Path(override)
    return (Path(__file__).resolve().parents[1] / "_schemas").resolve()


@functools.cache
def schema_set() -> SchemaSet:
    """The process-wide schemas, loaded from `schemas_dir()` on first call. Raises SchemaError."""
    return load_schemas(schemas_dir())


def schema(name: str) -> RecordSchema:
    """The current schema of a record, by short ("Command") or full name. Raises KeyError."""
    return schema_set().get(name)


def load_schemas(directory: Path | str) -> SchemaSet:
    """Load and parse every `<Name>.avsc` in `directory` and every `history/<Name>/v<N>.avsc`.

    Uncached: tests use it on temporary directories. Raises SchemaError.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise SchemaError(
            f"schema directory {directory} not found (set {SCHEMAS_DIR_ENV} to the repository's "
            "schemas/ directory)"
        )
    raw: dict[str, dict[str, Any]] = {}
    paths: dict[str, Path] = {}
    for path in sorted(directory.glob("*.avsc")):
        doc = _read_json(path)
        if not isinstance(doc, dict) or doc.get("type") not in _NAMED:
            raise SchemaError(f"{path}: must hold one named type (a record)")
        fullname = _fullname(doc["name"], doc.get("namespace"))
        if fullname != f"{NAMESPACE}.{path.stem}":
            raise SchemaError(f"{path}: defines {fullname}, expected {NAMESPACE}.{path.stem}")
        raw[fullname] = doc
        paths[fullname] = path

    current: dict[str, RecordSchema] = {}
    for fullname in raw:
        current[fullname.rsplit(".", 1)[-1]] = _record(
            self_contained(fullname, raw), version=None, origin=paths[fullname]
        )

    history: dict[str, tuple[RecordSchema, ...]] = {}
    history_dir = directory / "history"
    if history_dir.is_dir():
        for record_dir in sorted(p for p in history_dir.iterdir() if p.is_dir()):
            numbered: list[tuple[int, RecordSchema]] = []
            for path in record_dir.iterdir():
                m = _VERSION_FILE.match(path.name)
                if m is None:
                    raise SchemaError(f"{path}: history files are named v<N>.avsc")
                doc = _read_json(path)
                if not isinstance(doc, dict):
                    raise SchemaError(f"{path}: must hold one named type (a record)")
                version = int(m.group(1))
                rec = _record(doc, version=version, origin=path)
                if rec.name != record_dir.name:
                    raise SchemaError(f"{path}: defines {rec.fullname}, not {record_dir.name}")
                numbered.append((version, rec))
            numbered.sort(key=lambda vr: vr[0])
            if [v for v, _ in numbered] != list(range(1, len(numbered) + 1)):
                raise SchemaError(f"{record_dir}: versions must be v1..vN without gaps")
            history[record_dir.name] = tuple(r for _, r in numbered)

    by_fingerprint: dict[bytes, RecordSchema] = {}
    for versions in history.values():
        for rec in versions:  # later versions win: same canonical form, same bytes
            _claim(by_fingerprint, rec)
    for rec in current.values():
        _claim(by_fingerprint, rec)
    return SchemaSet(
        directory=directory,
        current=MappingProxyType(current),
        history=MappingProxyType(history),
        by_fingerprint=MappingProxyType(by_fingerprint),
    )


def self_contained(fullname: str, raw: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """The schema of `fullname` with every referenced named type inlined at its first use
    and referred to by full name afterwards (the shape the Avro spec's canonical form and
    Java's parser expect). All names are written fully qualified; "namespace" keys go.

    `raw` maps full names to the schema documents as read from the files. Raises SchemaError
    for a reference to a name not in `raw` and for a name defined twice.
    """
    defined: set[str] = set()

    def walk(node: Any, ns: str | None) -> Any:
        if isinstance(node, str):
            if node in _PRIMITIVES:
                return node
            name = _fullname(node, ns)
            if name in defined:
                return name
            if name not in raw:
                raise SchemaError(f"{fullname}: unknown type {node!r}")
            return walk(raw[name], None)
        if isinstance(node, list):
            return [walk(branch, ns) for branch in node]
        if not isinstance(node, dict):
            raise SchemaError(f"{fullname}: not a schema: {node!r}")
        kind = node.get("type")
        if kind in _NAMED:
            name = _fullname(node["name"], node.get("namespace", ns))
            if name in defined:
                raise SchemaError(f"{fullname}: {name} is defined twice")
            defined.add(name)
            inner_ns = name.rpartition(".")[0] or None
            out = {k: v for k, v in node.items() if k != "namespace"}
            out["name"] = name
            if kind in ("record", "error"):
                out["fields"] = [
                    {**fld, "type": walk(fld["type"], inner_ns)} for fld in node["fields"]
                ]
            return out
        if kind == "array":
            return {**node, "items": walk(node["items"], ns)}
        if kind == "map":
            return {**node, "values": walk(node["values"], ns)}
        if isinstance(kind, (dict, list)) or (isinstance(kind, str) and kind not in _PRIMITIVES):
            return {**node, "type": walk(kind, ns)}  # {"type": "billy.v1.Charge"} and the like
        return dict(node)

    out = walk(fullname, None)
    if not isinstance(out, dict):
        raise SchemaError(f"{fullname}: not a named type")
    return out


def _record(schema_json: dict[str, Any], *, version: int | None, origin: Path) -> RecordSchema:
    try:
        canonical = to_parsing_canonical_form(schema_json)
        parsed = parse_schema(schema_json, named_schemas={})
        parsed_plain = parse_schema(_without_logical_types(schema_json), named_schemas={})
    except Exception as exc:  # fastavro raises several kinds for a bad schema
        raise SchemaError(f"{origin}: {exc}") from exc
    if not isinstance(parsed, dict) or not isinstance(parsed_plain, dict):
        raise SchemaError(f"{origin}: must hold one named type (a record)")
    fullname = parsed.get("name")
    if not isinstance(fullname, str):
        raise SchemaError(f"{origin}: must hold one named type (a record)")
    return RecordSchema(
        name=fullname.rsplit(".", 1)[-1],
        fullname=fullname,
        version=version,
        json=schema_json,
        canonical=canonical,
        fingerprint=crc64_avro(canonical),
        parsed=parsed,
        parsed_plain=parsed_plain,
    )


def _claim(by_fingerprint: dict[bytes, RecordSchema], rec: RecordSchema) -> None:
    other = by_fingerprint.get(rec.fingerprint)
    if other is not None and other.name != rec.name:
        # 2^-64 per pair; cheap to rule out rather than decode one record as another.
        raise SchemaError(
            f"{rec.fullname} and {other.fullname} share fingerprint {rec.fingerprint_hex}"
        )
    by_fingerprint[rec.fingerprint] = rec


def _without_logical_types(node: Any) -> Any:
    if isinstance(node, list):
        return [_without_logical_types(n) for n in node]
    if not isinstance(node, dict):
        return node
    if "logicalType" in node and node.get("type") in _PRIMITIVES:
        return node["type"]
    out = dict(node)
    for key in ("type", "items", "values"):
        if key in out and not isinstance(out[key], str):
            out[key] = _without_logical_types(out[key])
    if "fields" in out:
        out["fields"] = [_without_logical_types(f) for f in out["fields"]]
    return out


def _fullname(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SchemaError(f"{path}: {exc}") from exc
