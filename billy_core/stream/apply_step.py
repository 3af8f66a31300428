"""The apply step: partition batches in one PostgreSQL transaction, exactly once.

    lock the stored positions (compare-and-set base)
    dead-letter the poison, let the handler answer it if it must
    handler.apply(cur, batch, outbox)
    write the outboxes
    advance the stored positions (compare-and-set)     -> commit

Usually one partition's batch; small batches of several partitions of one topic share one
transaction when the handler allows it (`Handler.mergeable`): the handler gets their items
in one batch and a `MergedOutbox` (an outbox, a shard and a position per partition).

A consumer that lost a partition finds its position moved: `OffsetConflict`, nothing
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
from billy_core.stream.outbox import MergedOutbox, Outbox
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
    return apply_batches(conn, handler, deployment, dlq_topic, [work])[0]


def apply_batches(
    conn: psycopg.Connection,
    handler: Handler[Item],
    deployment: str,
    dlq_topic: str,
    works: Sequence[PartitionWork[Item]],
) -> list[Committed]:
    """Apply and commit batches of distinct partitions (several only of one topic, for a
    `mergeable` handler) in one transaction; a Committed per work, in order, the handler's
    summary on the first. Raises OffsetConflict (nothing written) when any position moved."""
    with conn.transaction(), conn.cursor() as cur:
        # One statement each for every partition's lock, outbox rows and compare-and-set:
        # a merged transaction of twelve partitions costs three round trips, not 36.
        before = positions.lock_all(
            cur, handler.group, [(w.topic, w.partition, w.expected_offset) for w in works]
        )
        boxes: list[Outbox] = []
        for work in works:
            tp = (work.topic, work.partition)
            box = outbox.Outbox(deployment, f"{work.topic}/{work.partition}", before[tp].outbox_seq)
            for poison in work.poison:
                dlq.dead_letter(box, dlq_topic, poison)
                handler.answer_poison(poison, box)
            boxes.append(box)
        first = works[0]
        if len(works) == 1:
            batch = Batch(first.topic, first.partition, first.items, first.poison)
            sink = boxes[0]
        else:
            items = [item for w in works for item in w.items]
            batch = Batch(first.topic, -1, items, [p for w in works for p in w.poison])
            sink = MergedOutbox(
                {(w.topic, w.partition): b for w, b in zip(works, boxes, strict=True)}
            )
        summary = handler.apply(cur, batch, sink) if batch.items else Summary()
        outbox.write(cur, *boxes)
        pairs = list(zip(works, boxes, strict=True))
        ends = [positions.Position(w.last_offset + 1, box.seq) for w, box in pairs]
        positions.advance_all(
            cur,
            handler.group,
            [
                (w.topic, w.partition, before[(w.topic, w.partition)], end)
                for w, end in zip(works, ends, strict=True)
            ],
        )
        done = [
            Committed(end.next_offset, Summary(), len(w.poison), len(box))
            for (w, box), end in zip(pairs, ends, strict=True)
        ]
    done[0] = Committed(done[0].next_offset, summary, done[0].poison, done[0].outputs)
    return done


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
