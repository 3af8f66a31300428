"""Handler cases for the engine's contract suite: one per handler built on billy_core.stream.

A case says how to build the handler's engine, where its input goes, what a good record and
a poison record look like, and how many good records have taken durable effect. The suite
(test_contract.py) runs the same tests against every case; a new handler adds a case here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from billy_core.codec import encode_command
from billy_core.commands import Command, RegisterClient
from billy_core.kafka.topics import TopicNames
from billy_core.settings import Settings
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
