"""Handler cases for the engine's contract suite: one per handler built on billy_core.stream.

A case says how to build the handler's engine, where its input goes, what a good record and
a poison record look like, and how many good records have taken durable effect. The suite
(test_contract.py) runs the same tests against every case; a new handler adds a case here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from billy_core.codec import encode_command
from billy_core.commands import Command, RegisterClient
from billy_core.kafka.topics import TopicNames
from billy_core.settings import Settings
from billy_core.stream import Batch, Outbox, Poison, Record, Summary
from billy_core.stream.engine import Engine


@dataclass(frozen=True)
class HandlerCase:
    name: str
    build: Callable[[Settings], Engine]  # type: ignore[type-arg]
    input_topic: Callable[[TopicNames], str]
    good: Callable[[int], tuple[bytes, bytes]]  # i -> (key, value); every i a distinct effect
    poison: Callable[[int], tuple[bytes | None, bytes | None]]
    effects: Callable[[psycopg.Connection], int]  # good records that took durable effect


def _ledger_good(i: int) -> tuple[bytes, bytes]:
    client = f"contract-{i}"
    command = Command(f"reg-{i}", client, 1, RegisterClient("Dealer", "d@example.ru"))
    return client.encode(), encode_command(command)


def _ledger_effects(conn: psycopg.Connection) -> int:
    row = conn.execute(
        "SELECT count(*) FROM processed_commands WHERE command_id LIKE 'reg-%%'"
    ).fetchone()
    return int(row[0]) if row else 0


def _ledger_build(settings: Settings) -> Engine:  # type: ignore[type-arg]
    from consumers.ledger import build

    return build(settings)


LEDGER = HandlerCase(
    name="ledger",
    build=_ledger_build,
    input_topic=lambda topics: topics.commands("autoru"),
    good=_ledger_good,
    poison=lambda i: (f"contract-p{i}".encode(), b"\x00not avro " + str(i).encode()),
    effects=_ledger_effects,
)

CASES = [LEDGER]


# --- a handler whose records PostgreSQL may refuse ------------------------------------------
# Every ledger command is bounded before it reaches PostgreSQL (billy_core.commands.validate),
# so no ledger record makes PostgreSQL refuse a batch any more. The engine's route for one
# that does (apply the batch again in pieces, dead-letter the culprit alone) is proven with
# this probe: its records are JSON {"id": text, "n": int} inserted as they are into a table
# with a primary key (an index: a long random id is too large for it) and CHECK (n >= 0); a
# NUL in the id is refused by the driver itself.

PROBE_TABLE = (
    "CREATE TABLE IF NOT EXISTS engine_probe (grp text NOT NULL, id text NOT NULL,"
    " n integer NOT NULL CHECK (n >= 0), PRIMARY KEY (grp, id))"
)


@dataclass(frozen=True)
class ProbeItem:
    record: Record
    id: str
    n: int


class ProbeHandler:
    """A `billy_core.stream.Handler` that writes what it is given, unchecked."""

    name = "probe"

    def __init__(self, topic: str, group: str) -> None:
        self.topic = topic
        self.group = group
        self.answered: list[Poison] = []

    def subscription(self) -> list[str]:
        return [self.topic]

    def decode(self, record: Record) -> ProbeItem | Poison:
        try:
            data = json.loads(record.value or b"")
            return ProbeItem(record, str(data["id"]), int(data["n"]))
        except (ValueError, KeyError, TypeError):
            return Poison(record, "value: not a probe record")

    def apply(self, cur: psycopg.Cursor, batch: Batch[ProbeItem], outbox: Outbox) -> Summary:
        for item in batch.items:
            cur.execute(
                "INSERT INTO engine_probe (grp, id, n) VALUES (%s, %s, %s)",
                (self.group, item.id, item.n),
            )
            outbox.at(item.record).add(
                "probe.out", item.id[:64], str(item.n).encode(), f"probe:{item.id[:64]}"
            )
        return Summary(tuple(("probe", "ok") for _ in batch.items))

    def mergeable(self, topic: str) -> bool:
        return True  # the engine's contract holds with partitions merged into one transaction

    def answer_poison(self, poison: Poison, outbox: Outbox) -> None:
        self.answered.append(poison)

    def observe(self, topic: str, summary: Summary) -> None:
        pass


def probe_record(id_: str, n: int) -> tuple[bytes, bytes]:
    return b"probe", json.dumps({"id": id_, "n": n}).encode()


def probe_build(settings: Settings, topic: str) -> Engine:  # type: ignore[type-arg]
    handler = ProbeHandler(topic, f"{settings.topic_prefix}-probe")
    return Engine(
        settings,
        handler,
        deployment=settings.topic_prefix,
        dlq_topic=TopicNames(settings.topic_prefix).dlq,
    )


def probe_effects(conn: psycopg.Connection, group: str) -> int:
    row = conn.execute("SELECT count(*) FROM engine_probe WHERE grp = %s", (group,)).fetchone()
    return int(row[0]) if row else 0
