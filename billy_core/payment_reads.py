"""Reads of a client's payments from Balance (the API's `/payments`, `billy payments`).

A payment is a credit the ledger made from a Balance notification (consumers/ledger/
payments.py): amount, when it was taken, the order and notification `Tid`, and the invoice
when one unpaid invoice had exactly that amount (Balance does not say which invoice was
paid; several invoices paid by one credit are marked paid without an id here).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from billy_core.reads import money_text, ms_to_datetime, read_client_view, wallet_exists
from billy_core.settings import Settings
from billy_core.store.tables import payments as payments_table

__all__ = ["PAYMENTS_SHOWN_MAX", "payments", "print_payments"]

PAYMENTS_SHOWN_MAX = 1000


def payments(conn: Connection, tenant: str, client_id: str) -> list[dict[str, Any]] | None:
    """The client's payments, oldest first (at most PAYMENTS_SHOWN_MAX); None without a
    wallet. Keys: command_id, amount_minor, currency, service_order_id, tid (a digit string:
    Balance's Tids pass 2^53), order_sum_minor, invoice_id, received_at, received_at_ms."""
    if not wallet_exists(conn, tenant, client_id):
        return None
    p = payments_table.c
    rows = conn.execute(
        sa.select(
            p.command_id,
            p.amount_minor,
            p.currency,
            p.service_order_id,
            p.tid,
            p.order_sum_minor,
            p.invoice_id,
            p.received_at_ms,
        )
        .where(p.tenant == tenant, p.client_id == client_id)
        .order_by(p.received_at_ms, p.tid, p.command_id)
        .limit(PAYMENTS_SHOWN_MAX)
    ).all()
    out = []
    for row in rows:
        item = dict(row._mapping)
        item["tid"] = str(int(item["tid"]))
        item["received_at"] = ms_to_datetime(item["received_at_ms"])
        out.append(item)
    return out


def print_payments(settings: Settings, tenant: str, client: str) -> int:
    """Print a client's payments. Exit code 0; 1 without such a wallet or when PostgreSQL
    cannot be asked."""
    rows = read_client_view(settings, tenant, client, payments)
    if rows is None:
        return 1
    print(f"payments of {tenant}/{client}: {len(rows)}")
    for r in rows:
        money = money_text(r["amount_minor"], r["currency"])
        invoice = f"invoice {r['invoice_id']}" if r["invoice_id"] is not None else "invoice -"
        when = r["received_at"].isoformat(timespec="milliseconds")
        print(f"  {when}  {money:>24}  {invoice}  order {r['service_order_id']} Tid {r['tid']}")
    return 0
