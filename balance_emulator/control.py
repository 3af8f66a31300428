"""`TestBalance.*`: the emulator's control namespace, like Balance's own test hooks.

Never subject to fault switches. Every method answers plain XML-RPC values; errors are
Balance-style faults (INVALID_PARAM, INVOICE_NOT_FOUND...). See README.md for shapes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, TypeVar

from balance_emulator import values
from balance_emulator.errors import BalanceError, invalid_param
from balance_emulator.faults import FaultSwitches
from balance_emulator.methods.consumption import close_month
from balance_emulator.methods.invoices import invoice_status, put_money_on_order, request_allocation
from balance_emulator.notifier import FORMS
from balance_emulator.store import dec, set_meta

if TYPE_CHECKING:
    from balance_emulator.app import Emulator

ControlFunc = Callable[..., object]
CONTROL_METHODS: dict[str, ControlFunc] = {}
F = TypeVar("F", bound=ControlFunc)

_COUNTED_TABLES = ("clients", "persons", "contracts", "orders", "requests", "invoices", "acts")


def control(name: str) -> Callable[[F], F]:
    def register(func: F) -> F:
        CONTROL_METHODS[name] = func
        return func

    return register


@control("Ping")
def ping(app: Emulator) -> dict[str, object]:
    """-> {status: 'ok', version, pid}: the emulator is up (used for readiness)."""
    import os

    from balance_emulator import __version__

    return {"status": "ok", "version": __version__, "pid": os.getpid()}


@control("PayInvoice")
def pay_invoice(app: Emulator, invoice_id: object, amount: object = None) -> dict[str, object]:
    """A bank payment for an invoice arrives (amount: decimal string; default: what is
    left to pay). A prepay invoice's money goes onto its orders (notifications follow);
    a payment on a credit invoice repays the contract's credit limit instead."""
    iid = values.parse_id(invoice_id, "invoice_id")
    with app.store.write() as conn:
        call = app.new_call(conn, "TestBalance.PayInvoice")
        invoice = conn.execute("SELECT * FROM invoices WHERE id = ?", (iid,)).fetchone()
        if invoice is None:
            raise BalanceError(
                "INVOICE_NOT_FOUND", f"Invoice with ID {iid} not found in DB", object_id=iid
            )
        received = dec(invoice["receipt_sum"])
        left = dec(invoice["total_sum"]) - received
        if amount in (None, ""):
            if left <= 0:
                raise invalid_param(f"invoice {iid} is paid already: give an amount")
            paid = left
        else:
            paid = values.parse_money(amount, "amount")
        conn.execute(
            "UPDATE invoices SET receipt_sum = ? WHERE id = ?", (str(received + paid), iid)
        )
        if not invoice["credit"]:
            for order_id, share in request_allocation(
                conn, invoice["request_id"], paid, received
            ).items():
                put_money_on_order(call, order_id, share, paid=True)
        invoice = conn.execute("SELECT * FROM invoices WHERE id = ?", (iid,)).fetchone()
    app.notifier.wake()
    return {
        "InvoiceID": iid,
        "Paid": values.money(paid),
        "TotalSum": values.money(dec(invoice["total_sum"])),
        "ReceiptSum": values.money(dec(invoice["receipt_sum"])),
        "Status": invoice_status(invoice),
        "Credit": invoice["credit"],
    }


@control("CloseMonth")
def close_month_control(app: Emulator, month: object) -> dict[str, object]:
    """'YYYY-MM' -> {Month, ActIDs, Created}; acts dated the month's last day. Idempotent."""
    with app.store.write() as conn:
        return close_month(conn, month, values.now_moscow())  # type: ignore[arg-type]


@control("SetFaults")
def set_faults(app: Emulator, switches: object) -> dict[str, object]:
    """Replace every fault switch (keys left out get their defaults) -> GetFaults()."""
    parsed = FaultSwitches.from_struct(values.require_struct(switches, "switches"))
    with app.store.write() as conn:
        set_meta(conn, "faults", parsed.to_json())
    app.faults.replace(parsed)
    return parsed.to_struct()


@control("GetFaults")
def get_faults(app: Emulator) -> dict[str, object]:
    return app.faults.switches.to_struct()


@control("SetNotify")
def set_notify(app: Emulator, settings: object) -> dict[str, object]:
    """Change where and how notifications go (until the next restart) -> GetNotify().
    Keys: url (None: hold them), form ('json' | 'xmlrpc'), retry_base_s, retry_max_s,
    timeout_s, batch_max."""
    struct = values.require_struct(settings, "settings")
    values.refuse_unknown_keys(
        struct,
        frozenset({"url", "form", "retry_base_s", "retry_max_s", "timeout_s", "batch_max"}),
        "settings",
    )
    changes: dict[str, object] = {}
    if "url" in struct:
        url = struct["url"]
        if url not in (None, "") and not (
            isinstance(url, str) and url.startswith(("http://", "https://"))
        ):
            raise invalid_param(f"url must be an http(s) URL, got {url!r}")
        changes["url"] = url or None
    if "form" in struct:
        if struct["form"] not in FORMS:
            raise invalid_param(f"form must be one of {FORMS}, got {struct['form']!r}")
        changes["form"] = struct["form"]
    for key in ("retry_base_s", "retry_max_s", "timeout_s"):
        if key in struct:
            number = values.parse_decimal(
                str(struct[key]) if isinstance(struct[key], float) else struct[key], key
            )
            if number <= 0:
                raise invalid_param(f"{key} must be positive")
            changes[key] = float(number)  # seconds of waiting, not money
    if "batch_max" in struct:
        changes["batch_max"] = values.parse_id(struct["batch_max"], "batch_max")
    return app.notifier.configure(**changes).public()


@control("GetNotify")
def get_notify(app: Emulator) -> dict[str, object]:
    return app.notifier.config.public()


@control("GetNotifications")
def get_notifications(app: Emulator, params: object = None) -> list[dict[str, object]]:
    """{ServiceID?, ServiceOrderID?, PendingOnly?} -> outbox rows, oldest first:
    [{ID, Tid, ServiceID, ServiceOrderID, Payload, Attempts, Deliveries, Delivered,
    LastError}]."""
    import json

    struct = values.require_struct(params or {}, "filter")
    values.refuse_unknown_keys(
        struct, frozenset({"ServiceID", "ServiceOrderID", "PendingOnly"}), "filter"
    )
    conditions, args = ["1 = 1"], []
    if struct.get("ServiceID") is not None:
        conditions.append("o.service_id = ?")
        args.append(values.parse_id(struct["ServiceID"], "ServiceID"))
    if struct.get("ServiceOrderID") is not None:
        conditions.append("o.service_order_id = ?")
        args.append(values.parse_id(struct["ServiceOrderID"], "ServiceOrderID"))
    if struct.get("PendingOnly"):
        conditions.append("n.delivered_at IS NULL")
    with app.store.read() as conn:
        rows = conn.execute(
            "SELECT n.*, o.service_id, o.service_order_id FROM outbox n"
            f" JOIN orders o ON o.id = n.order_id WHERE {' AND '.join(conditions)}"
            " ORDER BY n.id",
            args,
        ).fetchall()
    return [
        {
            "ID": row["id"],
            "Tid": row["tid"],
            "ServiceID": row["service_id"],
            "ServiceOrderID": row["service_order_id"],
            "Payload": json.loads(row["payload"]),
            "Attempts": row["attempts"],
            "Deliveries": row["deliveries"],
            "Delivered": row["delivered_at"] is not None,
            "LastError": row["last_error"],
        }
        for row in rows
    ]


@control("WaitNotifications")
def wait_notifications(app: Emulator, timeout_s: object = 10) -> int:
    """Wait until no notification is pending (or timeout_s passed) -> the pending count."""
    deadline = time.monotonic() + float(values.parse_decimal(timeout_s, "timeout_s"))
    while True:
        with app.store.read() as conn:
            pending = conn.execute(
                "SELECT count(*) FROM outbox WHERE delivered_at IS NULL"
            ).fetchone()[0]
        if pending == 0 or time.monotonic() >= deadline:
            return int(pending)
        app.notifier.wake()
        time.sleep(0.05)


@control("AddProduct")
def add_product(app: Emulator, product: object) -> int:
    """{ID, Name, Unit, Price (with VAT, decimal string), NDS (VAT percent)} -> ID.
    Adding an existing ID replaces it."""
    struct = values.require_struct(product, "product")
    values.refuse_unknown_keys(struct, frozenset({"ID", "Name", "Unit", "Price", "NDS"}), "product")
    product_id = values.parse_id(struct.get("ID"), "ID")
    name = values.parse_text(struct.get("Name", f"Product {product_id}"), "Name")
    unit = values.parse_text(struct.get("Unit", "unit"), "Unit")
    price = values.parse_money(struct.get("Price"), "Price")
    nds = values.parse_decimal(struct.get("NDS", "22"), "NDS")
    if not Decimal(0) <= nds < 100:
        raise invalid_param(f"NDS must be a percentage in [0, 100), got {nds}")
    with app.store.write() as conn:
        conn.execute(
            "INSERT OR REPLACE INTO products (id, name, unit, price, nds_pct)"
            " VALUES (?, ?, ?, ?, ?)",
            (product_id, name, unit, str(price), str(nds)),
        )
    return product_id


@control("GetProducts")
def get_products(app: Emulator) -> list[dict[str, object]]:
    """-> [{ID, Name, Unit, Price, NDS}]."""
    with app.store.read() as conn:
        rows = conn.execute("SELECT * FROM products ORDER BY id").fetchall()
    return [
        {
            "ID": r["id"],
            "Name": r["name"],
            "Unit": r["unit"],
            "Price": values.money(dec(r["price"])),
            "NDS": values.qty(dec(r["nds_pct"])),
        }
        for r in rows
    ]


@control("Stats")
def stats(app: Emulator) -> dict[str, object]:
    """Counts of everything kept, notification and call counters."""
    with app.store.read() as conn:
        counts: dict[str, object] = {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
            for table in _COUNTED_TABLES
        }
        counts["notifications_pending"] = conn.execute(
            "SELECT count(*) FROM outbox WHERE delivered_at IS NULL"
        ).fetchone()[0]
        counts["notifications_delivered"] = conn.execute(
            "SELECT count(*) FROM outbox WHERE delivered_at IS NOT NULL"
        ).fetchone()[0]
        counts["closed_months"] = [
            r[0] for r in conn.execute("SELECT month FROM closed_months ORDER BY month")
        ]
    counts["notify"] = app.notifier.snapshot_counts()
    counts["calls"] = app.call_counts()
    counts["faults_injected"] = app.faults.counts()
    return counts


@control("Dump")
def dump(app: Emulator, params: object = None) -> dict[str, object]:
    """{ClientID?} -> {clients: [{CLIENT_ID, NAME, EMAIL, PERSON_IDS, CONTRACT_IDS, ORDERS,
    REQUEST_IDS, INVOICE_IDS, ACT_IDS}]}: one entry per client, so a test can check
    "exactly one client per billy client"."""
    struct = values.require_struct(params or {}, "filter")
    values.refuse_unknown_keys(struct, frozenset({"ClientID"}), "filter")
    with app.store.read() as conn:
        if struct.get("ClientID") is not None:
            clients = conn.execute(
                "SELECT * FROM clients WHERE id = ?",
                (values.parse_id(struct["ClientID"], "ClientID"),),
            ).fetchall()
        else:
            clients = conn.execute("SELECT * FROM clients ORDER BY id").fetchall()

        def ids(table: str, client_id: int) -> list[int]:
            return [
                r[0]
                for r in conn.execute(
                    f"SELECT id FROM {table} WHERE client_id = ? ORDER BY id",  # noqa: S608
                    (client_id,),
                )
            ]

        out = []
        for client in clients:
            orders = conn.execute(
                "SELECT * FROM orders WHERE client_id = ? ORDER BY id", (client["id"],)
            ).fetchall()
            out.append(
                {
                    "CLIENT_ID": client["id"],
                    "NAME": client["name"],
                    "EMAIL": client["email"] or "",
                    "PERSON_IDS": ids("persons", client["id"]),
                    "CONTRACT_IDS": ids("contracts", client["id"]),
                    "ORDERS": [
                        {
                            "ServiceID": o["service_id"],
                            "ServiceOrderID": o["service_order_id"],
                            "ProductID": o["product_id"],
                            "consume_sum": values.money(dec(o["consume_sum"])),
                            "completion_sum": values.money(dec(o["completion_sum"])),
                        }
                        for o in orders
                    ],
                    "REQUEST_IDS": ids("requests", client["id"]),
                    "INVOICE_IDS": ids("invoices", client["id"]),
                    "ACT_IDS": ids("acts", client["id"]),
                }
            )
    return {"clients": out}


@control("Reset")
def reset(app: Emulator) -> dict[str, object]:
    """Forget everything (clients ... outbox), reseed the products, clear fault switches and
    counters -> Stats(). The notify settings and the Tid clock stay."""
    app.store.reset()
    app.faults.replace(FaultSwitches())
    app.faults.clear_counts()
    app.reset_call_counts()
    app.notifier.clear_counts()
    return stats(app)
