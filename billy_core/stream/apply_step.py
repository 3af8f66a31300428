"""The apply step: one partition batch in one PostgreSQL transaction, exactly once.

    lock the stored position (compare-and-set base)
    dead-letter the poison, let the handler answer it if it must
    handler.apply(cur, batch, outbox)
    write the outbox
    advance the stored position (compare-and-set)      -> commit

A consumer that lost the partition finds the position moved: `OffsetConflict`, nothing
written. Any other exception rolls everything back and propagates to the engine.

`dead_letter_alone` is the engine's way past a record PostgreSQL refuses for good: that one
record is dead-lettered (and answered, if its handler answers poison) in a transaction of
its own that also moves the position past it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic

import psycopg

from billy_core.stream import dlq, outbox, positions
from billy_core.stream.handler import Batch, Handler, Item, Summary
from billy_core.stream.record import Poison, Record


@dataclass(frozen=True, slots=True)
class Committed:
    """A committed batch: where the partition resumes, and what the handler reports."""

    next_offset: int
    summary: Summary
    poison: int
    outputs: int


@dataclass(frozen=True, slots=True)
class PartitionWork(Generic[Item]):
    topic: str
    partition: int
    expected_offset: int  # where this consumer believes the stored position is
    last_offset: int  # the batch's last record, decoded or poison
    items: Sequence[Item]
    poison: Sequence[Poison]
    last_timestamp_ms: int = -1  # for the end-to-end latency metric
    # Every record of the batch with what it decoded to, in offset order: the engine
    # re-applies them one per transaction when PostgreSQL refuses the batch for good.
    entries: Sequence[tuple[Record, Item | Poison]] = ()

    def part(
        self, expected_offset: int, entries: Sequence[tuple[Record, Item | Poison]]
    ) -> PartitionWork[Item]:
        """The work of some of this batch's records (consecutive, in order), from
        `expected_offset`: how the engine re-applies a refused batch in smaller pieces."""
        return PartitionWork(
            self.topic,
            self.partition,
            expected_offset,
            entries[-1][0].offset,
            [i for _, i in entries if not isinstance(i, Poison)],
            [i for _, i in entries if isinstance(i, Poison)],
            entries[-1][0].timestamp_ms,
            entries,
        )


def apply_batch(
    conn: psycopg.Connection,
    handler: Handler[Item],
    deployment: str,
    dlq_topic: str,
    work: PartitionWork[Item],
) -> Committed:
    """Apply and commit one partition batch. Raises OffsetConflict (nothing written)."""
    with conn.transaction(), conn.cursor() as cur:
        before = positions.lock(
            cur, handler.group, work.topic, work.partition, work.expected_offset
        )
        box = outbox.Outbox(deployment, f"{work.topic}/{work.partition}", before.outbox_seq)
        for poison in work.poison:
            dlq.dead_letter(box, dlq_topic, poison)
            handler.answer_poison(poison, box)
        summary = (
            handler.apply(cur, Batch(work.topic, work.partition, work.items, work.poison), box)
            if work.items
            else Summary()
        )
        outbox.write(cur, box)
        after = positions.Position(work.last_offset + 1, box.seq)
        positions.advance(cur, handler.group, work.topic, work.partition, before, after)
    return Committed(after.next_offset, summary, len(work.poison), len(box))


def dead_letter_alone(
    conn: psycopg.Connection,
    handler: Handler[Item],
    deployment: str,
    dlq_topic: str,
    work: PartitionWork[Item],
    culprit: Poison,
) -> Committed:
    """Dead-letter one record (`work` is its single-record work) instead of applying it, and
    move the position past it, in one transaction. Raises OffsetConflict (nothing written)."""
    with conn.transaction(), conn.cursor() as cur:
        before = positions.lock(
            cur, handler.group, work.topic, work.partition, work.expected_offset
        )
        box = outbox.Outbox(deployment, f"{work.topic}/{work.partition}", before.outbox_seq)
        dlq.dead_letter(box, dlq_topic, culprit)
        handler.answer_poison(culprit, box)
        outbox.write(cur, box)
        after = positions.Position(work.last_offset + 1, box.seq)
        positions.advance(cur, handler.group, work.topic, work.partition, before, after)
    return Committed(after.next_offset, Summary(), 1, len(box))
