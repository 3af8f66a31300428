"""One delivery from Balance, after its signature was checked: validate, map, confirm, publish.

The verdict per delivery (what Balance is answered):

    ACCEPTED     every notification is durably in Kafka, or was forged (see below): success
    INVALID      a field is wrong (the error names it): a client error, nothing published
    UNAVAILABLE  PostgreSQL, Balance or Kafka did not answer, or an order billy has not
                 mapped yet: a failure, so Balance delivers the whole delivery again (what
                 was published already comes back as a duplicate Tid the ledger ignores)

A FORGED notification (signed, but Balance's own `GetOrdersInfo` does not confirm it: the
order is unknown to Balance, or its ConsumeSum is above what Balance says the order has)
credits nothing, is logged and counted, and is answered WITH SUCCESS. Why: the figures of a
notification are a snapshot; delivering the same snapshot again cannot make Balance confirm
it, so an error would only make Balance (or whoever holds the secret) retry it for ever.
Nothing is lost by that: the money on an order is cumulative, so the order's next genuine
notification carries every kopeck, and reconciliation compares the ledger with Balance.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from billy_core.balance import BalanceError, OrderInfo
from billy_core.balance.notifications import NotificationError, OrderNotification, read_order
from billy_core.payment_events import PaymentEvent
from intake.publisher import NotDurable

__all__ = ["Acceptor", "Verdict", "Answer"]

log = logging.getLogger("billy.intake")


class Verdict(enum.Enum):
    ACCEPTED = "accepted"
    INVALID = "invalid"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class Answer:
    verdict: Verdict
    message: str
    outcomes: tuple[str, ...] = ()  # per notification, for billy_notifications_total


class Directory(Protocol):
    def owners(self, service_order_ids: Sequence[int]) -> dict[int, tuple[str, str]]: ...


class Confirmer(Protocol):
    def orders_info(self, service_order_ids: Sequence[int]) -> list[OrderInfo]: ...


class Sink(Protocol):
    def publish(self, events: Sequence[PaymentEvent]) -> None: ...


class Acceptor:
    """Thread-safe when its parts are."""

    def __init__(
        self,
        service_id: int,
        tenants: frozenset[str],
        directory: Directory,
        balance: Confirmer,
        sink: Sink,
    ) -> None:
        self.service_id = service_id
        self.tenants = tenants
        self.directory = directory
        self.balance = balance
        self.sink = sink

    def accept(self, structs: Sequence[Mapping[str, object]]) -> Answer:
        try:
            notes = [read_order(s, self.service_id) for s in structs]
        except NotificationError as exc:
            log.warning("notification refused: %s", exc)
            return Answer(Verdict.INVALID, str(exc), ("invalid",))
        orders = sorted({n.service_order_id for n in notes})
        try:
            owners = self.directory.owners(orders)
        except Exception as exc:  # PostgreSQL away: Balance delivers it again
            log.warning("notification not taken: the order mapping is unreachable: %s", exc)
            return Answer(Verdict.UNAVAILABLE, "billy's database is unavailable", ("unmapped",))
        unknown = [o for o in orders if o not in owners or owners[o][0] not in self.tenants]
        if unknown:
            # Either not registered yet (the gateway's view is written before Balance's
            # notification can exist, so rare) or not billy's: retried, visible in the log.
            log.warning("notification for orders billy does not know (yet): %s", unknown[:10])
            return Answer(Verdict.UNAVAILABLE, f"unknown order {unknown[0]}", ("unmapped",))
        try:
            truth = {i.service_order_id: i for i in self.balance.orders_info(orders)}
        except BalanceError as exc:
            log.warning("notification not confirmed: Balance unavailable: %s", exc)
            return Answer(Verdict.UNAVAILABLE, "Balance unavailable", ("balance_unavailable",))
        now_ms = time.time_ns() // 1_000_000
        events: list[PaymentEvent] = []
        outcomes: list[str] = []
        for note in notes:
            reason = _unconfirmed(note, truth.get(note.service_order_id))
            if reason is not None:
                tenant, client_id = owners[note.service_order_id]
                log.warning(
                    "FORGED notification ignored: order %d Tid %d of %s/%s: %s",
                    note.service_order_id,
                    note.tid,
                    tenant,
                    client_id,
                    reason,
                )
                outcomes.append("forged")
                continue
            tenant, client_id = owners[note.service_order_id]
            events.append(
                PaymentEvent(
                    tenant=tenant,
                    client_id=client_id,
                    service_order_id=note.service_order_id,
                    tid=note.tid,
                    order_sum_minor=note.consume_sum_minor,
                    currency=note.currency,
                    received_at_ms=now_ms,
                )
            )
            outcomes.append("accepted")
        try:
            self.sink.publish(events)
        except NotDurable as exc:
            log.warning("notification not taken: Kafka did not confirm: %s", exc)
            return Answer(Verdict.UNAVAILABLE, "Kafka unavailable", ("kafka_unavailable",))
        return Answer(Verdict.ACCEPTED, "ok", tuple(outcomes))


def _unconfirmed(note: OrderNotification, info: OrderInfo | None) -> str | None:
    """Why Balance's own figures do not confirm the notification, or None when they do."""
    if info is None:
        return "Balance does not know the order"
    if info.consume_sum_minor is None:
        return "Balance sent no consume_sum for the order"
    if info.currency != note.currency:
        return f"currency {note.currency} but Balance says {info.currency}"
    if note.consume_sum_minor > info.consume_sum_minor:
        return f"ConsumeSum {note.consume_sum_minor} above Balance's {info.consume_sum_minor}"
    return None
