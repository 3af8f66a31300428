"""What the engine hands a handler: a Kafka record as plain data, and the poison verdict.

Both are immutable values; a handler's `decode` turns a `Record` into its own item type or
a `Poison` naming the field and the reason. Nothing here touches Kafka or PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass

Header = tuple[str, bytes | None]


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed record: where it came from and its raw bytes, exactly as read."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int  # -1 when the record has none
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...] = ()


@dataclass(frozen=True, slots=True)
class Poison:
    """A record no handler can act on (undecodable, key mismatch...): it goes to the DLQ.

    `reason` starts with the field it is about (`value: ...`, `key: ...`) and never quotes
    more than a short, escaped prefix of the bad data.
    """

    record: Record
    reason: str
