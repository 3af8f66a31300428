"""Confluent Schema Registry framing, used instead of single-object encoding when a
Schema Registry URL is configured.

Wire format (Confluent "wire format")::

    00 | 4-byte big-endian schema id | Avro binary body

Encoding and decoding go through confluent-kafka's own `confluent_kafka.schema_registry`
client and its `AvroSerializer` / `AvroDeserializer`, so billy's bytes are exactly what
every Confluent client reads and writes. Subjects use the record-name strategy: the
subject of `Command` is `billy.v1.Command` on every tenant's topic, so one subject holds
the history of one record (per-topic subjects would repeat it for every tenant). The
registered schema is the self-contained one (`RecordSchema.schema_str`), no references.

Needs the `schemaregistry` extra of confluent-kafka (attrs, cachetools, authlib, httpx2);
constructing a `RegistryCodec` without it raises ImportError naming the extra.

Blocking: `encode` of a record not yet registered in this process, and `decode` of a
schema id not yet seen, make an HTTP call to the registry (the client's own timeout
applies, `timeout` in its config); the client caches both afterwards.

Errors (billy_core.codec.errors):
- NotConfluentFramed, UnknownSchemaId, WrongSchema, CorruptBody: the record is bad (DLQ);
- RegistryUnavailable: the registry could not be asked; says nothing about the record;
- EncodeError: the value does not fit its schema, or the registry refused the schema
  (404 not registered with auto-registration off, 409 incompatible, 422 invalid).

Limitation: a writer schema registered *with references* (not billy's way) has them
fetched inside confluent-kafka's deserializer; a registry failure at that moment shows
as CorruptBody rather than RegistryUnavailable.
"""

from __future__ import annotations

import json
from typing import Any

from billy_core.codec.errors import (
    CorruptBody,
    EncodeError,
    NotConfluentFramed,
    RegistryUnavailable,
    UnknownSchemaId,
    WrongSchema,
    describe,
)
from billy_core.codec.schemas import SchemaSet, schema_set

__all__ = ["CONFLUENT_MAGIC", "RegistryCodec"]

CONFLUENT_MAGIC = 0
_HEADER_LEN = 5


def _import_schema_registry() -> Any:
    try:
        from confluent_kafka import schema_registry
        from confluent_kafka.schema_registry import avro
    except ImportError as exc:
        raise ImportError(
            "the Schema Registry framing needs confluent-kafka's schemaregistry extra: "
            f"pip install 'confluent-kafka[schemaregistry]' ({exc})"
        ) from exc
    return schema_registry, avro


class RegistryCodec:
    """Encode and decode Confluent-framed billy records.

    Give either `url` (a `mock://...` URL makes confluent-kafka's in-memory mock registry)
    with optional `client_conf` (auth, timeout, ...), or a ready `client`.
    `auto_register=False` makes `encode` require that the schema is already registered
    (EncodeError otherwise), for deployments where schemas are registered by CI.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        client_conf: dict[str, Any] | None = None,
        auto_register: bool = True,
        schemas: SchemaSet | None = None,
    ) -> None:
        sr, avro = _import_schema_registry()
        self._sr = sr
        if client is None:
            if not url:
                raise ValueError("RegistryCodec needs a url or a client")
            conf = {**(client_conf or {}), "url": url}
            new_client = getattr(sr.SchemaRegistryClient, "new_client", None)
            client = new_client(conf) if new_client is not None else sr.SchemaRegistryClient(conf)
        self.client = client
        schemas = schemas if schemas is not None else schema_set()
        self._known = {rec.fullname: rec.name for rec in schemas.current.values()}
        self._serializers: dict[str, Any] = {}
        self._deserializers: dict[str, Any] = {}
        ser_conf = {
            "auto.register.schemas": auto_register,
            "subject.name.strategy": sr.record_subject_name_strategy,
        }
        for rec in schemas.current.values():
            schema = sr.Schema(rec.schema_str, "AVRO")
            ser = avro.AvroSerializer(client, schema, conf=ser_conf)
            self._serializers[rec.name] = self._serializers[rec.fullname] = ser
            # Reader schema = our current one: the deserializer resolves whatever version
            # the writer registered into it.
            self._deserializers[rec.name] = avro.AvroDeserializer(
                client,
                schema,
                return_record_name=True,
                conf={"subject.name.strategy": sr.record_subject_name_strategy},
            )

    def encode(self, record_name: str, datum: dict[str, Any]) -> bytes:
        """Frame `datum` as a `record_name` record. Raises KeyError for an unknown record
        name, EncodeError or RegistryUnavailable (see the module docstring)."""
        serializer = self._serializers[record_name]
        try:
            encoded = serializer(datum, None)
        except self._sr.SchemaRegistryError as exc:
            if exc.http_status_code in (404, 409, 422):
                # Not registered (auto-registration off), incompatible, invalid: our bug.
                raise EncodeError(f"{record_name}: schema registry refused: {exc}") from exc
            raise RegistryUnavailable(f"schema registry: {exc}") from exc
        except (ValueError, TypeError, OverflowError, AttributeError, KeyError) as exc:
            raise EncodeError(f"{record_name}: {describe(exc)}") from exc
        except Exception as exc:  # transport errors of the HTTP client
            raise RegistryUnavailable(f"schema registry: {describe(exc)}") from exc
        # AvroSerializer returns None only for a None datum, which `datum` never is.
        if not isinstance(encoded, bytes):
            raise EncodeError(f"{record_name}: the serializer returned {type(encoded).__name__}")
        return encoded

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """Return `(short record name, datum)`. timestamp-millis fields come back as aware
        datetimes here (fastavro's logical reader follows the registered writer schema);
        billy_core.codec.mapping accepts both those and int milliseconds.

        Raises NotConfluentFramed, UnknownSchemaId, WrongSchema (a schema that is not one
        of billy's records), CorruptBody, or RegistryUnavailable.
        """
        if len(data) <= _HEADER_LEN or data[0] != CONFLUENT_MAGIC:
            raise NotConfluentFramed(
                f"not Confluent framing: {len(data)} bytes starting {bytes(data[:1]).hex()}"
            )
        schema_id = int.from_bytes(data[1:_HEADER_LEN], "big")
        try:
            writer = self.client.get_schema(schema_id)  # cached by the client after the first
        except self._sr.SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise UnknownSchemaId(schema_id) from exc
            raise RegistryUnavailable(f"schema registry: {exc}") from exc
        except Exception as exc:
            raise RegistryUnavailable(f"schema registry: {describe(exc)}") from exc
        try:
            doc = json.loads(writer.schema_str)
            fullname = doc["name"] if "." in doc["name"] else f"{doc['namespace']}.{doc['name']}"
        except (ValueError, KeyError, TypeError):
            raise WrongSchema("a billy record", f"schema id {schema_id}") from None
        name = self._known.get(fullname)
        if name is None:
            raise WrongSchema("a billy record", fullname)
        try:
            return name, self._deserializers[name](bytes(data), None)
        except Exception as exc:  # fastavro's and the serde's errors alike
            raise CorruptBody(f"{name}: undecodable body: {describe(exc)}") from exc
