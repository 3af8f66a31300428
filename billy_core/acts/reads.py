"""Reads of a client's acts and reconciliations (the read API and `billy acts`), in the manner
of billy_core.reads: SQLAlchemy Core, an open Connection, tenant and client first, one client
per query. Money is integer minor units with its currency."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from billy_core.reads import money_text, read_client_view, wallet_exists
from billy_core.settings import Settings
from billy_core.store.tables import acts, reconciliations

__all__ = ["ACTS_SHOWN_MAX", "client_acts", "print_acts"]

ACTS_SHOWN_MAX = 240  # twenty years of monthly acts
NOT_RECONCILED = "not_reconciled"


def client_acts(conn: Connection, tenant: str, client_id: str) -> dict[str, Any] | None:
    """The client's acts, newest month first, each with its month's reconciliation status,
    and every reconciled month (a month may have no act: `no_act`). None without a wallet."""
    if not wallet_exists(conn, tenant, client_id):
        return None
    r = reconciliations.c
    months = conn.execute(
        sa.select(
            r.month,
            r.currency,
            r.act_minor,
            r.ledger_minor,
            r.difference_minor,
            r.act_count,
            r.status,
            r.revision,
            r.checked_at,
        )
        .where(r.tenant == tenant, r.client_id == client_id)
        .order_by(r.month.desc())
        .limit(ACTS_SHOWN_MAX)
    ).all()
    status = {m.month: m.status for m in months}
    a = acts.c
    rows = conn.execute(
        sa.select(
            a.act_id,
            a.external_id,
            a.month,
            a.act_date,
            a.contract_id,
            a.amount_minor,
            a.amount_nds_minor,
            a.paid_amount_minor,
            a.currency,
            a.imported_at,
        )
        .where(a.tenant == tenant, a.client_id == client_id)
        .order_by(a.month.desc(), a.act_id)
        .limit(ACTS_SHOWN_MAX)
    ).all()
    return {
        "acts": [
            {**row._mapping, "reconciliation_status": status.get(row.month, NOT_RECONCILED)}
            for row in rows
        ],
        "reconciliations": [dict(m._mapping) for m in months],
    }


def print_acts(settings: Settings, tenant: str, client: str) -> int:
    """Print a client's acts and reconciled months. Exit code 0; 1 without such a wallet or
    when PostgreSQL cannot be asked."""
    view = read_client_view(settings, tenant, client, client_acts)
    if view is None:
        return 1
    print(f"acts {tenant}/{client}: {len(view['acts'])}")
    for act in view["acts"]:
        print(
            f"  {act['month']}  act {act['act_id']} ({act['external_id']}) of {act['act_date']}"
            f"  {money_text(act['amount_minor'], act['currency'])}"
            f"  VAT {money_text(act['amount_nds_minor'], act['currency'])}"
            f"  {act['reconciliation_status']}"
        )
    print(f"reconciled months: {len(view['reconciliations'])}")
    for m in view["reconciliations"]:
        print(
            f"  {m['month']}  act {money_text(m['act_minor'], m['currency'])}"
            f"  ledger {money_text(m['ledger_minor'], m['currency'])}"
            f"  difference {money_text(m['difference_minor'], m['currency'])}  {m['status']}"
        )
    return 0
