"""The ledger's side of Balance payments: confirmed notifications in, wallet credits out.

    <prefix>.internal.events (PaymentEvent, from the intake) --> balance_orders row (Tid, sums)
        credit owed > 0: transfer payments -> available, payments row, wallet version + 1,
        outbox: Result APPLIED payment_received (billy-payment:<order>:<tid>), a PAYMENT
        applied-services line, the wallet snapshot
    a TransferCredit outcome (balance_intents.apply_outcomes) --> `settle_topups`: the
        top-up's credit counts as the order's money; a payment held back for it is credited

The rule itself is pure (`billy_core.ledger.payments`); this module loads and writes rows
inside the engine's partition transaction (no network, no commit). Exactly once: the
engine's position makes a batch apply once; the order row's `last_tid` makes a redelivered
or out-of-order notification a no-op; the payments row's key guards a command id.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import psycopg

from billy_core.codec import (
    AppliedService,
    ServiceKind,
    WalletSnapshot,
    encode_applied_service,
    encode_result,
    encode_wallet_snapshot,
)
from billy_core.errors import InvariantViolation
from billy_core.kafka.topics import TopicNames
from billy_core.ledger import accounts
from billy_core.ledger.payments import OrderMoney, Verdict, apply_notification, apply_postpay
from billy_core.ledger.state import ClientState, Wallet
from billy_core.limits import BALANCE_MINOR_MAX
from billy_core.payment_events import PaymentEvent, PaymentEventError, decode
from billy_core.results import Code, Result, Status
from billy_core.store import ledger_store as store
from billy_core.stream import Outbox, Poison, Record, Summary
from billy_core.text import shorten_id

log = logging.getLogger("billy.ledger.payments")

PAYMENT_PRODUCT = "balance-payment"  # the product_id of a PAYMENT applied-services line
ClientKey = tuple[str, str]
OrderKey = tuple[str, str, int]


@dataclass(frozen=True, slots=True)
class PaymentItem:
    """A decoded payment event of `<prefix>.internal.events`."""

    record: Record
    event: PaymentEvent


def decode_payment_record(record: Record) -> PaymentItem | Poison:
    """Pure; a record that is not a payment event of this version is poison."""
    try:
        event = decode(record.value)
    except PaymentEventError as exc:
        return Poison(record, f"value: {exc}")
    key = record.key.decode("utf-8", "replace") if record.key is not None else None
    if key != event.key:
        return Poison(record, "key: does not match the payment's tenant/client_id")
    return PaymentItem(record, event)


@dataclass(slots=True)
class _Rows:
    """What one run of payment work writes; `flush` writes it (caller's transaction)."""

    topics: TopicNames
    outbox: Outbox
    now_ms: int
    writes: store.Writes = field(default_factory=store.Writes)
    orders: dict[OrderKey, OrderMoney] = field(default_factory=dict)
    payments: list[tuple[object, ...]] = field(default_factory=list)
    paid_invoices: list[tuple[str, str, int]] = field(default_factory=list)
    changed: dict[ClientKey, Wallet] = field(default_factory=dict)
    outcomes: list[tuple[str, str]] = field(default_factory=list)

    def credit(
        self,
        cur: psycopg.Cursor,
        key: OrderKey,
        wallet: Wallet,
        amount_minor: int,
        *,
        command_id: str,
        tid: int,
        order_sum_minor: int,
        at_ms: int,
    ) -> None:
        """Money from the tenant's `payments` account to the wallet, with its outputs."""
        tenant, client_id, order_id = key
        if wallet.available_minor + amount_minor > BALANCE_MINOR_MAX:
            raise InvariantViolation(f"{tenant}/{client_id}: a payment would overflow")
        wallet.available_minor += amount_minor
        wallet.version += 1
        self.changed[(tenant, client_id)] = wallet
        self.writes.transfers.append(
            (
                tenant,
                client_id,
                command_id,
                accounts.payments(tenant),
                accounts.available(tenant, client_id),
                amount_minor,
                wallet.currency,
                at_ms,
            )
        )
        invoice_id = _match_invoices(cur, tenant, client_id, amount_minor, self.paid_invoices)
        self.payments.append(
            (
                tenant,
                client_id,
                order_id,
                tid,
                command_id,
                amount_minor,
                wallet.currency,
                order_sum_minor,
                invoice_id,
                at_ms,
            )
        )
        details = {
            "amount_minor": str(amount_minor),
            "order_sum_minor": str(order_sum_minor),
            "service_order_id": str(order_id),
            "tid": str(tid),
        }
        if invoice_id is not None:
            details["invoice_id"] = str(invoice_id)
        result = Result(
            command_id=command_id,
            client_id=client_id,
            status=Status.APPLIED,
            code=Code.PAYMENT_RECEIVED,
            message="payment received from Balance",
            currency=wallet.currency,
            available_minor=wallet.available_minor,
            held_minor=wallet.held_minor,
            wallet_version=wallet.version,
            duplicate=False,
            processed_at_ms=self.now_ms,
            details=details,
        )
        self.outbox.add(
            self.topics.results(tenant),
            client_id,
            encode_result(result),
            f"payment:{tenant}:{client_id}:{command_id}",
        )
        self.writes.applied.append(
            (
                tenant,
                client_id,
                command_id,
                ServiceKind.PAYMENT.value,
                PAYMENT_PRODUCT,
                amount_minor,
                wallet.currency,
                None,
                at_ms,
            )
        )
        line = AppliedService(
            tenant=tenant,
            client_id=client_id,
            command_id=command_id,
            kind=ServiceKind.PAYMENT,
            product_id=PAYMENT_PRODUCT,
            amount_minor=amount_minor,
            currency=wallet.currency,
            applied_at_ms=at_ms,
        )
        self.outbox.add(
            self.topics.applied_services,
            f"{tenant}/{client_id}",
            encode_applied_service(line),
            f"applied:{tenant}:{command_id}",
        )

    def flush(self, cur: psycopg.Cursor) -> None:
        for (tenant, client_id), wallet in self.changed.items():
            self.writes.changed_wallets.append(wallet)
            snapshot = WalletSnapshot(
                tenant=tenant,
                client_id=client_id,
                currency=wallet.currency,
                available_minor=wallet.available_minor,
                held_minor=wallet.held_minor,
                wallet_version=wallet.version,
                updated_at_ms=self.now_ms,
            )
            self.outbox.add(
                self.topics.wallets,
                f"{tenant}/{client_id}",
                encode_wallet_snapshot(snapshot),
                f"wallet:{tenant}:{client_id}:{wallet.version}",
            )
        store.write(cur, self.writes)
        if self.orders:
            keys = list(self.orders)
            cur.execute(
                "INSERT INTO balance_orders AS o (tenant, client_id, service_order_id, last_tid,"
                " seen_minor, credited_payments_minor, credited_postpay_minor)"
                " SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::numeric[],"
                " %s::bigint[], %s::bigint[], %s::bigint[])"
                " ON CONFLICT (tenant, client_id, service_order_id) DO UPDATE SET"
                " last_tid = EXCLUDED.last_tid, seen_minor = EXCLUDED.seen_minor,"
                " credited_payments_minor = EXCLUDED.credited_payments_minor,"
                " credited_postpay_minor = EXCLUDED.credited_postpay_minor, updated_at = now()",
                (
                    [k[0] for k in keys],
                    [k[1] for k in keys],
                    [k[2] for k in keys],
                    [self.orders[k].last_tid for k in keys],
                    [self.orders[k].seen_minor for k in keys],
                    [self.orders[k].credited_payments_minor for k in keys],
                    [self.orders[k].credited_postpay_minor for k in keys],
                ),
            )
        if self.payments:
            with cur.copy(
                "COPY payments (tenant, client_id, service_order_id, tid, command_id,"
                " amount_minor, currency, order_sum_minor, invoice_id, received_at_ms)"
                " FROM STDIN"
            ) as copy:
                for row in self.payments:
                    copy.write_row(row)
        if self.paid_invoices:
            cur.execute(
                "UPDATE balance_invoices i SET status = 'paid' FROM unnest(%s::text[],"
                " %s::text[], %s::bigint[]) AS k(tenant, client_id, invoice_id)"
                " WHERE i.tenant = k.tenant AND i.client_id = k.client_id"
                " AND i.invoice_id = k.invoice_id",
                (
                    [t for t, _, _ in self.paid_invoices],
                    [c for _, c, _ in self.paid_invoices],
                    [i for _, _, i in self.paid_invoices],
                ),
            )


def apply_payments(
    cur: psycopg.Cursor, items: Sequence[PaymentItem], outbox: Outbox, topics: TopicNames
) -> Summary:
    """Apply confirmed notifications in offset order (one partition's run of them)."""
    clients = {(i.event.tenant, i.event.client_id) for i in items}
    states = store.load_states(cur, clients, (), ())
    orders = _load_orders(
        cur, {(i.event.tenant, i.event.client_id, i.event.service_order_id) for i in items}
    )
    pending = pending_topups(cur, clients)
    rows = _Rows(topics, outbox, time.time_ns() // 1_000_000)
    for item in items:
        e = item.event
        wallet = _wallet_of(states, (e.tenant, e.client_id))
        if wallet is None or wallet.currency != e.currency:
            # Neither can be mended by applying again: kept in the log and the metric; the
            # money stays in Balance's order and reconciliation shows it.
            reason = "unknown_client" if wallet is None else "currency_mismatch"
            log.error(
                "payment %s for %s/%s not credited: %s", e.command_id, e.tenant, e.client_id, reason
            )
            rows.outcomes.append((f"{e.tenant}/payment", reason))
            continue
        key = (e.tenant, e.client_id, e.service_order_id)
        state = rows.orders.get(key) or orders.get(key) or OrderMoney()
        verdict = apply_notification(
            state, e.tid, e.order_sum_minor, pending.get((e.tenant, e.client_id), 0)
        )
        rows.outcomes.append((f"{e.tenant}/payment", verdict.verdict.value))
        if verdict.verdict is Verdict.STALE:
            log.info("payment %s: stale Tid (last %d), ignored", e.command_id, state.last_tid)
            continue
        rows.orders[key] = verdict.state
        if verdict.credit_minor:
            rows.credit(
                cur,
                key,
                wallet,
                verdict.credit_minor,
                command_id=e.command_id,
                tid=e.tid,
                order_sum_minor=e.order_sum_minor,
                at_ms=max(item.record.timestamp_ms, 0),
            )
    rows.flush(cur)
    return Summary(tuple(rows.outcomes))


def settle_topups(
    cur: psycopg.Cursor,
    resolved: Iterable[tuple[str, str, str, int, int | None]],
    outbox: Outbox,
    topics: TopicNames,
    at_ms: int,
) -> Summary:
    """TransferCredit outcomes applied in this transaction (tenant, client_id, command_id,
    credited_minor: 0 when rejected, order_sum_minor: the order's money the gateway read right
    after, or None), AFTER their pending rows were deleted and their credit written: count the
    top-ups as the order's money and credit a payment held back for them."""
    resolved = list(resolved)
    if not resolved:
        return Summary()
    clients = {(t, c) for t, c, _, _, _ in resolved}
    order_ids = _order_ids(cur, clients)
    states = store.load_states(cur, clients, (), ())
    keys = {(t, c, order_ids[(t, c)]) for t, c in clients if (t, c) in order_ids}
    orders = _load_orders(cur, keys)
    pending = pending_topups(cur, clients)
    rows = _Rows(topics, outbox, time.time_ns() // 1_000_000)
    for tenant, client_id, command_id, credited, order_sum in resolved:
        order_id = order_ids.get((tenant, client_id))
        if order_id is None:
            if credited:  # never happens: a top-up needs a registered client with its order
                raise InvariantViolation(f"{tenant}/{client_id}: a top-up without an order")
            continue
        key = (tenant, client_id, order_id)
        state = rows.orders.get(key) or orders.get(key) or OrderMoney()
        verdict = apply_postpay(state, credited, pending.get((tenant, client_id), 0), order_sum)
        rows.orders[key] = verdict.state
        if verdict.credit_minor:
            wallet = _wallet_of(states, (tenant, client_id))
            if wallet is None:
                raise InvariantViolation(f"{tenant}/{client_id}: a top-up without a wallet")
            suffix = hashlib.blake2b(command_id.encode(), digest_size=4).hexdigest()
            rows.outcomes.append((f"{tenant}/payment", Verdict.CREDITED.value))
            rows.credit(
                cur,
                key,
                wallet,
                verdict.credit_minor,
                command_id=shorten_id(f"billy-payment:{order_id}:{state.last_tid}:{suffix}"),
                tid=state.last_tid,
                order_sum_minor=verdict.state.seen_minor,
                at_ms=at_ms,
            )
    rows.flush(cur)
    return Summary(tuple(rows.outcomes))


def pending_topups(cur: psycopg.Cursor, clients: Iterable[ClientKey]) -> dict[ClientKey, int]:
    """Per client, the amounts of its TransferCredit commands still waiting for Balance."""
    tenants, ids = _split(clients)
    if not ids:
        return {}
    cur.execute(
        "SELECT p.tenant, p.client_id, sum(coalesce(p.credit_minor, 0)) FROM balance_pending p"
        " JOIN unnest(%s::text[], %s::text[]) AS k(tenant, client_id) USING (tenant, client_id)"
        " WHERE p.kind = 'TransferCredit' GROUP BY p.tenant, p.client_id",
        (tenants, ids),
    )
    return {(t, c): int(total) for t, c, total in cur}


def _load_orders(cur: psycopg.Cursor, keys: Iterable[OrderKey]) -> dict[OrderKey, OrderMoney]:
    keys = sorted(keys)
    if not keys:
        return {}
    cur.execute(
        "SELECT o.tenant, o.client_id, o.service_order_id, o.last_tid, o.seen_minor,"
        " o.credited_payments_minor, o.credited_postpay_minor FROM balance_orders o"
        " JOIN unnest(%s::text[], %s::text[], %s::bigint[]) AS k(tenant, client_id, oid)"
        " ON o.tenant = k.tenant AND o.client_id = k.client_id AND o.service_order_id = k.oid"
        " ORDER BY o.tenant, o.client_id, o.service_order_id FOR UPDATE OF o",
        ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]),
    )
    return {
        (t, c, int(o)): OrderMoney(int(tid), int(seen), int(paid), int(topups))
        for t, c, o, tid, seen, paid, topups in cur
    }


def _order_ids(cur: psycopg.Cursor, clients: Iterable[ClientKey]) -> dict[ClientKey, int]:
    """The client's Balance order, as the ledger stored it from the gateway's outcomes."""
    tenants, ids = _split(clients)
    if not ids:
        return {}
    cur.execute(
        "SELECT a.tenant, a.client_id, a.service_order_id FROM balance_accounts a"
        " JOIN unnest(%s::text[], %s::text[]) AS k(tenant, client_id) USING (tenant, client_id)"
        " WHERE a.service_order_id IS NOT NULL",
        (tenants, ids),
    )
    return {(t, c): int(o) for t, c, o in cur}


def _match_invoices(
    cur: psycopg.Cursor,
    tenant: str,
    client_id: str,
    amount_minor: int,
    taken: list[tuple[str, str, int]],
) -> int | None:
    """Which of the client's unpaid prepay invoices this money paid, when that is plain:
    one invoice of exactly this amount (the oldest), or the oldest ones that add up to it
    exactly. Balance does not say which invoice a notification is for; the invoice id is
    then only a reading aid, never money. Returns the invoice id when it is one invoice."""
    cur.execute(
        "SELECT invoice_id, amount_minor FROM balance_invoices WHERE tenant = %s"
        " AND client_id = %s AND kind = 'prepay' AND status = 'unpaid'"
        " ORDER BY created_at, invoice_id",
        (tenant, client_id),
    )
    unpaid = [(int(i), int(a)) for i, a in cur if (tenant, client_id, int(i)) not in taken]
    for invoice_id, amount in unpaid:
        if amount == amount_minor:
            taken.append((tenant, client_id, invoice_id))
            return invoice_id
    total, prefix = 0, []
    for invoice_id, amount in unpaid:
        total += amount
        prefix.append(invoice_id)
        if total == amount_minor:
            taken.extend((tenant, client_id, i) for i in prefix)
            return None
        if total > amount_minor:
            break
    return None


def _wallet_of(states: dict[ClientKey, ClientState], key: ClientKey) -> Wallet | None:
    state = states.get(key)
    return state.wallet if state is not None else None


def _split(clients: Iterable[ClientKey]) -> tuple[list[str], list[str]]:
    tenants, ids = [], []
    for tenant, client_id in sorted(set(clients)):
        tenants.append(tenant)
        ids.append(client_id)
    return tenants, ids
