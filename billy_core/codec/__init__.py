"""billy's Avro codec: schemas from `schemas/`, single-object or Schema Registry framing,
and the mapping between Avro records and billy's domain values.

Most code needs only the high-level functions re-exported here::

    from billy_core.codec import encode_command, decode_command, DecodeError

    data = encode_command(command)          # EncodeError if a value cannot be carried
    try:
        command = decode_command(data)      # only the DecodeError tree for bad bytes
    except DecodeError as exc:
        ...                                 # to billy.dlq with str(exc) as the reason

Modules: `errors` (the exception tree), `schemas` (loading, fingerprints),
`single_object` and `registry` (framings), `mapping` (dicts <-> domain values),
`messages` (the high-level Codec), `compat` (schema evolution checks).
"""

from billy_core.codec.errors import (
    CodecError,
    CorruptBody,
    DecodeError,
    EncodeError,
    NotConfluentFramed,
    NotSingleObject,
    RegistryUnavailable,
    SchemaError,
    UnknownFingerprint,
    UnknownSchemaId,
    WrongSchema,
)
from billy_core.codec.mapping import AppliedService, ServiceKind, WalletSnapshot
from billy_core.codec.messages import (
    Codec,
    codec_for,
    configure,
    decode_applied_service,
    decode_command,
    decode_result,
    decode_wallet_snapshot,
    encode_applied_service,
    encode_command,
    encode_result,
    encode_wallet_snapshot,
)
from billy_core.codec.registry import RegistryCodec
from billy_core.codec.single_object import SingleObjectCodec

__all__ = [
    "AppliedService",
    "Codec",
    "CodecError",
    "CorruptBody",
    "DecodeError",
    "EncodeError",
    "NotConfluentFramed",
    "NotSingleObject",
    "RegistryCodec",
    "RegistryUnavailable",
    "SchemaError",
    "ServiceKind",
    "SingleObjectCodec",
    "UnknownFingerprint",
    "UnknownSchemaId",
    "WalletSnapshot",
    "WrongSchema",
    "codec_for",
    "configure",
    "decode_applied_service",
    "decode_command",
    "decode_result",
    "decode_wallet_snapshot",
    "encode_applied_service",
    "encode_command",
    "encode_result",
    "encode_wallet_snapshot",
]
