"""What the engine hands a handler: a Kafka record as plain data, and the poison verdict.

Both are immutable values; a handler's `decode` turns a `Record` into its own item type or
a `Poison` naming the field and the reason. Nothing here touches Kafka or PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

Header = tuple[str, bytes | None]


@dataclass(slots=True, init=False, unsafe_hash=True)
class Record:
    """One consumed record: where it came from and its raw bytes, exactly as read."""

    # A hot-path value: explicit __init__, Final fields (billy_core.compiled, "Values").
    topic: Final[str]
    partition: Final[int]
    offset: Final[int]
    timestamp_ms: Final[int]  # -1 when the record has none
    key: Final[bytes | None]
    value: Final[bytes | None]
    headers: Final[tuple[Header, ...]]

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        timestamp_ms: int,
        key: bytes | None,
        value: bytes | None,
        headers: tuple[Header, ...] = (),
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp_ms = timestamp_ms
        self.key = key
        self.value = value
        self.headers = headers


@dataclass(frozen=True, slots=True)
class Poison:
    """A record no handler can act on (undecodable, key mismatch...): it goes to the DLQ.

    `reason` starts with the field it is about (`value: ...`, `key: ...`) and never quotes
    more than a short, escaped prefix of the bad data.
    """

    record: Record
    reason: str
