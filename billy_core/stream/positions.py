"""Stored input positions: where each (group, topic, partition) resumes, in PostgreSQL.

A batch is applied only from where its consumer believes the stored position is; the
compare-and-set at the end of the batch's transaction proves it. A consumer that lost the
partition (a zombie) finds the position moved and writes nothing (`OffsetConflict`).
`outbox_seq` is the partition's outbox shard sequence, moved by the same compare-and-set.

A resume request (`billy resume-partition`) is a position too: the row of the group
`<group>#resume` for the partition says below which offset the poison cap is off, so a
partition paused by a flood applies or dead-letters every record up to there and goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from billy_core.errors import OffsetConflict

__all__ = [
    "RESUME_SUFFIX",
    "OffsetConflict",
    "Position",
    "advance",
    "advance_all",
    "claim",
    "lock",
    "lock_all",
    "request_resume",
    "resume_requests",
]

RESUME_SUFFIX = "#resume"  # the group whose positions are resume requests (module doc)


@dataclass(frozen=True, slots=True)
class Position:
    next_offset: int
    outbox_seq: int


def claim(conn: psycopg.Connection, group: str, topic: str, partition: int) -> Position:
    """The stored position of a partition, creating it at 0 on first sight. Commits."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset)"
            " VALUES (%s, %s, %s, 0) ON CONFLICT DO NOTHING",
            (group, topic, partition),
        )
        cur.execute(
            "SELECT next_offset, outbox_seq FROM consumer_offsets"
            " WHERE consumer_group = %s AND topic = %s AND partition = %s",
            (group, topic, partition),
        )
        row = cur.fetchone()
    assert row is not None  # inserted just above, in this transaction
    return Position(row[0], row[1])


def lock(cur: psycopg.Cursor, group: str, topic: str, partition: int, expected: int) -> Position:
    """Lock the partition's row; raise OffsetConflict unless it still says `expected`."""
    return lock_all(cur, group, [(topic, partition, expected)])[(topic, partition)]


def lock_all(
    cur: psycopg.Cursor, group: str, expected: Sequence[tuple[str, int, int]]
) -> dict[tuple[str, int], Position]:
    """Lock the rows of several partitions, each (topic, partition, expected offset), in one
    statement; raise OffsetConflict unless every one still says what was expected. Rows
    are locked in (topic, partition) order (ORDER BY runs before FOR UPDATE), so two
    transactions never wait on each other in a cycle."""
    cur.execute(
        "SELECT c.topic, c.partition, c.next_offset, c.outbox_seq FROM consumer_offsets c"
        " JOIN unnest(%b::text[], %b::int[]) AS k(topic, partition)"
        " ON c.topic = k.topic AND c.partition = k.partition"
        " WHERE c.consumer_group = %b ORDER BY c.topic, c.partition FOR UPDATE OF c",
        ([t for t, _, _ in expected], [p for _, p, _ in expected], group),
    )
    found = {(str(t), int(p)): Position(o, s) for t, p, o, s in cur.fetchall()}
    for topic, partition, offset in expected:
        at = found.get((topic, partition))
        if at is None or at.next_offset != offset:
            raise OffsetConflict(
                f"{topic}/{partition}: stored offset is {at and at.next_offset}, this consumer"
                f" expected {offset}"
            )
    return found


def advance(
    cur: psycopg.Cursor, group: str, topic: str, partition: int, before: Position, after: Position
) -> None:
    """The compare-and-set that commits a batch: it only moves from where it was locked."""
    advance_all(cur, group, [(topic, partition, before, after)])


def advance_all(
    cur: psycopg.Cursor, group: str, moves: Sequence[tuple[str, int, Position, Position]]
) -> None:
    """`advance` for several partitions, each (topic, partition, before, after), in one
    statement: every row moves from where it was locked, or OffsetConflict."""
    cur.execute(
        "UPDATE consumer_offsets c SET next_offset = m.next_offset,"
        " outbox_seq = m.outbox_seq, updated_at = now()"
        " FROM unnest(%b::text[], %b::int[], %b::bigint[], %b::bigint[], %b::bigint[],"
        " %b::bigint[]) AS m(topic, partition, next_offset, outbox_seq, was_offset, was_seq)"
        " WHERE c.consumer_group = %b AND c.topic = m.topic AND c.partition = m.partition"
        " AND c.next_offset = m.was_offset AND c.outbox_seq = m.was_seq",
        (
            [m[0] for m in moves],
            [m[1] for m in moves],
            [m[3].next_offset for m in moves],
            [m[3].outbox_seq for m in moves],
            [m[2].next_offset for m in moves],
            [m[2].outbox_seq for m in moves],
            group,
        ),
    )
    if cur.rowcount != len(moves):
        where = ", ".join(f"{t}/{p}" for t, p, _, _ in moves)
        raise OffsetConflict(f"{where}: a stored offset moved during the batch")


def request_resume(
    conn: psycopg.Connection, group: str, topic: str, partition: int, through_offset: int
) -> int:
    """Ask the engine owning the partition to lift its poison cap below `through_offset`
    (never lowers an earlier request). Returns the offset now in force. Commits."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (consumer_group, topic, partition) DO UPDATE"
            " SET next_offset = greatest(consumer_offsets.next_offset, excluded.next_offset),"
            " updated_at = now() RETURNING next_offset",
            (group + RESUME_SUFFIX, topic, partition, through_offset),
        )
        row = cur.fetchone()
    assert row is not None  # an upsert with RETURNING returns its row
    return int(row[0])


def resume_requests(conn: psycopg.Connection, group: str) -> dict[tuple[str, int], int]:
    """Every partition's resume request of `group`: (topic, partition) -> through offset."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "SELECT topic, partition, next_offset FROM consumer_offsets WHERE consumer_group = %s",
            (group + RESUME_SUFFIX,),
        )
        return {(str(t), int(p)): int(o) for t, p, o in cur.fetchall()}
