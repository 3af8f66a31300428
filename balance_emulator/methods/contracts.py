"""Contracts: CreateOffer, CreateCommonContract, GetClientContracts, GetClientCreditLimits.

Input keys lower_case; answers UPPER_CASE. payment_type 2 = prepay, 3 = postpay (needs
payment_term in days; credit_limit_single is its credit limit, 0 when left out). Currency
is Balance's spelling 'RUR' ('RUB' is accepted and stored as 'RUR').

The credit limit is spent by credit invoices (CreateInvoice with Credit=1) and given back
when such an invoice is paid (TestBalance.PayInvoice on it: the client settled its bill).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from decimal import Decimal

from balance_emulator import values
from balance_emulator.errors import invalid_param
from balance_emulator.methods import Call, balance_method
from balance_emulator.methods.common import (
    check_owner,
    client_row,
    inserted_id,
    person_row,
    product_row,
)
from balance_emulator.store import dec

PREPAY = 2
POSTPAY = 3
_CONTRACT_FIELDS = frozenset(
    {
        "client_id",
        "person_id",
        "currency",
        "firm_id",
        "services",
        "payment_type",
        "payment_term",
        "credit_limit_single",
        "start_dt",
        "finish_dt",
        "signed",
        "manager_uid",
        "personal_account",
        "offer_confirmation_type",
    }
)


def _create_contract(call: Call, uid: object, params: object, kind: str) -> dict[str, object]:
    values.parse_uid(uid)
    struct = values.require_struct(params, "contract")
    values.refuse_unknown_keys(struct, _CONTRACT_FIELDS, "contract")
    for required in ("client_id", "person_id", "currency", "payment_type", "services"):
        if struct.get(required) in (None, ""):
            raise invalid_param(f"{required} is required")
    client_id = values.parse_id(struct["client_id"], "client_id")
    client_row(call.conn, client_id)
    person_id = values.parse_id(struct["person_id"], "person_id")
    check_owner(person_row(call.conn, person_id)["client_id"], client_id, f"Person {person_id}")
    currency = struct["currency"]
    if currency not in ("RUR", "RUB"):
        raise invalid_param(f"currency must be 'RUR', got {currency!r}")
    payment_type = struct["payment_type"]
    if payment_type not in (PREPAY, POSTPAY, str(PREPAY), str(POSTPAY)):
        raise invalid_param(f"payment_type must be 2 (prepay) or 3 (postpay), got {payment_type!r}")
    payment_type = int(str(payment_type))
    payment_term: int | None = None
    credit_limit = Decimal(0)
    if payment_type == POSTPAY:
        if struct.get("payment_term") in (None, ""):
            raise invalid_param("payment_term (days) is required for a postpay contract")
        payment_term = values.parse_id(struct["payment_term"], "payment_term")
        if struct.get("credit_limit_single") not in (None, ""):
            credit_limit = values.parse_money(
                struct["credit_limit_single"], "credit_limit_single", positive=False
            )
    elif struct.get("credit_limit_single") not in (None, "", 0, "0"):
        raise invalid_param("credit_limit_single is for postpay contracts (payment_type 3)")
    services = [
        values.parse_id(s, "services") for s in values.require_list(struct["services"], "services")
    ]
    if not services:
        raise invalid_param("services must name at least one service")
    firm_id = values.parse_id(struct.get("firm_id", 1), "firm_id")
    start = call.now.replace(hour=0, minute=0, second=0)
    if struct.get("start_dt") not in (None, ""):
        start = values.parse_datetime(struct["start_dt"], "start_dt")
    finish: dt.datetime | None = None
    if struct.get("finish_dt") not in (None, ""):
        finish = values.parse_datetime(struct["finish_dt"], "finish_dt")
        if finish <= start:
            raise invalid_param("finish_dt must be after start_dt")
    signed = values.parse_flag(struct.get("signed", 1 if kind == "offer" else 0), "signed")
    cursor = call.conn.execute(
        "INSERT INTO contracts (external_id, kind, client_id, person_id, currency, firm_id,"
        " services, payment_type, payment_term, credit_limit, start_dt, finish_dt, signed,"
        " created_at) VALUES ('', ?, ?, ?, 'RUR', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            kind,
            client_id,
            person_id,
            firm_id,
            json.dumps(services),
            payment_type,
            payment_term,
            str(credit_limit),
            start.isoformat(sep=" "),
            finish.isoformat(sep=" ") if finish else None,
            int(signed),
            call.now.isoformat(sep=" "),
        ),
    )
    contract_id = inserted_id(cursor)
    external_id = f"ОФ-{contract_id}" if kind == "offer" else f"{contract_id}/{call.now:%y}"
    call.conn.execute(
        "UPDATE contracts SET external_id = ? WHERE id = ?", (external_id, contract_id)
    )
    return {"ID": contract_id, "EXTERNAL_ID": external_id}


@balance_method("CreateOffer", writes=True)
def create_offer(call: Call, uid: object, params: object) -> dict[str, object]:
    """An offer (a contract accepted by paying; signed unless signed=0): {ID, EXTERNAL_ID}."""
    return _create_contract(call, uid, params, "offer")


@balance_method("CreateCommonContract", writes=True)
def create_common_contract(call: Call, uid: object, params: object) -> dict[str, object]:
    """A paper contract (unsigned unless signed=1): {ID, EXTERNAL_ID}."""
    return _create_contract(call, uid, params, "common")


def credit_spent(conn: sqlite3.Connection, contract_id: int) -> Decimal:
    """Credit invoices' totals less what the client has paid back on them."""
    spent = Decimal(0)
    for row in conn.execute(
        "SELECT total_sum, receipt_sum FROM invoices WHERE contract_id = ? AND credit = 1",
        (contract_id,),
    ):
        spent += max(dec(row["total_sum"]) - dec(row["receipt_sum"]), Decimal(0))
    return spent


def contract_is_active(row: sqlite3.Row, now: dt.datetime) -> bool:
    started = dt.datetime.fromisoformat(row["start_dt"]) <= now
    finished = row["finish_dt"] is not None and dt.datetime.fromisoformat(row["finish_dt"]) <= now
    return started and not finished


def contract_struct(row: sqlite3.Row, now: dt.datetime) -> dict[str, object]:
    return {
        "ID": row["id"],
        "EXTERNAL_ID": row["external_id"],
        "CLIENT_ID": row["client_id"],
        "PERSON_ID": row["person_id"],
        "PAYMENT_TYPE": row["payment_type"],
        "PAYMENT_TERM": row["payment_term"],
        "CREDIT_LIMIT_SINGLE": values.money(dec(row["credit_limit"])),
        "CURRENCY": row["currency"],
        "FIRM_ID": row["firm_id"],
        "SERVICES": json.loads(row["services"]),
        "IS_ACTIVE": int(contract_is_active(row, now)),
        "IS_SIGNED": row["signed"],
        "IS_SUSPENDED": 0,
        "IS_CANCELLED": 0,
        "CONTRACT_TYPE": "offer" if row["kind"] == "offer" else "common",
        "DT": values.to_xmlrpc_datetime(row["start_dt"]),
        "FINISH_DT": values.to_xmlrpc_datetime(row["finish_dt"]),
    }


@balance_method("GetClientContracts", writes=False)
def get_client_contracts(call: Call, params: object) -> list[dict[str, object]]:
    """{ClientID, PersonID?, ContractType? ('offer'|'common')} -> [contract struct, ...]."""
    struct = values.require_struct(params, "filter")
    values.refuse_unknown_keys(
        struct, frozenset({"ClientID", "PersonID", "ContractType"}), "filter"
    )
    if struct.get("ClientID") in (None, ""):
        raise invalid_param("ClientID is required")
    client_id = values.parse_id(struct["ClientID"], "ClientID")
    client_row(call.conn, client_id)
    rows = call.conn.execute(
        "SELECT * FROM contracts WHERE client_id = ? ORDER BY id", (client_id,)
    ).fetchall()
    out = [contract_struct(row, call.now) for row in rows]
    if struct.get("PersonID") not in (None, ""):
        person_id = values.parse_id(struct["PersonID"], "PersonID")
        out = [c for c in out if c["PERSON_ID"] == person_id]
    if struct.get("ContractType") not in (None, ""):
        out = [c for c in out if c["CONTRACT_TYPE"] == struct["ContractType"]]
    return out


@balance_method("GetClientCreditLimits", writes=False)
def get_client_credit_limits(
    call: Call, client_id: object, product_id: object
) -> dict[str, object]:
    """{CURRENCY 'RUR', LIMITS: [{CONTRACT_ID, LIMIT_TOTAL, LIMIT_SPENT}], PRODUCT_PRICE}
    for the client's active postpay contracts."""
    cid = values.parse_id(client_id, "client_id")
    client_row(call.conn, cid)
    product = product_row(call.conn, values.parse_id(product_id, "product_id"))
    limits = []
    for row in call.conn.execute(
        "SELECT * FROM contracts WHERE client_id = ? AND payment_type = ? ORDER BY id",
        (cid, POSTPAY),
    ).fetchall():
        if not contract_is_active(row, call.now):
            continue
        limits.append(
            {
                "CONTRACT_ID": row["id"],
                "LIMIT_TOTAL": values.money(dec(row["credit_limit"])),
                "LIMIT_SPENT": values.money(credit_spent(call.conn, row["id"])),
            }
        )
    return {
        "CURRENCY": "RUR",
        "LIMITS": limits,
        "PRODUCT_PRICE": values.money(dec(product["price"])),
    }
