"""The codec's exceptions: one tree, three routes.

::

    CodecError                      base of everything the codec raises on purpose
    ├── SchemaError                 schemas/ missing, unreadable or inconsistent (at start: crash)
    ├── EncodeError                 a value that does not fit its schema (a bug in billy: crash)
    ├── RegistryUnavailable         Schema Registry unreachable or failing (transient: retry)
    └── DecodeError                 bytes that can never become a value (poison: to billy.dlq)
        ├── NotSingleObject         too short, or the magic is not C3 01
        ├── NotConfluentFramed      too short, or the magic byte is not 0 (registry framing)
        ├── UnknownFingerprint      a schema fingerprint no known schema version has
        ├── UnknownSchemaId         a registry schema id the registry does not know
        ├── CorruptBody             fastavro failed on the body, or bytes are left after it
        └── WrongSchema             decodable, but not the record the caller asked for

Only `DecodeError` (and its subclasses) means "this record is bad, move on": a consumer
sends it to the DLQ with `str(exc)` as the reason. `RegistryUnavailable` says nothing
about the record and must never send it to the DLQ. `SchemaError` and `EncodeError` are
bugs or broken deployments.
"""

from __future__ import annotations

__all__ = [
    "CodecError",
    "CorruptBody",
    "DecodeError",
    "EncodeError",
    "NotConfluentFramed",
    "NotSingleObject",
    "RegistryUnavailable",
    "SchemaError",
    "UnknownFingerprint",
    "UnknownSchemaId",
    "WrongSchema",
]


class CodecError(Exception):
    """Base of every exception the codec raises on purpose."""


class SchemaError(CodecError):
    """The schema files are missing, do not parse, or contradict each other."""


class EncodeError(CodecError):
    """A value that does not fit its schema (wrong type, missing field, long out of range)."""


class RegistryUnavailable(CodecError):
    """The Schema Registry could not be asked (network, 5xx, auth). Transient: retry."""


class DecodeError(CodecError):
    """Bytes that can never become a value of the expected kind. Route the record to the DLQ."""


class NotSingleObject(DecodeError):
    """Not Avro single-object encoding: shorter than the 10-byte header or bad magic."""


class NotConfluentFramed(DecodeError):
    """Not Confluent Schema Registry framing: shorter than 6 bytes or magic byte not 0."""


class UnknownFingerprint(DecodeError):
    """A single-object header whose fingerprint matches no known schema version."""

    def __init__(self, fingerprint: bytes) -> None:
        self.fingerprint = fingerprint
        # Shown as the 8 header bytes in wire order, the form `fastavro.schema.fingerprint`
        # and Java's SchemaNormalization.parsingFingerprint("CRC-64-AVRO", ...) produce.
        self.fingerprint_hex = fingerprint.hex()
        super().__init__(f"unknown schema fingerprint {self.fingerprint_hex}")


class UnknownSchemaId(DecodeError):
    """A Confluent-framed record whose schema id the registry does not know."""

    def __init__(self, schema_id: int) -> None:
        self.schema_id = schema_id
        super().__init__(f"unknown schema id {schema_id}")


class CorruptBody(DecodeError):
    """The header was fine but the Avro body is not: fastavro failed, or bytes remain after it."""


class WrongSchema(DecodeError):
    """A well-formed record of another type than the one asked for (e.g. a Result on a
    commands topic)."""

    def __init__(self, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"expected a {expected} record, got {actual}")


def describe(exc: BaseException, limit: int = 300) -> str:
    """`Type: message` of a library exception, cut to `limit` characters: fastavro's
    messages can quote a whole schema (tens of kB), too much for a log line or a DLQ header."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[:limit] + "..."
