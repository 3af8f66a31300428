"""The gateway's handler on the stream engine: balance requests in, `balance_requests` rows out.

`apply` only records each request durably (exactly once: the engine's position
compare-and-set commits with the rows); nothing here calls Balance. The performer
(`consumers.gateway.performer`) does that, outside any transaction.
"""

from __future__ import annotations

import psycopg
from psycopg.types.json import Jsonb

from billy_core.kafka.topics import TopicNames
from billy_core.stream import Batch, Outbox, Poison, Record, Summary
from consumers.gateway.wire import BalanceRequest, WireError, decode_request


class GatewayHandler:
    """The gateway's `billy_core.stream.Handler`."""

    name = "gateway"

    def __init__(self, topics: TopicNames, group: str) -> None:
        self.topics = topics
        self.group = group

    def subscription(self) -> list[str]:
        return [self.topics.balance_requests]

    def decode(self, record: Record) -> BalanceRequest | Poison:
        try:
            request = decode_request(record.value)
        except WireError as exc:
            return Poison(record, f"value: {exc}")
        key = record.key.decode("utf-8", "replace") if record.key is not None else None
        if key != request.key:
            return Poison(record, "key: does not match the request's tenant/client_id")
        return request

    def mergeable(self, topic: str) -> bool:
        return False  # one partition per transaction (the gateway runs one worker anyway)

    def answer_poison(self, poison: Poison, outbox: Outbox) -> None:
        """Nothing besides the DLQ copy: a request that cannot be read has no one to answer."""

    def observe(self, topic: str, summary: Summary) -> None:
        """Counted by the performer (Balance calls), not here."""

    def apply(self, cur: psycopg.Cursor, batch: Batch[BalanceRequest], outbox: Outbox) -> Summary:
        deployment = self.topics.prefix
        rows = [
            (deployment, r.tenant, r.client_id, r.command_id, r.kind, Jsonb(r.body), r.currency)
            for r in batch.items
        ]
        # A command's request is written once by the ledger; ON CONFLICT only guards the
        # unique index should one ever come twice.
        cur.executemany(
            "INSERT INTO balance_requests"
            " (deployment, tenant, client_id, command_id, kind, body, currency)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (deployment, tenant, command_id) DO NOTHING",
            rows,
        )
        return Summary(tuple((r.kind, "recorded") for r in batch.items))
