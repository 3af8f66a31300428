"""The tables behind consumption reports, acts and reconciliations (migration 0009), and the
ledger queries they need. Every function runs in the caller's transaction (psycopg cursor)
and commits nothing; none calls Balance.

Revenue is read from the ledger's `transfers`: money into a `t:<tenant>:revenue:<product>`
account counts (a charge, a confirmed hold), money out of one counts negative (a refund).
An instant is `transfers.created_at`, the start of the ledger transaction that applied it.
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from billy_core.stream import outbox as outbox_rows

__all__ = [
    "ClientKey",
    "Report",
    "StoredAct",
    "act_amounts",
    "clients_with_revenue",
    "insert_act",
    "ledger_revenue",
    "outbox_for",
    "revenue_totals",
]

ClientKey = tuple[str, str]  # (tenant, client id)
WATERMARK = "revenue"
OUTBOX_SHARDS = 16

_IS_REVENUE = "(t.target LIKE 't:%%:revenue:%%' OR t.source LIKE 't:%%:revenue:%%')"
# Signed revenue of one transfer row for its client's own tenant (a tenant has no ':').
_SIGNED = (
    "CASE WHEN t.target LIKE 't:' || t.tenant || ':revenue:%%' THEN t.amount_minor"
    " WHEN t.source LIKE 't:' || t.tenant || ':revenue:%%' THEN -t.amount_minor ELSE 0 END"
)


@dataclass(frozen=True, slots=True)
class Report:
    tenant: str
    client_id: str
    month: str
    service_order_id: int
    total_minor: int
    currency: str
    report_dt: dt.datetime
    refusals: int = 0


@dataclass(frozen=True, slots=True)
class StoredAct:
    act_id: int
    month: str
    amount_minor: int
    currency: str


# --- the ledger's revenue ------------------------------------------------------------------
def first_revenue_at(cur: psycopg.Cursor) -> dt.datetime | None:
    row = cur.execute(
        f"SELECT min(t.created_at) FROM transfers t WHERE {_IS_REVENUE}",
        (),  # no parameters, but '%%' still means '%'
    ).fetchone()
    return None if row is None else row[0]


def clients_with_revenue(
    cur: psycopg.Cursor, since: dt.datetime, until: dt.datetime
) -> list[ClientKey]:
    """Clients with a revenue transfer applied in [since, until)."""
    rows = cur.execute(
        f"SELECT DISTINCT t.tenant, t.client_id FROM transfers t WHERE {_IS_REVENUE}"
        " AND t.created_at >= %s AND t.created_at < %s ORDER BY 1, 2",
        (since, until),
    ).fetchall()
    return [(str(t), str(c)) for t, c in rows]


def clients_registered(
    cur: psycopg.Cursor, since: dt.datetime, until: dt.datetime
) -> list[ClientKey]:
    """Clients whose Balance order became known in [since, until): their revenue so far
    may never have been reported (charged before Balance answered the registration)."""
    rows = cur.execute(
        "SELECT tenant, client_id FROM balance_accounts WHERE service_order_id IS NOT NULL"
        " AND updated_at >= %s AND updated_at < %s ORDER BY 1, 2",
        (since, until),
    ).fetchall()
    return [(str(t), str(c)) for t, c in rows]


def revenue_totals(
    cur: psycopg.Cursor,
    clients: Sequence[ClientKey],
    until: dt.datetime,
    since: dt.datetime | None = None,
) -> dict[ClientKey, int]:
    """Each client's revenue applied before `until` (and at or after `since`, when given),
    in minor units: charges and confirmed holds less refunds. One query per call, each
    client read through its own index range (no query scans other clients' rows)."""
    if not clients:
        return {}
    rows = cur.execute(
        f"SELECT c.tenant, c.client_id, COALESCE(sum({_SIGNED}), 0)"
        " FROM unnest(%s::text[], %s::text[]) AS c(tenant, client_id)"
        " LEFT JOIN transfers t ON t.tenant = c.tenant AND t.client_id = c.client_id"
        f" AND {_IS_REVENUE}"
        " AND t.created_at < %s AND (%s::timestamptz IS NULL OR t.created_at >= %s)"
        " GROUP BY c.tenant, c.client_id",
        ([t for t, _ in clients], [c for _, c in clients], until, since, since),
    ).fetchall()
    return {(str(t), str(c)): int(total) for t, c, total in rows}


def ledger_revenue(
    cur: psycopg.Cursor, key: ClientKey, start: dt.datetime, end: dt.datetime
) -> int:
    return revenue_totals(cur, [key], end, start)[key]


# --- consumption reports -------------------------------------------------------------------
def watermark(cur: psycopg.Cursor, *, lock: bool = False) -> dt.datetime | None:
    sql = "SELECT counted_until FROM consumption_watermark WHERE name = %s"
    row = cur.execute(sql + (" FOR UPDATE" if lock else ""), (WATERMARK,)).fetchone()
    return None if row is None else row[0]


def set_watermark(cur: psycopg.Cursor, counted_until: dt.datetime) -> None:
    cur.execute(
        "INSERT INTO consumption_watermark (name, counted_until) VALUES (%s, %s)"
        " ON CONFLICT (name) DO UPDATE SET counted_until = EXCLUDED.counted_until,"
        " updated_at = now()",
        (WATERMARK, counted_until),
    )


def reportable(
    cur: psycopg.Cursor, clients: Sequence[ClientKey]
) -> dict[ClientKey, tuple[int, str]]:
    """Of `clients`, those with a Balance order: (service order id, wallet currency)."""
    if not clients:
        return {}
    rows = cur.execute(
        "SELECT a.tenant, a.client_id, a.service_order_id, COALESCE(w.currency, 'RUB')"
        " FROM unnest(%s::text[], %s::text[]) AS c(tenant, client_id)"
        " JOIN balance_accounts a ON a.tenant = c.tenant AND a.client_id = c.client_id"
        " LEFT JOIN wallets w ON w.tenant = c.tenant AND w.client_id = c.client_id"
        " WHERE a.service_order_id IS NOT NULL",
        ([t for t, _ in clients], [c for _, c in clients]),
    ).fetchall()
    return {(str(t), str(c)): (int(o), str(cur_)) for t, c, o, cur_ in rows}


def latest_totals(cur: psycopg.Cursor, clients: Sequence[ClientKey]) -> dict[ClientKey, int]:
    """Each client's total in its latest report row (any month), if it has one."""
    if not clients:
        return {}
    rows = cur.execute(
        "SELECT DISTINCT ON (r.tenant, r.client_id) r.tenant, r.client_id, r.total_minor"
        " FROM unnest(%s::text[], %s::text[]) AS c(tenant, client_id)"
        " JOIN consumption_reports r ON r.tenant = c.tenant AND r.client_id = c.client_id"
        " ORDER BY r.tenant, r.client_id, r.month DESC",
        ([t for t, _ in clients], [c for _, c in clients]),
    ).fetchall()
    return {(str(t), str(c)): int(total) for t, c, total in rows}


def put_report(cur: psycopg.Cursor, report: Report) -> None:
    """The client's report for that month becomes `report`, waiting for Balance."""
    cur.execute(
        "INSERT INTO consumption_reports (tenant, client_id, month, service_order_id,"
        " total_minor, currency, report_dt) VALUES (%s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (tenant, client_id, month) DO UPDATE SET"
        " service_order_id = EXCLUDED.service_order_id, total_minor = EXCLUDED.total_minor,"
        " currency = EXCLUDED.currency, report_dt = EXCLUDED.report_dt, accepted = false,"
        " updated_at = now()",
        (
            report.tenant,
            report.client_id,
            report.month,
            report.service_order_id,
            report.total_minor,
            report.currency,
            report.report_dt,
        ),
    )


def waiting_reports(cur: psycopg.Cursor, limit: int, month_max: str | None = None) -> list[Report]:
    """Reports Balance has not accepted yet, oldest month first (a month's final figures go
    before the next month's)."""
    rows = cur.execute(
        "SELECT tenant, client_id, month, service_order_id, total_minor, currency, report_dt,"
        " refusals FROM consumption_reports WHERE NOT accepted"
        " AND (%s::text IS NULL OR month <= %s)"
        " ORDER BY month, tenant, client_id LIMIT %s",
        (month_max, month_max, limit),
    ).fetchall()
    return [
        Report(str(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4]), str(r[5]), r[6], int(r[7]))
        for r in rows
    ]


def mark_accepted(cur: psycopg.Cursor, report: Report) -> bool:
    """Accepted, if the row still holds exactly the report that was sent (a newer figure
    made meanwhile stays waiting)."""
    cur.execute(
        "UPDATE consumption_reports SET accepted = true, accepted_at = now(), updated_at = now()"
        " WHERE tenant = %s AND client_id = %s AND month = %s AND total_minor = %s"
        " AND report_dt = %s AND NOT accepted",
        (report.tenant, report.client_id, report.month, report.total_minor, report.report_dt),
    )
    return cur.rowcount == 1


def mark_refused(cur: psycopg.Cursor, report: Report) -> None:
    cur.execute(
        "UPDATE consumption_reports SET refusals = refusals + 1, updated_at = now()"
        " WHERE tenant = %s AND client_id = %s AND month = %s",
        (report.tenant, report.client_id, report.month),
    )


# --- acts and reconciliations --------------------------------------------------------------
def balance_clients(cur: psycopg.Cursor) -> list[tuple[str, str, int]]:
    """(tenant, client id, Balance client id) of every client registered in Balance."""
    rows = cur.execute(
        "SELECT tenant, client_id, balance_client_id FROM balance_accounts"
        " WHERE balance_client_id IS NOT NULL ORDER BY tenant, client_id"
    ).fetchall()
    return [(str(t), str(c), int(b)) for t, c, b in rows]


def insert_act(
    cur: psycopg.Cursor,
    key: ClientKey,
    month: str,
    *,
    act_id: int,
    act_date: dt.date,
    external_id: str,
    contract_id: int | None,
    amount_minor: int,
    amount_nds_minor: int,
    paid_amount_minor: int,
    currency: str,
) -> dt.datetime | None:
    """Store an act once; its import time when it is new, None when it was there already."""
    row = cur.execute(
        "INSERT INTO acts (act_id, tenant, client_id, month, act_date, external_id, contract_id,"
        " amount_minor, amount_nds_minor, paid_amount_minor, currency)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (act_id) DO NOTHING RETURNING imported_at",
        (
            act_id,
            key[0],
            key[1],
            month,
            act_date,
            external_id,
            contract_id,
            amount_minor,
            amount_nds_minor,
            paid_amount_minor,
            currency,
        ),
    ).fetchone()
    return None if row is None else row[0]


def act_amounts(cur: psycopg.Cursor, key: ClientKey, month: str) -> list[StoredAct]:
    rows = cur.execute(
        "SELECT act_id, month, amount_minor, currency FROM acts"
        " WHERE tenant = %s AND client_id = %s AND month = %s ORDER BY act_id",
        (key[0], key[1], month),
    ).fetchall()
    return [StoredAct(int(a), str(m), int(x), str(c)) for a, m, x, c in rows]


def clients_with_acts(cur: psycopg.Cursor, month: str) -> list[ClientKey]:
    rows = cur.execute(
        "SELECT DISTINCT tenant, client_id FROM acts WHERE month = %s ORDER BY 1, 2", (month,)
    ).fetchall()
    return [(str(t), str(c)) for t, c in rows]


def month_has_acts(cur: psycopg.Cursor, month: str) -> bool:
    return (
        cur.execute("SELECT 1 FROM acts WHERE month = %s LIMIT 1", (month,)).fetchone() is not None
    )


def wallet_currency(cur: psycopg.Cursor, key: ClientKey) -> str:
    row = cur.execute(
        "SELECT currency FROM wallets WHERE tenant = %s AND client_id = %s", key
    ).fetchone()
    return "RUB" if row is None else str(row[0])


def put_reconciliation(
    cur: psycopg.Cursor,
    key: ClientKey,
    month: str,
    *,
    currency: str,
    act_minor: int,
    ledger_minor: int,
    act_count: int,
    status: str,
) -> tuple[int, dt.datetime] | None:
    """Store the client's month; (revision, checked_at) when it is new or its figures
    changed, None when the stored one says the same already."""
    row = cur.execute(
        "INSERT INTO reconciliations (tenant, client_id, month, currency, act_minor,"
        " ledger_minor, difference_minor, act_count, status)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (tenant, client_id, month) DO UPDATE SET"
        " currency = EXCLUDED.currency, act_minor = EXCLUDED.act_minor,"
        " ledger_minor = EXCLUDED.ledger_minor, difference_minor = EXCLUDED.difference_minor,"
        " act_count = EXCLUDED.act_count, status = EXCLUDED.status,"
        " revision = reconciliations.revision + 1, checked_at = now()"
        " WHERE (reconciliations.act_minor, reconciliations.ledger_minor,"
        " reconciliations.act_count, reconciliations.status)"
        " IS DISTINCT FROM (EXCLUDED.act_minor, EXCLUDED.ledger_minor, EXCLUDED.act_count,"
        " EXCLUDED.status)"
        " RETURNING revision, checked_at",
        (
            key[0],
            key[1],
            month,
            currency,
            act_minor,
            ledger_minor,
            act_minor - ledger_minor,
            act_count,
            status,
        ),
    ).fetchone()
    return None if row is None else (int(row[0]), row[1])


def reconciliations_of(cur: psycopg.Cursor, month: str) -> list[tuple[Any, ...]]:
    return cur.execute(
        "SELECT tenant, client_id, currency, act_minor, ledger_minor, difference_minor,"
        " act_count, status FROM reconciliations WHERE month = %s ORDER BY tenant, client_id",
        (month,),
    ).fetchall()


# --- the outbox -----------------------------------------------------------------------------
def outbox_for(cur: psycopg.Cursor, deployment: str, key: ClientKey) -> outbox_rows.Outbox:
    """An outbox on the client's acts shard, numbered after the shard's last row; the row
    lock on the shard's counter orders its writers (call `finish_outbox` before commit)."""
    n = zlib.crc32(f"{key[0]}/{key[1]}".encode()) % OUTBOX_SHARDS
    shard = f"{deployment}.acts/{n}"
    cur.execute(
        "INSERT INTO gateway_outbox_shards (shard, seq) VALUES (%s, 0) ON CONFLICT DO NOTHING",
        (shard,),
    )
    row = cur.execute(
        "SELECT seq FROM gateway_outbox_shards WHERE shard = %s FOR UPDATE", (shard,)
    ).fetchone()
    assert row is not None
    return outbox_rows.Outbox(deployment, shard, int(row[0]))


def finish_outbox(cur: psycopg.Cursor, box: outbox_rows.Outbox) -> None:
    """Write the records and move the shard's counter past them."""
    if not box.records:
        return
    outbox_rows.write(cur, box)
    cur.execute("UPDATE gateway_outbox_shards SET seq = %s WHERE shard = %s", (box.seq, box.shard))
