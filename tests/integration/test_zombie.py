"""Invariant 8 made deterministic: a consumer that lost its partition writes nothing.

Two appliers share one partition's records, as an old owner (paused past its session
timeout) and the new one would. The new owner applies first; the old owner wakes with the
records it had polled and finds the stored offset moved: OffsetConflict, and not one row
changed. The fault test shows the same under real SIGSTOP/SIGCONT, but cannot choose the
moment the old owner wakes; this test does.
"""

from __future__ import annotations

import psycopg
import pytest

from billy_core.codec import encode_command
from billy_core.commands import Charge, Command, RegisterClient
from billy_core.errors import OffsetConflict
from billy_core.kafka.topics import TopicNames
from billy_core.stream import Record, positions
from billy_core.stream.apply_step import PartitionWork, apply_batch
from consumers.ledger.handler import LedgerHandler

pytestmark = pytest.mark.integration

TOPIC = "z.autoru.commands"
TOPICS = TopicNames("z")
HANDLER = LedgerHandler(TOPICS, frozenset({"autoru"}), "zombie-group")


def _items(commands: list[Command], first_offset: int = 0):
    out = []
    for i, command in enumerate(commands):
        record = Record(
            TOPIC,
            0,
            first_offset + i,
            1_000 + i,
            command.client_id.encode(),
            encode_command(command),
        )
        out.append(HANDLER.decode(record))
    return out


def _apply(conn, expected: int, items) -> None:
    work = PartitionWork(TOPIC, 0, expected, items[-1].record.offset, items, ())
    apply_batch(conn, HANDLER, "z", TOPICS.dlq, work)


def _counts(conn) -> tuple:
    return tuple(
        conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("processed_commands", "transfers", "outbox", "wallets")
    )


def test_old_owner_writes_nothing_after_the_new_owner_moved_on(database_url):
    register = _items(
        [
            Command("r1", "c1", 1, RegisterClient("A", "a@x.ru")),
        ]
    )
    with psycopg.connect(database_url) as new_owner, psycopg.connect(database_url) as old_owner:
        start = positions.claim(new_owner, "zombie-group", TOPIC, 0).next_offset
        assert start == 0
        _apply(new_owner, 0, register)
        # Charges on an empty wallet are rejected, but still written (processed rows, results
        # in the outbox): enough to see whether the old owner writes anything.
        batch = _items(
            [
                Command("ch1", "c1", 2, Charge("p", 10, "RUB")),
                Command("ch2", "c1", 3, Charge("p", 20, "RUB")),
            ],
            first_offset=1,
        )
        # The old owner polled `batch` at offset 1 and froze. The new owner applies it.
        _apply(new_owner, 1, batch)
        before = _counts(new_owner)
        with pytest.raises(OffsetConflict):
            _apply(old_owner, 1, batch)
        assert _counts(new_owner) == before
        # It also cannot write past the new owner with later records it believes are next.
        later = _items([Command("ch3", "c1", 4, Charge("p", 5, "RUB"))], first_offset=3)
        with pytest.raises(OffsetConflict):
            _apply(old_owner, 1, later)
        assert _counts(new_owner) == before
        assert positions.claim(new_owner, "zombie-group", TOPIC, 0).next_offset == 3
