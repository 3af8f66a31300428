"""Avro single-object encoding, billy's default framing (no registry needed).

Wire format (Avro spec, "Single-object encoding")::

    C3 01 | 8-byte CRC-64-AVRO fingerprint of the writer schema's canonical form,
          |   little-endian | Avro binary body

A JVM service reads and writes the same bytes with Avro's `BinaryMessageEncoder` /
`BinaryMessageDecoder` given the self-contained schema (`RecordSchema.schema_str`).

Values are the dicts fastavro reads and writes, with two conventions:

- timestamp-millis fields decode as int milliseconds since the epoch (exact, no datetime
  range limits); encode takes ints (or timezone-aware datetimes);
- a union of records decodes as a `(full record name, dict)` tuple, e.g.
  `("billy.v1.Charge", {...})`, and encodes from the same tuple.

Decoding a record written with an older schema version (any `schemas/history` file)
reads it with the current schema (Avro schema resolution), so fields added since then
come back with their defaults.

Thread-safe: a codec holds only immutable, precomputed schemas.
"""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from billy_core.codec.errors import (
    CorruptBody,
    EncodeError,
    NotSingleObject,
    UnknownFingerprint,
    describe,
)
from billy_core.codec.flat_reader import FlatReader, Unreadable, compile_reader
from billy_core.codec.flat_writer import Unsupported, compile_flat
from billy_core.codec.schemas import SchemaSet, schema_set

__all__ = ["HEADER_LEN", "MAGIC", "SingleObjectCodec", "decode", "default_codec", "encode"]

MAGIC = b"\xc3\x01"
HEADER_LEN = 10


class SingleObjectCodec:
    """Encode and decode single-object framed records of one schema set."""

    __slots__ = ("_compiled", "_readers", "_writers")

    def __init__(self, schemas: SchemaSet | None = None) -> None:
        schemas = schemas if schemas is not None else schema_set()
        # name (short and full) -> (header, parsed schema): built once, so the hot path does
        # no schema work at all.
        self._writers: dict[str, tuple[bytes, dict[str, Any]]] = {}
        # name -> a compiled writer of the same bytes, for the flat records (the ledger's
        # outputs): fastavro stays the writer of everything else and the judge of bad data.
        self._compiled: dict[str, Callable[[dict[str, Any]], bytes]] = {}
        for rec in schemas.current.values():
            entry = (MAGIC + rec.fingerprint, rec.parsed)
            self._writers[rec.name] = entry
            self._writers[rec.fullname] = entry
            compiled = compile_flat(rec.json, entry[0])
            if compiled is not None:
                self._compiled[rec.name] = self._compiled[rec.fullname] = compiled
        # fingerprint -> (short name, writer schema, reader schema or None when identical,
        # a compiled reader when the version is current and its schema compiles: the
        # Command, the ledger's input; fastavro reads the rest and judges bad bytes)
        self._readers: dict[
            bytes, tuple[str, dict[str, Any], dict[str, Any] | None, FlatReader | None]
        ] = {}
        for fp, writer in schemas.by_fingerprint.items():
            current = schemas.current.get(writer.name)
            if current is None:
                continue  # a record that no longer exists: its bytes are undecodable now
            same = current.fingerprint == fp
            reader = None if same else current.parsed_plain
            self._readers[fp] = (
                writer.name,
                current.parsed_plain if same else writer.parsed_plain,
                reader,
                compile_reader(current.json) if same else None,
            )

    def encode(self, record_name: str, datum: dict[str, Any]) -> bytes:
        """Frame `datum` as a `record_name` ("Command" or "billy.v1.Command") record.

        Raises KeyError for an unknown record name and EncodeError when `datum` does not
        fit the schema (missing or extra field, wrong type, long out of range).
        """
        compiled = self._compiled.get(record_name)
        if compiled is not None:
            try:
                return compiled(datum)
            except Unsupported:
                pass  # fastavro writes it, or says what is wrong with it
        header, parsed = self._writers[record_name]
        out = BytesIO()
        out.write(header)
        try:
            schemaless_writer(out, parsed, datum, strict_allow_default=True)
        except Exception as exc:  # fastavro raises ValueError, TypeError, OverflowError, ...
            raise EncodeError(f"{record_name}: {describe(exc)}") from exc
        return out.getvalue()

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """Return `(short record name, datum)` for single-object framed `data`.

        Raises NotSingleObject (shorter than 10 bytes or bad magic), UnknownFingerprint
        (no known schema version has it) or CorruptBody (fastavro failed on the body, or
        bytes remain after it): all subclasses of DecodeError. Never raises anything else
        for any input bytes.
        """
        if len(data) < HEADER_LEN or data[:2] != MAGIC:
            raise NotSingleObject(
                f"not Avro single-object encoding: {len(data)} bytes, "
                f"starting {bytes(data[:2]).hex() or '(nothing)'}"
            )
        fp = bytes(data[2:HEADER_LEN])
        found = self._readers.get(fp)
        if found is None:
            raise UnknownFingerprint(fp)
        name, writer, reader, flat = found
        if flat is not None:
            try:
                return name, flat.read(data, HEADER_LEN)
            except Unreadable:
                pass  # fastavro reads it, or says what is wrong with it
        body = BytesIO(data)
        body.seek(HEADER_LEN)
        try:
            datum = schemaless_reader(
                body, writer, reader, return_record_name=True, return_record_name_override=True
            )
        except Exception as exc:  # EOFError, UnicodeDecodeError, IndexError, ValueError, ...
            raise CorruptBody(f"{name}: undecodable body: {describe(exc)}") from exc
        left = len(data) - body.tell()
        if left:
            raise CorruptBody(f"{name}: {left} bytes after the record")
        if not isinstance(datum, dict):  # a record schema always reads a dict
            raise CorruptBody(f"{name}: decoded to {type(datum).__name__}, not a record")
        return name, datum


_default: SingleObjectCodec | None = None


def default_codec() -> SingleObjectCodec:
    """The process-wide codec over `schema_set()`, built on first use. Raises SchemaError."""
    global _default
    if _default is None:
        _default = SingleObjectCodec()
    return _default


def encode(record_name: str, datum: dict[str, Any]) -> bytes:
    """`default_codec().encode`: see SingleObjectCodec.encode for what may be raised."""
    return default_codec().encode(record_name, datum)


def decode(data: bytes) -> tuple[str, dict[str, Any]]:
    """`default_codec().decode`: raises only DecodeError subclasses for bad bytes."""
    return default_codec().decode(data)
