"""From a Kafka record to a command, or to a named reason why it is poison.

Poison (goes to the DLQ): bytes that do not decode as a `billy.v1.Command`, an empty value,
a key that does not match `client_id`, a record without a timestamp, a `command_id` or
`client_id` with control characters (no result could be stored under it). A command that
decodes but has a bad value (a zero amount, an unknown currency) is not poison: it gets a
REJECTED `invalid` result naming the field, like any other business rejection.
"""

from __future__ import annotations

from dataclasses import dataclass

from billy_core.codec import DecodeError, decode_command
from billy_core.commands import Command, InvalidCommand, has_control_chars, validate
from billy_core.kafka.topics import ADMIN_TENANT, TopicNames
from billy_core.stream import Poison, Record


@dataclass(frozen=True, slots=True)
class Decoded:
    record: Record
    tenant: str
    admin: bool
    command: Command
    invalid: str | None  # why validation failed, or None when the command is sound


def decode(record: Record, topics: TopicNames, tenants: frozenset[str]) -> Decoded | Poison:
    """Never raises for bad input: every record becomes Decoded or Poison."""
    topic_tenant = topics.tenant_of(record.topic)
    if topic_tenant is None:
        return Poison(record, f"topic: {record.topic!r} is not a billy commands topic")
    if record.timestamp_ms < 0:
        # Hold expiry is decided by the record's timestamp; without one it cannot be.
        return Poison(record, "timestamp: the record has none")
    if record.value is None:
        return Poison(record, "value: empty (a tombstone is not a command)")
    try:
        command = decode_command(record.value)
    except DecodeError as exc:
        return Poison(record, f"value: {exc}")
    try:
        key = record.key.decode("utf-8") if record.key is not None else None
    except UnicodeDecodeError:
        return Poison(record, "key: not UTF-8")
    admin = topic_tenant == ADMIN_TENANT
    if admin:
        # The admin topic carries every tenant's clients: the key names both.
        tenant, _, client_id = (key or "").partition("/")
        if tenant not in tenants:
            return Poison(record, f"key: {key!r} must be '<tenant>/<client id>' of a known tenant")
    else:
        tenant, client_id = topic_tenant, key
    if client_id != command.client_id:
        return Poison(record, "key: does not match the command's client_id")
    for name, value in (("command_id", command.command_id), ("client_id", command.client_id)):
        if has_control_chars(value):
            # Not even a rejection can be stored under it (PostgreSQL text has no NUL).
            return Poison(record, f"{name}: contains control characters")
    try:
        validate(command, admin=admin)
        invalid = None
    except InvalidCommand as exc:
        invalid = str(exc)
    return Decoded(record, tenant, admin, command, invalid)
