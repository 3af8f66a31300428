"""The codec as the rest of billy uses it: domain values <-> Kafka value bytes.

`Codec` combines a framing (single-object by default, Confluent Schema Registry when a
registry URL is configured) with billy_core.codec.mapping. The module-level functions
use one process-wide single-object `Codec`.

Every `decode_*` raises only DecodeError subclasses for bad bytes (plus
RegistryUnavailable with the registry framing): NotSingleObject / NotConfluentFramed,
UnknownFingerprint / UnknownSchemaId, CorruptBody, and WrongSchema when the bytes are a
well-formed record of another type (a Result on a commands topic). Decoding does not
validate business rules: `billy_core.commands.validate` does, and its failures are
REJECTED results, not DLQ entries.

Every `encode_*` raises EncodeError for a value its schema cannot carry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from billy_core.codec import mapping
from billy_core.codec.errors import CorruptBody, DecodeError, WrongSchema
from billy_core.codec.mapping import AppliedService, WalletSnapshot
from billy_core.codec.single_object import default_codec
from billy_core.commands import Command
from billy_core.results import Result

__all__ = [
    "Codec",
    "Framing",
    "codec_for",
    "configure",
    "decode_applied_service",
    "decode_command",
    "decode_result",
    "decode_wallet_snapshot",
    "default",
    "encode_applied_service",
    "encode_command",
    "encode_result",
    "encode_wallet_snapshot",
]

_T = TypeVar("_T")


class Framing(Protocol):
    """What a Codec needs from a framing: SingleObjectCodec and RegistryCodec fit."""

    def encode(self, record_name: str, datum: dict[str, Any]) -> bytes: ...

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]]: ...


class Codec:
    """Domain values <-> bytes over one framing. Thread-safe when the framing is."""

    __slots__ = ("framing",)

    def __init__(self, framing: Framing | None = None) -> None:
        self.framing = framing if framing is not None else default_codec()

    def encode_command(self, command: Command) -> bytes:
        return self.framing.encode("Command", mapping.command_to_avro(command))

    def decode_command(self, data: bytes) -> Command:
        return self._decode(data, "Command", mapping.command_from_avro)

    def encode_result(self, result: Result) -> bytes:
        return self.framing.encode("Result", mapping.result_to_avro(result))

    def decode_result(self, data: bytes) -> Result:
        return self._decode(data, "Result", mapping.result_from_avro)

    def encode_applied_service(self, line: AppliedService) -> bytes:
        return self.framing.encode("AppliedService", mapping.applied_service_to_avro(line))

    def decode_applied_service(self, data: bytes) -> AppliedService:
        return self._decode(data, "AppliedService", mapping.applied_service_from_avro)

    def encode_wallet_snapshot(self, snapshot: WalletSnapshot) -> bytes:
        return self.framing.encode("WalletSnapshot", mapping.wallet_snapshot_to_avro(snapshot))

    def decode_wallet_snapshot(self, data: bytes) -> WalletSnapshot:
        return self._decode(data, "WalletSnapshot", mapping.wallet_snapshot_from_avro)

    def _decode(self, data: bytes, expected: str, from_avro: Callable[[dict[str, Any]], _T]) -> _T:
        name, datum = self.framing.decode(data)
        if name != expected:
            raise WrongSchema(expected, name)
        try:
            return from_avro(datum)
        except DecodeError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            # Cannot happen for data the current schema decoded; kept so that a decode
            # never escapes the DecodeError tree (the consumer's DLQ route relies on it).
            raise CorruptBody(f"{expected}: {type(exc).__name__}: {exc}") from exc


def codec_for(registry_url: str | None = None, **registry_options: Any) -> Codec:
    """A Codec with single-object framing, or with registry framing when `registry_url` is
    set (`registry_options` go to RegistryCodec). Raises ImportError when the registry is
    asked for without confluent-kafka's schemaregistry extra, SchemaError for bad schemas.
    """
    if not registry_url:
        return Codec()
    from billy_core.codec.registry import RegistryCodec

    return Codec(RegistryCodec(registry_url, **registry_options))


_default: Codec | None = None


def default() -> Codec:
    """The process-wide single-object Codec, built on first use. Raises SchemaError."""
    global _default
    if _default is None:
        _default = Codec()
    return _default


def configure(registry_url: str | None) -> Codec:
    """Choose the process-wide framing once, at start: the registry's when a URL is set."""
    global _default
    _default = codec_for(registry_url)
    return _default


def encode_command(command: Command) -> bytes:
    """Single-object bytes of `command`. Raises EncodeError."""
    return default().encode_command(command)


def decode_command(data: bytes) -> Command:
    """The Command in single-object `data`. Raises the DecodeError tree only."""
    return default().decode_command(data)


def encode_result(result: Result) -> bytes:
    """Single-object bytes of `result`. Raises EncodeError."""
    return default().encode_result(result)


def decode_result(data: bytes) -> Result:
    """The Result in single-object `data`. Raises the DecodeError tree only."""
    return default().decode_result(data)


def encode_applied_service(line: AppliedService) -> bytes:
    """Single-object bytes of `line`. Raises EncodeError."""
    return default().encode_applied_service(line)


def decode_applied_service(data: bytes) -> AppliedService:
    """The AppliedService in single-object `data`. Raises the DecodeError tree only."""
    return default().decode_applied_service(data)


def encode_wallet_snapshot(snapshot: WalletSnapshot) -> bytes:
    """Single-object bytes of `snapshot`. Raises EncodeError."""
    return default().encode_wallet_snapshot(snapshot)


def decode_wallet_snapshot(data: bytes) -> WalletSnapshot:
    """The WalletSnapshot in single-object `data`. Raises the DecodeError tree only."""
    return default().decode_wallet_snapshot(data)
