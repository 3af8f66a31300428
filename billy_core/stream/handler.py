"""The handler protocol: what a consumer supplies to the engine.

A handler is two pure-ish steps around the engine's machinery:

    decode(record) -> item | Poison            pure: no I/O, never raises for bad input
    apply(cur, items, outbox) -> summary       inside the partition's transaction

`apply` runs inside a PostgreSQL transaction the engine opened, after the engine locked the
partition's stored position and before it writes the outbox and moves the position
(compare-and-set). It must not commit, sleep or touch the network; it may raise
`InvariantViolation` (nothing commits, the process stops) or let a psycopg error propagate
(the engine classifies it: transient trouble is retried; a value PostgreSQL refuses for good
makes the engine apply the batch again in pieces and dead-letter the record that carries it,
so `apply` must give the same outcome for a record whatever batch it comes in).

Poison never reaches `apply`: the engine dead-letters it. A handler that owes an answer
even for poison (the admin topic does) implements `answer_poison`.

A handler may let the engine apply small batches of several partitions of one topic in one
transaction (`mergeable`): a poll spread thin over many partitions then costs one
transaction, not one per partition. Its `apply` gets their items in one batch (each
partition's in offset order) and a `MergedOutbox`, and sends every output through
`outbox.at(record)` with the record the output belongs to (each partition keeps its shard).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import psycopg

from billy_core.stream.outbox import Outbox
from billy_core.stream.record import Poison, Record

Item = TypeVar("Item")
ItemT_co = TypeVar("ItemT_co", covariant=True)


@dataclass(frozen=True, slots=True)
class Summary:
    """What a batch did, for metrics after the commit (never before: a rolled-back batch
    counted nothing). `outcomes` are (label, label) pairs the handler counts itself."""

    outcomes: tuple[tuple[str, str], ...] = ()
    duplicates: int = 0


@dataclass(frozen=True, slots=True)
class Batch(Generic[Item]):
    """One partition's records of one poll, in offset order, as the handler sees them."""

    topic: str
    partition: int  # -1: several partitions of `topic`, merged (`Handler.mergeable`)
    items: Sequence[Item]
    poison: Sequence[Poison] = field(default_factory=tuple)


class Handler(Protocol[Item]):
    name: str  # the role: metric label, log name, thread names
    group: str  # the consumer group, also the key of the stored positions

    def subscription(self) -> list[str]:
        """Topic names or `^regex` patterns to subscribe to."""
        ...

    def decode(self, record: Record) -> Item | Poison:
        """Pure; never raises for bad input."""
        ...

    def apply(self, cur: psycopg.Cursor, batch: Batch[Item], outbox: Outbox) -> Summary:
        """Apply a batch inside the caller's transaction. No commit, no sleep, no network."""
        ...

    def mergeable(self, topic: str) -> bool:
        """Whether batches of several of `topic`'s partitions may share a transaction
        (then `apply` routes outputs with `outbox.at(record)`)."""
        ...

    def answer_poison(self, poison: Poison, outbox: Outbox) -> None:
        """Optional answer for a dead-lettered record (besides the DLQ copy)."""
        ...

    def observe(self, topic: str, summary: Summary) -> None:
        """Count a committed batch's outcomes in the handler's own metrics."""
        ...
