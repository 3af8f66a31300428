"""Orders: CreateOrUpdateOrdersBatch, GetOrdersInfo. Keys are CamelCase.

An order is keyed by (ServiceID, ServiceOrderID); creating it again with the same fields
is a no-op, so the call is idempotent. Its product cannot change, nor its client.
CreateOrUpdateOrdersBatch answers one `[code, message]` per order: `[0, "Success"]` or
`[-1, "<error>...</error>"]`; a bad order does not stop the others (each is its own
savepoint).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

from balance_emulator import values
from balance_emulator.errors import BalanceError, invalid_param
from balance_emulator.methods import Call, balance_method
from balance_emulator.methods.common import client_row, contract_row, product_row
from balance_emulator.store import dec

_ORDER_FIELDS = frozenset(
    {
        "ServiceID",
        "ServiceOrderID",
        "ClientID",
        "ProductID",
        "AgencyID",
        "ContractID",
        "Text",
        "GroupServiceOrderID",
        "ManagerUID",
        "RegionID",
    }
)


@balance_method("CreateOrUpdateOrdersBatch", writes=True)
def create_or_update_orders_batch(
    call: Call, uid: object, orders: object, token: object = None
) -> list[list[object]]:
    values.parse_uid(uid)
    del token  # the service token is accepted and not checked
    answers: list[list[object]] = []
    for index, order in enumerate(values.require_list(orders, "orders")):
        call.conn.execute("SAVEPOINT one_order")
        try:
            _upsert_order(call, order, index)
        except BalanceError as error:
            call.conn.execute("ROLLBACK TO one_order")
            answers.append([-1, error.to_xml(call.method)])
        else:
            answers.append([0, "Success"])
        call.conn.execute("RELEASE one_order")
    return answers


def _upsert_order(call: Call, order: object, index: int) -> None:
    struct = values.require_struct(order, f"orders[{index}]")
    values.refuse_unknown_keys(struct, _ORDER_FIELDS, f"orders[{index}]")
    for required in ("ServiceID", "ServiceOrderID", "ClientID", "ProductID"):
        if struct.get(required) in (None, ""):
            raise invalid_param(f"orders[{index}].{required} is required")
    service_id = values.parse_id(struct["ServiceID"], "ServiceID")
    service_order_id = values.parse_id(struct["ServiceOrderID"], "ServiceOrderID")
    client_id = values.parse_id(struct["ClientID"], "ClientID")
    client_row(call.conn, client_id)
    product_id = values.parse_id(struct["ProductID"], "ProductID")
    product_row(call.conn, product_id)
    optional = _optional_fields(call.conn, struct)
    now = call.now.isoformat(sep=" ")
    current = call.conn.execute(
        "SELECT * FROM orders WHERE service_id = ? AND service_order_id = ?",
        (service_id, service_order_id),
    ).fetchone()
    if current is None:
        call.conn.execute(
            "INSERT INTO orders (service_id, service_order_id, client_id, product_id,"
            " agency_id, contract_id, text, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                service_id,
                service_order_id,
                client_id,
                product_id,
                optional.get("agency_id"),
                optional.get("contract_id"),
                optional.get("text"),
                now,
                now,
            ),
        )
        return
    if current["product_id"] != product_id:
        raise BalanceError(
            "INVALID_PARAM",
            f"Order {service_id}-{service_order_id} has product {current['product_id']}: "
            f"the product of an order cannot be changed to {product_id}",
            service_id=service_id,
            service_order_id=service_order_id,
        )
    if current["client_id"] != client_id:
        raise BalanceError(
            "CLIENT_ID_MISMATCH",
            f"Order {service_id}-{service_order_id} belongs to client {current['client_id']}, "
            f"not to client {client_id}",
            service_id=service_id,
            service_order_id=service_order_id,
        )
    changes = {k: v for k, v in optional.items() if current[k] != v}
    if changes:
        assignments = ", ".join(f"{column} = ?" for column in changes)
        call.conn.execute(
            f"UPDATE orders SET {assignments}, updated_at = ? WHERE id = ?",
            (*changes.values(), now, current["id"]),
        )


def _optional_fields(conn: sqlite3.Connection, struct: Mapping[str, object]) -> dict[str, object]:
    fields: dict[str, object] = {}
    if struct.get("AgencyID") not in (None, "", 0, "0"):
        agency_id = values.parse_id(struct["AgencyID"], "AgencyID")
        client_row(conn, agency_id)
        fields["agency_id"] = agency_id
    if struct.get("ContractID") not in (None, "", 0, "0"):
        contract_id = values.parse_id(struct["ContractID"], "ContractID")
        contract_row(conn, contract_id)
        fields["contract_id"] = contract_id
    if struct.get("Text") is not None:
        fields["text"] = values.parse_text(struct["Text"], "Text")
    return fields


def order_info(row: sqlite3.Row) -> dict[str, object]:
    """GetOrdersInfo's struct: CamelCase ids, lower_case figures, decimal strings."""
    return {
        "ServiceID": row["service_id"],
        "ServiceOrderID": row["service_order_id"],
        "ClientID": row["client_id"],
        "ProductID": row["product_id"],
        "AgencyID": row["agency_id"],
        "ContractID": row["contract_id"],
        "Text": row["text"] or "",
        "consume_qty": values.qty(dec(row["consume_qty"])),
        "consume_sum": values.money(dec(row["consume_sum"])),
        "consume_amount": values.money(dec(row["consume_sum"])),
        "consume_currency": "RUB",
        "completion_qty": values.qty(dec(row["completion_qty"])),
        "completion_sum": values.money(dec(row["completion_sum"])),
    }


@balance_method("GetOrdersInfo", writes=False)
def get_orders_info(call: Call, orders: object) -> list[dict[str, object]]:
    """[{ServiceID, ServiceOrderID}] -> one struct per order that exists (others left out)."""
    answers = []
    for index, item in enumerate(values.require_list(orders, "orders")):
        struct = values.require_struct(item, f"orders[{index}]")
        service_id = values.parse_id(struct.get("ServiceID"), "ServiceID")
        service_order_id = values.parse_id(struct.get("ServiceOrderID"), "ServiceOrderID")
        row = call.conn.execute(
            "SELECT * FROM orders WHERE service_id = ? AND service_order_id = ?",
            (service_id, service_order_id),
        ).fetchone()
        if row is not None:
            answers.append(order_info(row))
    return answers
