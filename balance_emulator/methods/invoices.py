"""Requests and invoices: CreateRequest2, CreateInvoice, and the listings that tell billy
what an unclear CreateRequest2 / CreateInvoice did (GetClientRequests, GetClientInvoices).

Neither create method is idempotent: every call makes a new object. A request lists
orders and quantities (its sum is Qty x the product's price); an invoice bills a request
to a payer. A prepay invoice puts money on its orders when it is paid
(TestBalance.PayInvoice); a credit invoice (Credit=1, against a signed, active postpay
contract) puts the money on the orders at once and spends the contract's credit limit.
Every change of an order's money queues a NotifyOrder2.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from decimal import Decimal

from balance_emulator import values
from balance_emulator.errors import BalanceError, invalid_param
from balance_emulator.methods import Call, balance_method
from balance_emulator.methods.common import (
    check_owner,
    client_row,
    contract_row,
    inserted_id,
    order_row,
    person_row,
)
from balance_emulator.methods.contracts import POSTPAY, contract_is_active, credit_spent
from balance_emulator.store import dec

_REQUEST_ROW_FIELDS = frozenset({"ServiceID", "ServiceOrderID", "Qty"})
_INVOICE_FIELDS = frozenset(
    {"RequestID", "PaysysID", "PersonID", "ContractID", "Credit", "Overdraft"}
)


def _props_json(props: object) -> str:
    if props is None:
        return "{}"
    struct = values.require_struct(props, "props")
    return json.dumps({key: str(value) for key, value in struct.items()})


@balance_method("CreateRequest2", writes=True)
def create_request2(
    call: Call, uid: object, client_id: object, orders: object, props: object = None
) -> dict[str, object]:
    """-> {RequestID, UserPath (the payment page), AdminPath}. A new request every call."""
    values.parse_uid(uid)
    cid = values.parse_id(client_id, "client_id")
    client_row(call.conn, cid)
    items = values.require_list(orders, "orders")
    if not items:
        raise invalid_param("orders must not be empty")
    rows: list[tuple[int, Decimal, Decimal]] = []
    for index, item in enumerate(items):
        struct = values.require_struct(item, f"orders[{index}]")
        values.refuse_unknown_keys(struct, _REQUEST_ROW_FIELDS, f"orders[{index}]")
        service_id = values.parse_id(struct.get("ServiceID"), "ServiceID")
        service_order_id = values.parse_id(struct.get("ServiceOrderID"), "ServiceOrderID")
        order = order_row(call.conn, service_id, service_order_id)
        check_owner(order["client_id"], cid, f"Order {service_id}-{service_order_id}")
        quantity = values.parse_qty(struct.get("Qty"), "Qty")
        price = dec(
            call.conn.execute(
                "SELECT price FROM products WHERE id = ?", (order["product_id"],)
            ).fetchone()["price"]
        )
        amount = values.round_money(quantity * price)
        if amount <= 0:
            raise invalid_param(f"orders[{index}].Qty {quantity} costs less than a kopeck")
        rows.append((order["id"], quantity, amount))
    total = sum((amount for _, _, amount in rows), Decimal(0))
    request_id = inserted_id(
        call.conn.execute(
            "INSERT INTO requests (client_id, props, total_sum, created_at) VALUES (?, ?, ?, ?)",
            (cid, _props_json(props), str(total), call.now.isoformat(sep=" ")),
        )
    )
    call.conn.executemany(
        "INSERT INTO request_rows (request_id, row_no, order_id, qty, sum) VALUES (?, ?, ?, ?, ?)",
        [
            (request_id, row_no, order_id, str(quantity), str(amount))
            for row_no, (order_id, quantity, amount) in enumerate(rows)
        ],
    )
    return {
        "RequestID": request_id,
        "UserPath": user_path(call.public_url, request_id),
        "AdminPath": f"{call.public_url}/admin/paypreview.xml?request_id={request_id}",
    }


def user_path(public_url: str, request_id: int) -> str:
    return f"{public_url}/paypreview.xml?request_id={request_id}"


@balance_method("CreateInvoice", writes=True)
def create_invoice(call: Call, uid: object, params: object) -> int:
    """-> invoice_id. A new invoice every call; Credit=1 credits the orders at once."""
    values.parse_uid(uid)
    struct = values.require_struct(params, "invoice")
    values.refuse_unknown_keys(struct, _INVOICE_FIELDS, "invoice")
    for required in ("RequestID", "PaysysID", "PersonID"):
        if struct.get(required) in (None, ""):
            raise invalid_param(f"{required} is required")
    request_id = values.parse_id(struct["RequestID"], "RequestID")
    request = call.conn.execute("SELECT * FROM requests WHERE id = ?", (request_id,)).fetchone()
    if request is None:
        raise BalanceError(
            "REQUEST_NOT_FOUND",
            f"Request with ID {request_id} not found in DB",
            object_id=request_id,
        )
    person_id = values.parse_id(struct["PersonID"], "PersonID")
    person = person_row(call.conn, person_id)
    check_owner(person["client_id"], request["client_id"], f"Person {person_id}")
    paysys_id = values.parse_id(struct["PaysysID"], "PaysysID")
    paysys = call.conn.execute("SELECT * FROM paysyses WHERE id = ?", (paysys_id,)).fetchone()
    if paysys is None:
        raise invalid_param(f"PaysysID {paysys_id} is not a known payment system")
    if paysys["person_type"] != person["type"]:
        raise invalid_param(
            f"PaysysID {paysys_id} is for persons of type {paysys['person_type']}, "
            f"person {person_id} is {person['type']}"
        )
    credit = values.parse_flag(struct.get("Credit", 0), "Credit")
    if values.parse_flag(struct.get("Overdraft", 0), "Overdraft"):
        raise BalanceError("CONTRACT_RULE_VIOLATION", "Overdraft is not available to this client")
    total = dec(request["total_sum"])
    contract_id: int | None = None
    if struct.get("ContractID") not in (None, "", 0, "0"):
        contract_id = values.parse_id(struct["ContractID"], "ContractID")
        _check_contract(call, contract_row(call.conn, contract_id), request, person_id)
    if credit:
        if contract_id is None:
            raise BalanceError(
                "CONTRACT_RULE_VIOLATION", "A credit invoice needs a postpay ContractID"
            )
        _check_credit(call, contract_row(call.conn, contract_id), total)
    invoice_id = inserted_id(
        call.conn.execute(
            "INSERT INTO invoices (external_id, request_id, client_id, person_id, contract_id,"
            " paysys_id, credit, total_sum, created_at) VALUES ('', ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                request_id,
                request["client_id"],
                person_id,
                contract_id,
                paysys_id,
                int(credit),
                str(total),
                call.now.isoformat(sep=" "),
            ),
        )
    )
    call.conn.execute(
        "UPDATE invoices SET external_id = ? WHERE id = ?", (f"Б-{invoice_id}-1", invoice_id)
    )
    if credit:
        for order_id, amount in request_allocation(call.conn, request_id, total).items():
            put_money_on_order(call, order_id, amount, paid=False)
    return invoice_id


def _check_contract(
    call: Call, contract: sqlite3.Row, request: sqlite3.Row, person_id: int
) -> None:
    check_owner(contract["client_id"], request["client_id"], f"Contract {contract['id']}")
    if contract["person_id"] != person_id:
        raise BalanceError(
            "CONTRACT_RULE_VIOLATION",
            f"Contract {contract['id']} is with person {contract['person_id']}, "
            f"not with person {person_id}",
        )
    if not contract_is_active(contract, call.now):
        raise BalanceError("CONTRACT_RULE_VIOLATION", f"Contract {contract['id']} is not active")
    services = set(json.loads(contract["services"]))
    for row in call.conn.execute(
        "SELECT o.service_id FROM request_rows r JOIN orders o ON o.id = r.order_id"
        " WHERE r.request_id = ?",
        (request["id"],),
    ):
        if row["service_id"] not in services:
            raise BalanceError(
                "CONTRACT_RULE_VIOLATION",
                f"Contract {contract['id']} does not cover service {row['service_id']}",
            )


def _check_credit(call: Call, contract: sqlite3.Row, total: Decimal) -> None:
    if contract["payment_type"] != POSTPAY:
        raise BalanceError(
            "CONTRACT_RULE_VIOLATION",
            f"Contract {contract['id']} is prepay: no credit invoices on it",
        )
    if not contract["signed"]:
        raise BalanceError("CONTRACT_RULE_VIOLATION", f"Contract {contract['id']} is not signed")
    limit = dec(contract["credit_limit"])
    spent = credit_spent(call.conn, contract["id"])
    if spent + total > limit:
        raise BalanceError(
            "CONTRACT_RULE_VIOLATION",
            f"Credit limit exceeded on contract {contract['id']}: limit {values.money(limit)}, "
            f"spent {values.money(spent)}, asked {values.money(total)}",
            contract_id=contract["id"],
        )


def request_allocation(
    conn: sqlite3.Connection, request_id: int, amount: Decimal, already: Decimal = Decimal(0)
) -> dict[int, Decimal]:
    """How `amount` of money (after `already` was received) spreads over a request's
    orders: rows are filled in order; anything beyond the request's total goes to the
    first row's order."""
    rows = conn.execute(
        "SELECT order_id, sum FROM request_rows WHERE request_id = ? ORDER BY row_no",
        (request_id,),
    ).fetchall()
    shares: dict[int, Decimal] = {}
    left_before = already
    to_place = amount
    for row in rows:
        row_sum = dec(row["sum"])
        filled = min(left_before, row_sum)
        left_before -= filled
        take = min(row_sum - filled, to_place)
        if take > 0:
            shares[row["order_id"]] = shares.get(row["order_id"], Decimal(0)) + take
            to_place -= take
    if to_place > 0:
        first = rows[0]["order_id"]
        shares[first] = shares.get(first, Decimal(0)) + to_place
    return shares


def put_money_on_order(call: Call, order_id: int, amount: Decimal, *, paid: bool) -> None:
    """Add money to an order's consumption (its balance in Balance) and notify."""
    order = call.conn.execute(
        "SELECT o.*, p.price FROM orders o JOIN products p ON p.id = o.product_id WHERE o.id = ?",
        (order_id,),
    ).fetchone()
    consume_sum = dec(order["consume_sum"]) + amount
    consume_qty = values.round_qty(consume_sum / dec(order["price"]))
    paid_sum = dec(order["paid_sum"]) + (amount if paid else Decimal(0))
    call.conn.execute(
        "UPDATE orders SET consume_sum = ?, consume_qty = ?, paid_sum = ?, updated_at = ?"
        " WHERE id = ?",
        (str(consume_sum), str(consume_qty), str(paid_sum), call.now.isoformat(sep=" "), order_id),
    )
    call.order_changed(order_id)


def invoice_status(invoice: sqlite3.Row) -> str:
    total, received = dec(invoice["total_sum"]), dec(invoice["receipt_sum"])
    if received >= total:
        return "paid"
    return "partly_paid" if received > 0 else "unpaid"


def _order_keys(conn: sqlite3.Connection, request_id: int) -> list[dict[str, object]]:
    return [
        {
            "ServiceID": row["service_id"],
            "ServiceOrderID": row["service_order_id"],
            "Qty": values.qty(dec(row["qty"])),
            "Sum": values.money(dec(row["sum"])),
        }
        for row in conn.execute(
            "SELECT o.service_id, o.service_order_id, r.qty, r.sum FROM request_rows r"
            " JOIN orders o ON o.id = r.order_id WHERE r.request_id = ? ORDER BY r.row_no",
            (request_id,),
        )
    ]


def invoice_struct(conn: sqlite3.Connection, invoice: sqlite3.Row) -> dict[str, object]:
    return {
        "ID": invoice["id"],
        "EXTERNAL_ID": invoice["external_id"],
        "REQUEST_ID": invoice["request_id"],
        "CLIENT_ID": invoice["client_id"],
        "PERSON_ID": invoice["person_id"],
        "CONTRACT_ID": invoice["contract_id"],
        "PAYSYS_ID": invoice["paysys_id"],
        "CREDIT": invoice["credit"],
        "TOTAL_SUM": values.money(dec(invoice["total_sum"])),
        "RECEIPT_SUM": values.money(dec(invoice["receipt_sum"])),
        "CURRENCY": "RUR",
        "STATUS": invoice_status(invoice),
        "DT": values.to_xmlrpc_datetime(invoice["created_at"]),
        "ROWS": _order_keys(conn, invoice["request_id"]),
    }


def _order_filter(conn: sqlite3.Connection, struct: Mapping[str, object]) -> tuple[int, int] | None:
    has_sid = struct.get("ServiceID") not in (None, "")
    has_oid = struct.get("ServiceOrderID") not in (None, "")
    if has_sid != has_oid:
        raise invalid_param("ServiceID and ServiceOrderID go together")
    if not has_sid:
        return None
    return (
        values.parse_id(struct["ServiceID"], "ServiceID"),
        values.parse_id(struct["ServiceOrderID"], "ServiceOrderID"),
    )


def _requests_of(
    conn: sqlite3.Connection, client_id: int, order_key: tuple[int, int] | None
) -> list[int]:
    if order_key is None:
        rows = conn.execute("SELECT id FROM requests WHERE client_id = ? ORDER BY id", (client_id,))
    else:
        rows = conn.execute(
            "SELECT DISTINCT r.request_id AS id FROM request_rows r"
            " JOIN orders o ON o.id = r.order_id JOIN requests q ON q.id = r.request_id"
            " WHERE q.client_id = ? AND o.service_id = ? AND o.service_order_id = ?"
            " ORDER BY r.request_id",
            (client_id, *order_key),
        )
    return [row["id"] for row in rows]


@balance_method("GetClientRequests", writes=False)
def get_client_requests(call: Call, params: object) -> list[dict[str, object]]:
    """{ClientID, ServiceID?, ServiceOrderID?} -> the client's requests, oldest first:
    [{RequestID, ClientID, DT, TotalSum, UserPath, Rows: [{ServiceID, ServiceOrderID, Qty,
    Sum}], InvoiceIDs: [...]}]. (An emulator extension: how billy finds out whether an
    unclear CreateRequest2 made a request.)"""
    struct = values.require_struct(params, "filter")
    values.refuse_unknown_keys(
        struct, frozenset({"ClientID", "ServiceID", "ServiceOrderID"}), "filter"
    )
    if struct.get("ClientID") in (None, ""):
        raise invalid_param("ClientID is required")
    client_id = values.parse_id(struct["ClientID"], "ClientID")
    client_row(call.conn, client_id)
    answers: list[dict[str, object]] = []
    for request_id in _requests_of(call.conn, client_id, _order_filter(call.conn, struct)):
        request = call.conn.execute("SELECT * FROM requests WHERE id = ?", (request_id,)).fetchone()
        invoice_ids = [
            row["id"]
            for row in call.conn.execute(
                "SELECT id FROM invoices WHERE request_id = ? ORDER BY id", (request_id,)
            )
        ]
        answers.append(
            {
                "RequestID": request_id,
                "ClientID": client_id,
                "DT": values.to_xmlrpc_datetime(request["created_at"]),
                "TotalSum": values.money(dec(request["total_sum"])),
                "UserPath": user_path(call.public_url, request_id),
                "Rows": _order_keys(call.conn, request_id),
                "InvoiceIDs": invoice_ids,
            }
        )
    return answers


@balance_method("GetClientInvoices", writes=False)
def get_client_invoices(call: Call, params: object) -> list[dict[str, object]]:
    """{ClientID, RequestID?, ContractID?, ServiceID?, ServiceOrderID?} -> the client's
    invoices, oldest first: [{ID, EXTERNAL_ID, REQUEST_ID, CLIENT_ID, PERSON_ID,
    CONTRACT_ID, PAYSYS_ID, CREDIT, TOTAL_SUM, RECEIPT_SUM, CURRENCY, STATUS, DT, ROWS}].
    (An emulator extension: how billy finds out whether an unclear CreateInvoice made an
    invoice.)"""
    struct = values.require_struct(params, "filter")
    values.refuse_unknown_keys(
        struct,
        frozenset({"ClientID", "RequestID", "ContractID", "ServiceID", "ServiceOrderID"}),
        "filter",
    )
    if struct.get("ClientID") in (None, ""):
        raise invalid_param("ClientID is required")
    client_id = values.parse_id(struct["ClientID"], "ClientID")
    client_row(call.conn, client_id)
    request_ids = set(_requests_of(call.conn, client_id, _order_filter(call.conn, struct)))
    if struct.get("RequestID") not in (None, ""):
        request_ids &= {values.parse_id(struct["RequestID"], "RequestID")}
    contract_id = None
    if struct.get("ContractID") not in (None, ""):
        contract_id = values.parse_id(struct["ContractID"], "ContractID")
    invoices = call.conn.execute(
        "SELECT * FROM invoices WHERE client_id = ? ORDER BY id", (client_id,)
    ).fetchall()
    return [
        invoice_struct(call.conn, invoice)
        for invoice in invoices
        if invoice["request_id"] in request_ids
        and (contract_id is None or invoice["contract_id"] == contract_id)
    ]
