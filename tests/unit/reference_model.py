"""A naive reference model of the ledger, for the property tests.

Deliberately unlike `billy_core.ledger`: it shares nothing with it but the command and
result types. It keeps one flat list of facts (what happened, per client, in order) and
answers every question, balances included, by scanning that list from the start. It is
slow (quadratic) and obvious, which is the point: if it and the core disagree, one of
them is wrong.

Facts are tuples `(tenant, client_id, what, *fields)`:

    ("registered", currency)
    ("adjusted", signed_amount)
    ("charged", command_id, product_id, amount)
    ("held", hold_id, product_id, amount, expires_at_ms)
    ("confirmed", hold_id, command_id, amount)
    ("released", hold_id)
    ("expired", hold_id)
    ("refunded", charge_command_id, amount)

A wallet's version is simply how many facts the client has. Command ids are remembered per
tenant with what they asked for (client and body): the same again is a duplicate, another
payload a conflict; invalid commands and conflicts are not remembered.
"""

from __future__ import annotations

from dataclasses import dataclass

from billy_core.commands import (
    Adjust,
    Charge,
    Command,
    ConfirmHold,
    ExpireHold,
    Hold,
    Refund,
    RegisterClient,
    ReleaseHold,
    RequestInvoice,
    TransferCredit,
    UpsertContract,
    UpsertPayer,
)
from billy_core.results import Code, Status

_SETTLING = ("confirmed", "released", "expired")


@dataclass(frozen=True)
class Outcome:
    status: Status
    code: Code
    available_minor: int
    held_minor: int
    version: int
    # applied-log lines: (kind, product_id, amount_minor, currency, refund_of)
    lines: tuple[tuple[str, str, int, str, str | None], ...] = ()


class ReferenceModel:
    def __init__(self) -> None:
        self.facts: list[tuple] = []
        self.asked: dict[tuple[str, str], tuple] = {}  # (tenant, command_id) -> (client, body)
        self.overdraft: dict[tuple[str, str], int] = {}  # set from outside, like an admin

    # --- questions, all answered by scanning the facts --------------------------------

    def _mine(self, tenant: str, client_id: str) -> list[tuple]:
        return [f[2:] for f in self.facts if f[0] == tenant and f[1] == client_id]

    def currency(self, tenant: str, client_id: str) -> str | None:
        for fact in self._mine(tenant, client_id):
            if fact[0] == "registered":
                return fact[1]
        return None

    def _hold(self, tenant: str, client_id: str, hold_id: str) -> tuple | None:
        """(product_id, amount, expires_at_ms, state) or None; state is the last word."""
        found = None
        for fact in self._mine(tenant, client_id):
            if fact[0] == "held" and fact[1] == hold_id:
                found = [fact[2], fact[3], fact[4], "open"]
            elif fact[0] in _SETTLING and fact[1] == hold_id:
                found[3] = fact[0]
        return None if found is None else tuple(found)

    def hold_amount(self, tenant: str, client_id: str, hold_id: str) -> int:
        hold = self._hold(tenant, client_id, hold_id)
        return hold[1]

    def balances(self, tenant: str, client_id: str) -> tuple[int, int]:
        """(available, held), summed from nothing."""
        available = held = 0
        for fact in self._mine(tenant, client_id):
            what = fact[0]
            if what == "adjusted":
                available += fact[1]
            elif what == "charged":
                available -= fact[3]
            elif what == "held":
                available -= fact[3]
                held += fact[3]
            elif what == "confirmed":
                amount = self.hold_amount(tenant, client_id, fact[1])
                held -= amount
                available += amount - fact[3]
            elif what in ("released", "expired"):
                amount = self.hold_amount(tenant, client_id, fact[1])
                held -= amount
                available += amount
            elif what == "refunded":
                available += fact[2]
        return available, held

    def version(self, tenant: str, client_id: str) -> int:
        return len(self._mine(tenant, client_id))

    def _charge(self, tenant: str, client_id: str, command_id: str) -> tuple[str, int] | None:
        """(product_id, amount) of a refundable Charge or ConfirmHold of this client."""
        for fact in self._mine(tenant, client_id):
            if fact[0] == "charged" and fact[1] == command_id:
                return fact[2], fact[3]
            if fact[0] == "confirmed" and fact[2] == command_id:
                return self._hold(tenant, client_id, fact[1])[0], fact[3]
        return None

    def _refunded(self, tenant: str, client_id: str, command_id: str) -> int:
        return sum(
            f[2] for f in self._mine(tenant, client_id) if f[0] == "refunded" and f[1] == command_id
        )

    def revenue(self, tenant: str, product_id: str) -> int:
        """What the tenant's revenue account for the product holds, from all its clients."""
        total = 0
        for fact in self.facts:
            if fact[0] != tenant:
                continue
            client_id, what = fact[1], fact[2]
            if what == "charged" and fact[4] == product_id:
                total += fact[5]
            elif what == "confirmed":
                if self._hold(tenant, client_id, fact[3])[0] == product_id:
                    total += fact[5]
            elif what == "refunded":
                if self._charge(tenant, client_id, fact[3])[0] == product_id:
                    total -= fact[4]
        return total

    def adjusted(self, tenant: str) -> int:
        """What the tenant's clients received from adjustments in total (signed)."""
        return sum(f[3] for f in self.facts if f[0] == tenant and f[2] == "adjusted")

    # --- the one command ------------------------------------------------------------

    def step(
        self, tenant: str, command: Command, record_ts_ms: int, invalid: bool = False
    ) -> Outcome | None:
        """The outcome, or None for a duplicate (answered with the stored result)."""
        client_id = command.client_id
        asked = (command.client_id, command.body)
        earlier = self.asked.get((tenant, command.command_id))
        if invalid:
            code, lines = Code.INVALID, []
        elif earlier == asked:
            return None
        elif earlier is not None:
            code, lines = Code.IDEMPOTENCY_CONFLICT, []
        else:
            self.asked[(tenant, command.command_id)] = asked
            code, lines = self._judge(tenant, command, record_ts_ms)
        available, held = self.balances(tenant, client_id)
        status = Status.APPLIED if code == Code.OK else Status.REJECTED
        return Outcome(status, code, available, held, self.version(tenant, client_id), tuple(lines))

    def _judge(self, tenant: str, command: Command, now: int) -> tuple[Code, list]:
        client_id = command.client_id
        body = command.body

        def record(*fact: object) -> None:
            self.facts.append((tenant, client_id, *fact))

        currency = self.currency(tenant, client_id)
        if type(body) is RegisterClient:
            if currency is not None:
                return Code.CLIENT_EXISTS, []
            record("registered", body.currency)
            return Code.OK, []
        if currency is None:
            return Code.UNKNOWN_CLIENT, []
        if (
            type(body) in (Charge, Hold, Adjust, RequestInvoice, TransferCredit)
            and body.currency != currency
        ):
            return Code.CURRENCY_MISMATCH, []
        if type(body) in (UpsertPayer, UpsertContract, RequestInvoice, TransferCredit):
            return Code.OK, []  # pending: Balance decides later; nothing changes now

        available, _ = self.balances(tenant, client_id)
        floor = -self.overdraft.get((tenant, client_id), 0)

        if type(body) is Adjust:
            if body.amount_minor < 0 and available + body.amount_minor < floor:
                return Code.INSUFFICIENT_FUNDS, []
            record("adjusted", body.amount_minor)
            return Code.OK, []

        if type(body) is Charge:
            if available - body.amount_minor < floor:
                return Code.INSUFFICIENT_FUNDS, []
            record("charged", command.command_id, body.product_id, body.amount_minor)
            return Code.OK, [("CHARGE", body.product_id, body.amount_minor, currency, None)]

        if type(body) is Hold:
            if self._hold(tenant, client_id, body.hold_id) is not None:
                return Code.HOLD_EXISTS, []
            if not now < body.expires_at_ms:
                return Code.INVALID, []
            if available - body.amount_minor < floor:
                return Code.INSUFFICIENT_FUNDS, []
            record("held", body.hold_id, body.product_id, body.amount_minor, body.expires_at_ms)
            return Code.OK, []

        if type(body) in (ConfirmHold, ReleaseHold, ExpireHold):
            hold = self._hold(tenant, client_id, body.hold_id)
            if hold is None:
                return Code.HOLD_NOT_FOUND, []
            product_id, amount, expires_at_ms, state = hold
            if state == "expired":
                return Code.HOLD_EXPIRED, []
            if state != "open":
                return Code.HOLD_SETTLED, []
            past = now >= expires_at_ms
            if type(body) is ExpireHold:
                if not past:
                    return Code.HOLD_NOT_EXPIRED, []
                record("expired", body.hold_id)
                return Code.OK, []
            if past:  # billy expires the hold first, as an event of its own
                return Code.HOLD_EXPIRED, []
            if type(body) is ReleaseHold:
                record("released", body.hold_id)
                return Code.OK, []
            take = amount if body.amount_minor is None else body.amount_minor
            if take > amount:
                return Code.EXCEEDS_HOLD, []
            record("confirmed", body.hold_id, command.command_id, take)
            return Code.OK, [("CHARGE", product_id, take, currency, None)]

        if type(body) is Refund:
            charge = self._charge(tenant, client_id, body.charge_command_id)
            if charge is None:
                return Code.CHARGE_NOT_FOUND, []
            product_id, amount = charge
            left = amount - self._refunded(tenant, client_id, body.charge_command_id)
            want = left if body.amount_minor is None else body.amount_minor
            if left <= 0 or want > left:
                return Code.EXCEEDS_REFUNDABLE, []
            record("refunded", body.charge_command_id, want)
            return Code.OK, [("REFUND", product_id, want, currency, body.charge_command_id)]

        raise AssertionError(f"the model has no rule for {type(body).__name__}")
