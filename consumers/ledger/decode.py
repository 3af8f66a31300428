"""From a Kafka record to a command, or to a named reason why it is poison. Pure.

Poison (goes to the DLQ): a value that does not decode as a `billy.v1.Command` (empty
included), a key that is not UTF-8 or does not match `client_id`, a record without a
timestamp. Everything that decodes is a command and gets a result: one with a bad value (a
zero amount, an unknown currency, an id with control characters, an Adjust for an unknown
tenant, anything but an Adjust on the admin topic) is `Decoded` with `invalid` set, and is
answered REJECTED `invalid` naming the field. Invalid commands are never written to
PostgreSQL, and nothing but a sound client id is looked up for them (their other ids may
hold bytes PostgreSQL cannot store).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from billy_core.codec import DecodeError, decode_command
from billy_core.commands import Command, InvalidCommand, validate
from billy_core.kafka.topics import ADMIN_TENANT, TopicNames
from billy_core.stream import Poison, Record
from billy_core.text import echo

__all__ = ["Decoded", "decode", "echo"]


@dataclass(slots=True, init=False, unsafe_hash=True)
class Decoded:
    # A hot-path value: explicit __init__, Final fields (billy_core.compiled, "Values").
    record: Final[Record]
    tenant: Final[str]  # whose client: the topic's tenant, or the admin key's first part
    admin: Final[bool]
    command: Final[Command]
    invalid: Final[str | None]  # why validation failed, or None when the command is sound

    def __init__(
        self,
        record: Record,
        tenant: str,
        admin: bool,
        command: Command,
        invalid: str | None,
    ) -> None:
        self.record = record
        self.tenant = tenant
        self.admin = admin
        self.command = command
        self.invalid = invalid

    @property
    def client_sound(self) -> bool:
        """Whether the client can be looked up: its id (and tenant) passed validation, so an
        invalid command is still answered with the wallet's figures."""
        return self.invalid is None or not self.invalid.startswith(("client_id:", "key:"))

    @property
    def namespace(self) -> str:
        """Where the command_id is unique: the tenant, or the admin topic's own space."""
        return ADMIN_TENANT if self.admin else self.tenant


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
    tenant, client_id = topic_tenant, key
    if admin:
        # The admin topic carries every tenant's clients: the key names both.
        tenant, _, client_id = (key or "").partition("/")
    if client_id != command.client_id:
        return Poison(record, "key: does not match the command's client_id")
    invalid = None
    if admin and tenant not in tenants:
        invalid = f"key: the tenant {echo(tenant)} is not one of billy's tenants"
    else:
        try:
            validate(command, admin=admin)
        except InvalidCommand as exc:
            invalid = str(exc)
    return Decoded(record, tenant, admin, command, invalid)
