"""A ledger partition driven straight through the stream engine's apply step on a real
PostgreSQL, without Kafka: for tests of what the ledger stores and answers for a batch."""

from __future__ import annotations

import psycopg

from billy_core.codec import decode_result, encode_command
from billy_core.commands import Adjust, Command
from billy_core.kafka.topics import ADMIN_TENANT, TopicNames
from billy_core.results import Code, Result
from billy_core.stream import Record, positions
from billy_core.stream.apply_step import PartitionWork, apply_batch
from billy_core.stream.outbox import unpack
from consumers.ledger.handler import LedgerHandler

TOPICS = TopicNames("i")
TENANT = "autoru"


class Partition:
    """One partition of a fresh handler: applies batches and reads back their results."""

    def __init__(
        self,
        conn: psycopg.Connection,
        partition: int,
        *,
        gateway: bool = False,
        tenant: str = TENANT,
    ):
        self.conn, self.partition = conn, partition
        self.topic = TOPICS.commands(tenant)
        self.admin = tenant == ADMIN_TENANT
        self.handler = LedgerHandler(
            TOPICS, frozenset({TENANT}), f"g{partition}", balance_gateway=gateway
        )
        self.offset = positions.claim(conn, self.handler.group, self.topic, partition).next_offset

    def apply(self, commands: list[Command]) -> list[Result]:
        first = self.offset
        items = [
            self.handler.decode(
                Record(
                    self.topic,
                    self.partition,
                    first + i,
                    1_000 + i,
                    (f"{TENANT}/{c.client_id}" if self.admin else c.client_id).encode(),
                    encode_command(c),
                )
            )
            for i, c in enumerate(commands)
        ]
        work = PartitionWork(self.topic, self.partition, first, first + len(items) - 1, items, ())
        apply_batch(self.conn, self.handler, "i", TOPICS.dlq, work)
        self.offset = first + len(items)
        return self.results_from(first)

    def results_from(self, offset: int) -> list[Result]:
        """The results of this partition's records from `offset` on, in order (an outbox row
        is one record, or a packed batch of them)."""
        rows = self.conn.execute(
            "SELECT topic, value, event_id, batch FROM outbox WHERE shard = %s ORDER BY seq",
            (f"{self.topic}/{self.partition}",),
        ).fetchall()
        records = [
            record
            for topic, value, event_id, batch in rows
            for record in (
                unpack(batch) if batch is not None else [(topic, None, value, event_id, [])]
            )
        ]
        return [
            decode_result(bytes(value))
            for topic, _, value, event_id, _ in records
            if topic.endswith(".results") and value is not None
            if int(event_id.rsplit(":", 1)[1]) >= offset
        ]


def fund(conn: psycopg.Connection, client: str, amount: int) -> None:
    admin = Partition(conn, 0, tenant=ADMIN_TENANT)
    (result,) = admin.apply(
        [Command(f"fund-{client}", client, 1, Adjust(amount, "RUB", "ops", "t"))]
    )
    assert result.code is Code.OK, result


def available(conn: psycopg.Connection, client: str) -> int:
    row = conn.execute(
        "SELECT available_minor FROM wallets WHERE tenant = %s AND client_id = %s",
        (TENANT, client),
    ).fetchone()
    assert row is not None
    return int(row[0])
