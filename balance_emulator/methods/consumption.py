"""Consumption and acts: UpdateCampaigns, GetClientActs, and month close (used by
TestBalance.CloseMonth).

UpdateCampaigns takes cumulative totals per order (`Money` in roubles, or `Units` in the
product's unit), stamped with `dt`; a `dt` in the future is refused (0 for that order), as
is an unknown order. Each accepted report is kept with its `dt`, so a month's act is made
from the last report dated inside that month: act amount = cumulative money at the end of
the month less what earlier acts already billed. Real Balance applies reports
asynchronously; the emulator applies them before it answers (a caller must not rely on
either).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import sqlite3
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from balance_emulator import values
from balance_emulator.errors import invalid_param
from balance_emulator.methods import Call, balance_method
from balance_emulator.methods.common import client_row, inserted_id
from balance_emulator.store import dec

_CAMPAIGN_FIELDS = frozenset({"ServiceID", "ServiceOrderID", "dt", "stop", "Money", "Units"})
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@balance_method("UpdateCampaigns", writes=True)
def update_campaigns(call: Call, campaigns: object) -> dict[str, dict[str, int]]:
    """[{ServiceID, ServiceOrderID, dt, stop, Money | Units}] -> {"sid": {"oid": 1 | 0}}."""
    answers: dict[str, dict[str, int]] = {}
    for index, item in enumerate(values.require_list(campaigns, "campaigns", max_len=10000)):
        struct = values.require_struct(item, f"campaigns[{index}]")
        values.refuse_unknown_keys(struct, _CAMPAIGN_FIELDS, f"campaigns[{index}]")
        service_id = values.parse_id(struct.get("ServiceID"), "ServiceID")
        service_order_id = values.parse_id(struct.get("ServiceOrderID"), "ServiceOrderID")
        if struct.get("dt") in (None, ""):
            raise invalid_param(f"campaigns[{index}].dt is required")
        moment = values.parse_datetime(struct["dt"], "dt")
        values.parse_flag(struct.get("stop", 0), "stop")
        if ("Money" in struct) == ("Units" in struct):
            raise invalid_param(f"campaigns[{index}] needs exactly one of Money, Units")
        applied = _apply_report(call, service_id, service_order_id, moment, struct)
        answers.setdefault(str(service_id), {})[str(service_order_id)] = int(applied)
    return answers


def _apply_report(
    call: Call,
    service_id: int,
    service_order_id: int,
    moment: dt.datetime,
    struct: Mapping[str, object],
) -> bool:
    if moment > call.now:
        return False  # Balance refuses consumption dated in the future
    order = call.conn.execute(
        "SELECT o.*, p.price FROM orders o JOIN products p ON p.id = o.product_id"
        " WHERE o.service_id = ? AND o.service_order_id = ?",
        (service_id, service_order_id),
    ).fetchone()
    if order is None:
        return False
    price = dec(order["price"])
    if "Money" in struct:
        total_sum = values.parse_money(struct["Money"], "Money", positive=False)
        total_qty = values.round_qty(total_sum / price)
    else:
        total_qty = values.parse_qty(struct["Units"], "Units", positive=False)
        total_sum = values.round_money(total_qty * price)
    call.conn.execute(
        "INSERT INTO completions (order_id, dt, completion_qty, completion_sum, reported_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (
            order["id"],
            moment.isoformat(sep=" "),
            str(total_qty),
            str(total_sum),
            call.now.isoformat(sep=" "),
        ),
    )
    latest = call.conn.execute(
        "SELECT completion_qty, completion_sum FROM completions WHERE order_id = ?"
        " ORDER BY dt DESC, id DESC LIMIT 1",
        (order["id"],),
    ).fetchone()
    # The order shows the report with the latest dt (a late report about an earlier time
    # is kept for the acts but does not roll the order's figures back).
    if (dec(latest["completion_qty"]), dec(latest["completion_sum"])) != (
        dec(order["completion_qty"]),
        dec(order["completion_sum"]),
    ):
        call.conn.execute(
            "UPDATE orders SET completion_qty = ?, completion_sum = ?, updated_at = ? WHERE id = ?",
            (
                latest["completion_qty"],
                latest["completion_sum"],
                call.now.isoformat(sep=" "),
                order["id"],
            ),
        )
        call.order_changed(order["id"])
    return True


def parse_month(month: object) -> tuple[dt.datetime, dt.datetime]:
    """'YYYY-MM' -> (first moment, last second) of that month."""
    match = _MONTH.match(month) if isinstance(month, str) else None
    if match is None or not 1 <= int(match.group(2)) <= 12:
        raise invalid_param(f"month must be 'YYYY-MM', got {month!r}")
    year, number = int(match.group(1)), int(match.group(2))
    last_day = calendar.monthrange(year, number)[1]
    return dt.datetime(year, number, 1), dt.datetime(year, number, last_day, 23, 59, 59)


def close_month(conn: sqlite3.Connection, month: str, now: dt.datetime) -> dict[str, object]:
    """Make the month's acts from reported consumption; a second close of the same month
    changes nothing and answers the same acts."""
    start, end = parse_month(month)
    if start > now:
        raise invalid_param(f"month {month} has not started yet")
    if conn.execute("SELECT 1 FROM closed_months WHERE month = ?", (month,)).fetchone():
        act_ids = [
            r["id"]
            for r in conn.execute("SELECT id FROM acts WHERE month = ? ORDER BY id", (month,))
        ]
        return {"Month": month, "ActIDs": act_ids, "Created": False}
    later = conn.execute(
        "SELECT month FROM closed_months WHERE month > ? ORDER BY month LIMIT 1", (month,)
    ).fetchone()
    if later is not None:
        raise invalid_param(f"month {month} is before {later['month']}, which is closed already")
    groups: dict[tuple[int, int | None], list[ActRow]] = defaultdict(list)
    for order in conn.execute(
        "SELECT o.*, p.price, p.nds_pct FROM orders o JOIN products p ON p.id = o.product_id"
        " WHERE EXISTS (SELECT 1 FROM completions c WHERE c.order_id = o.id) ORDER BY o.id"
    ).fetchall():
        row = _act_row(conn, order, end)
        if row is not None:
            groups[(order["client_id"], _order_contract(conn, order))].append(row)
    act_ids = []
    for (client_id, contract_id), rows in groups.items():
        amount = sum((r.amount for r in rows), Decimal(0))
        act_id = inserted_id(
            conn.execute(
                "INSERT INTO acts (external_id, client_id, contract_id, month, dt, amount,"
                " amount_nds, paid_amount, created_at) VALUES ('', ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    client_id,
                    contract_id,
                    month,
                    end.replace(hour=0, minute=0, second=0).isoformat(sep=" "),
                    str(amount),
                    str(sum((r.amount_nds for r in rows), Decimal(0))),
                    str(sum((r.paid_amount for r in rows), Decimal(0))),
                    now.isoformat(sep=" "),
                ),
            )
        )
        conn.execute("UPDATE acts SET external_id = ? WHERE id = ?", (str(act_id), act_id))
        conn.executemany(
            "INSERT INTO act_rows (act_id, order_id, qty, price, amount, amount_nds, paid_amount)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    act_id,
                    r.order_id,
                    str(r.qty),
                    str(r.price),
                    str(r.amount),
                    str(r.amount_nds),
                    str(r.paid_amount),
                )
                for r in rows
            ],
        )
        act_ids.append(act_id)
    conn.execute(
        "INSERT INTO closed_months (month, closed_at) VALUES (?, ?)",
        (month, now.isoformat(sep=" ")),
    )
    return {"Month": month, "ActIDs": act_ids, "Created": True}


def _order_contract(conn: sqlite3.Connection, order: sqlite3.Row) -> int | None:
    """The contract an order's consumption is billed under: the order's own ContractID,
    else the contract of its latest invoice that names one, else none."""
    if order["contract_id"] is not None:
        return int(order["contract_id"])
    row = conn.execute(
        "SELECT i.contract_id FROM invoices i JOIN request_rows r ON r.request_id = i.request_id"
        " WHERE r.order_id = ? AND i.contract_id IS NOT NULL ORDER BY i.id DESC LIMIT 1",
        (order["id"],),
    ).fetchone()
    return None if row is None else int(row["contract_id"])


@dataclass(frozen=True)
class ActRow:
    order_id: int
    qty: Decimal
    price: Decimal
    amount: Decimal
    amount_nds: Decimal
    paid_amount: Decimal


def _act_row(conn: sqlite3.Connection, order: sqlite3.Row, end: dt.datetime) -> ActRow | None:
    """The not yet billed consumption of one order up to `end`, or None."""
    report = conn.execute(
        "SELECT completion_qty, completion_sum FROM completions WHERE order_id = ? AND dt <= ?"
        " ORDER BY dt DESC, id DESC LIMIT 1",
        (order["id"], end.isoformat(sep=" ")),
    ).fetchone()
    if report is None:
        return None
    billed = conn.execute(
        "SELECT qty, amount, paid_amount FROM act_rows WHERE order_id = ?", (order["id"],)
    ).fetchall()
    billed_qty = sum((dec(r["qty"]) for r in billed), Decimal(0))
    billed_amount = sum((dec(r["amount"]) for r in billed), Decimal(0))
    billed_paid = sum((dec(r["paid_amount"]) for r in billed), Decimal(0))
    amount = dec(report["completion_sum"]) - billed_amount
    if amount <= 0:
        return None  # nothing new (a lowered total is not refunded by an act)
    nds_pct = dec(order["nds_pct"])
    paid_left = max(dec(order["paid_sum"]) - billed_paid, Decimal(0))
    return ActRow(
        order_id=order["id"],
        qty=max(dec(report["completion_qty"]) - billed_qty, Decimal(0)),
        price=dec(order["price"]),
        amount=amount,
        amount_nds=values.round_money(amount * nds_pct / (100 + nds_pct)),
        paid_amount=min(amount, paid_left),
    )


@balance_method("GetClientActs", writes=False)
def get_client_acts(call: Call, service_token: object, params: object) -> list[dict[str, object]]:
    """service_token, {ClientID, ContractID?, DateFrom?, DateTo?} -> acts, oldest first."""
    values.parse_text(service_token, "service_token")
    struct = values.require_struct(params, "filter")
    values.refuse_unknown_keys(
        struct, frozenset({"ClientID", "ContractID", "DateFrom", "DateTo"}), "filter"
    )
    if struct.get("ClientID") in (None, ""):
        raise invalid_param("ClientID is required")
    client_id = values.parse_id(struct["ClientID"], "ClientID")
    client_row(call.conn, client_id)
    conditions, args = ["client_id = ?"], [client_id]
    if struct.get("ContractID") not in (None, ""):
        conditions.append("contract_id = ?")
        args.append(values.parse_id(struct["ContractID"], "ContractID"))
    for key, op in (("DateFrom", ">="), ("DateTo", "<=")):
        if struct.get(key) not in (None, ""):
            conditions.append(f"dt {op} ?")
            args.append(values.parse_datetime(struct[key], key).isoformat(sep=" "))  # type: ignore[arg-type]
    acts = call.conn.execute(
        f"SELECT * FROM acts WHERE {' AND '.join(conditions)} ORDER BY id", args
    ).fetchall()
    return [act_struct(call.conn, act) for act in acts]


def act_struct(conn: sqlite3.Connection, act: sqlite3.Row) -> dict[str, object]:
    rows = conn.execute(
        "SELECT r.*, o.service_id, o.service_order_id, o.product_id FROM act_rows r"
        " JOIN orders o ON o.id = r.order_id WHERE r.act_id = ? ORDER BY r.order_id",
        (act["id"],),
    ).fetchall()
    return {
        "ID": act["id"],
        "EXTERNAL_ID": act["external_id"],
        "CLIENT_ID": act["client_id"],
        "CONTRACT_ID": act["contract_id"],
        "DT": values.to_xmlrpc_datetime(act["dt"]),
        "MONTH": act["month"],
        "AMOUNT": values.money(dec(act["amount"])),
        "AMOUNT_NDS": values.money(dec(act["amount_nds"])),
        "PAID_AMOUNT": values.money(dec(act["paid_amount"])),
        "CURRENCY": "RUR",
        "ROWS": [
            {
                "SERVICE_ID": r["service_id"],
                "SERVICE_ORDER_ID": r["service_order_id"],
                "PRODUCT_ID": r["product_id"],
                "QTY": values.qty(dec(r["qty"])),
                "PRICE": values.money(dec(r["price"])),
                "AMOUNT": values.money(dec(r["amount"])),
                "AMOUNT_NDS": values.money(dec(r["amount_nds"])),
            }
            for r in rows
        ],
    }
