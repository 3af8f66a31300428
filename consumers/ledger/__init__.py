"""The ledger consumer: applies command records to the wallet ledger exactly once.

A handler (`handler.LedgerHandler`: `decode` then `apply`) on the shared stream engine
(`billy_core.stream`), which owns assignment, stored positions, the outbox, the DLQ and
retries. `build` is the whole wiring.
"""

from __future__ import annotations

from billy_core.kafka.topics import TopicNames
from billy_core.settings import Settings
from billy_core.stream.engine import Engine
from consumers.ledger.balance_intents import OutcomeItem
from consumers.ledger.decode import Decoded
from consumers.ledger.handler import LedgerHandler
from consumers.ledger.payments import PaymentItem


def build(settings: Settings) -> Engine[Decoded | OutcomeItem | PaymentItem]:
    topics = TopicNames(settings.topic_prefix)
    handler = LedgerHandler(
        topics,
        frozenset(settings.tenants),
        settings.ledger_group,
        balance_gateway=settings.balance_gateway,
    )
    return Engine(
        settings,
        handler,
        deployment=topics.prefix,
        dlq_topic=topics.dlq,
        workers=settings.ledger_workers,
    )
