"""Money from Balance onto a wallet, exactly once: the pure rule per Balance order.

An order's money in Balance (`ConsumeSum`: everything paid or credited onto it) only grows.
billy sees it from two sources, in any order:

- notifications (`NotifyOrder2`, cumulative, with a growing `Tid`), confirmed by the intake
  with `GetOrdersInfo` before they reach the ledger;
- its own postpay top-ups (`TransferCredit`): the gateway's `CreateInvoice(Credit=1)` puts
  the amount on the order at once, and its outcome credits the wallet from the tenant's
  `credit` account and carries the order's money the gateway read with `GetOrdersInfo` right
  after (when that read answered). Balance's next notification INCLUDES that money.

Per order the ledger keeps `seen` (the highest confirmed cumulative sum), what it credited
as payments and as postpay top-ups, and it knows the amounts of the client's TransferCredit
commands still waiting for their outcome (`pending`: money that may be on the order already
but is not in the wallet yet). After every event it credits, from the tenant's `payments`
account:

    owed = max(0, seen - credited_payments - credited_postpay - pending)

Why this is exactly once in every order of arrival:
- never too much: a payment credit only fills `seen`, and `seen` is money Balance confirmed;
  a pending top-up's amount is held back, so when its outcome credits it the sum does not
  pass what is on the order (a top-up's money is on the order before its outcome exists);
- never too little in the end: once no top-up is pending and the newest notification is
  applied, `owed` is exactly the rest, and the events that shrink `pending` (a top-up's
  outcome, applied or rejected) run the rule again;
- a notification whose `Tid` is not newer than the last applied is stale or a duplicate:
  ignored, no money, whatever its figures;
- a sum below what was credited (Balance moved money away) credits nothing: never negative.

A payment waits while one of the client's top-ups is pending and its money is not yet on the
order (the rule cannot tell the two apart until the outcome says how much was credited).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

__all__ = ["OrderMoney", "PaymentVerdict", "Verdict", "apply_notification", "apply_postpay"]


class Verdict(StrEnum):
    """What a notification did: a metric label and a log word."""

    CREDITED = "credited"  # the order's money grew past what was credited: a payment
    NOTHING_OWED = "nothing_owed"  # newer, but nothing new to credit (a top-up, consumption)
    STALE = "stale"  # Tid not newer than the last applied: duplicate or out of order


@dataclass(frozen=True, slots=True)
class OrderMoney:
    """One order's state; sums in minor units of the wallet's currency."""

    last_tid: int = 0
    seen_minor: int = 0
    credited_payments_minor: int = 0
    credited_postpay_minor: int = 0

    def owed(self, pending_postpay_minor: int) -> int:
        """The payment credit due now (never negative)."""
        return max(
            0,
            self.seen_minor
            - self.credited_payments_minor
            - self.credited_postpay_minor
            - pending_postpay_minor,
        )


@dataclass(frozen=True, slots=True)
class PaymentVerdict:
    state: OrderMoney
    verdict: Verdict
    credit_minor: int  # > 0 only for CREDITED


def _check(value: int, name: str) -> None:
    # Explicit (not assert): the rule guards money and must hold under `python -O` too.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: must be an int >= 0, got {value!r}")


def _settle(state: OrderMoney, pending_postpay_minor: int) -> tuple[OrderMoney, int]:
    credit = state.owed(pending_postpay_minor)
    if credit:
        state = replace(state, credited_payments_minor=state.credited_payments_minor + credit)
    return state, credit


def apply_notification(
    state: OrderMoney, tid: int, order_sum_minor: int, pending_postpay_minor: int
) -> PaymentVerdict:
    """A confirmed notification: `order_sum_minor` is its cumulative ConsumeSum."""
    _check(tid, "tid")
    _check(order_sum_minor, "order_sum_minor")
    _check(pending_postpay_minor, "pending_postpay_minor")
    if tid <= state.last_tid:
        return PaymentVerdict(state, Verdict.STALE, 0)
    state = replace(state, last_tid=tid, seen_minor=max(state.seen_minor, order_sum_minor))
    state, credit = _settle(state, pending_postpay_minor)
    return PaymentVerdict(state, Verdict.CREDITED if credit else Verdict.NOTHING_OWED, credit)


def apply_postpay(
    state: OrderMoney,
    credited_minor: int,
    pending_postpay_minor: int,
    order_sum_minor: int | None = None,
) -> PaymentVerdict:
    """A TransferCredit outcome came: `credited_minor` is what it credited to the wallet from
    the `credit` account (0 when rejected); `pending_postpay_minor` is what is still pending
    WITHOUT this command; `order_sum_minor` is the order's money the gateway read from Balance
    (`GetOrdersInfo`) right after the credit invoice, when it could (the second source of the
    same quantity: a payment held back for the top-up is owed now, not at the next
    notification). None: not read; the next notification brings it."""
    _check(credited_minor, "credited_minor")
    _check(pending_postpay_minor, "pending_postpay_minor")
    if order_sum_minor is not None:
        _check(order_sum_minor, "order_sum_minor")
        state = replace(state, seen_minor=max(state.seen_minor, order_sum_minor))
    state = replace(state, credited_postpay_minor=state.credited_postpay_minor + credited_minor)
    state, credit = _settle(state, pending_postpay_minor)
    return PaymentVerdict(state, Verdict.CREDITED if credit else Verdict.NOTHING_OWED, credit)
