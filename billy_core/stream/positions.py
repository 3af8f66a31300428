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

from dataclasses import dataclass

import psycopg

from billy_core.errors import OffsetConflict

__all__ = [
    "RESUME_SUFFIX",
    "OffsetConflict",
    "Position",
    "advance",
    "claim",
    "lock",
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
    cur.execute(
        "SELECT next_offset, outbox_seq FROM consumer_offsets"
        " WHERE consumer_group = %s AND topic = %s AND partition = %s FOR UPDATE",
        (group, topic, partition),
    )
    row = cur.fetchone()
    if row is None or row[0] != expected:
        raise OffsetConflict(
            f"{topic}/{partition}: stored offset is {row and row[0]}, this consumer expected"
            f" {expected}"
        )
    return Position(row[0], row[1])


def advance(
    cur: psycopg.Cursor, group: str, topic: str, partition: int, before: Position, after: Position
) -> None:
    """The compare-and-set that commits a batch: it only moves from where it was locked."""
    cur.execute(
        "UPDATE consumer_offsets SET next_offset = %s, outbox_seq = %s, updated_at = now()"
        " WHERE consumer_group = %s AND topic = %s AND partition = %s"
        " AND next_offset = %s AND outbox_seq = %s",
        (
            after.next_offset,
            after.outbox_seq,
            group,
            topic,
            partition,
            before.next_offset,
            before.outbox_seq,
        ),
    )
    if cur.rowcount != 1:
        raise OffsetConflict(f"{topic}/{partition}: stored offset moved during the batch")


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
