"""Lookups shared by the method modules: fetch a row or raise Balance's NOT_FOUND fault."""

from __future__ import annotations

import sqlite3

from balance_emulator.errors import BalanceError


def client_row(conn: sqlite3.Connection, client_id: int) -> sqlite3.Row:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM clients WHERE id = ?", (client_id,)
    ).fetchone()
    if row is None:
        raise BalanceError(
            "CLIENT_NOT_FOUND", f"Client with ID {client_id} not found in DB", object_id=client_id
        )
    return row


def person_row(conn: sqlite3.Connection, person_id: int) -> sqlite3.Row:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM persons WHERE id = ?", (person_id,)
    ).fetchone()
    if row is None:
        raise BalanceError(
            "PERSON_NOT_FOUND", f"Person with ID {person_id} not found in DB", object_id=person_id
        )
    return row


def contract_row(conn: sqlite3.Connection, contract_id: int) -> sqlite3.Row:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM contracts WHERE id = ?", (contract_id,)
    ).fetchone()
    if row is None:
        raise BalanceError(
            "CONTRACT_NOT_FOUND",
            f"Contract with ID {contract_id} not found in DB",
            object_id=contract_id,
        )
    return row


def product_row(conn: sqlite3.Connection, product_id: int) -> sqlite3.Row:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM products WHERE id = ?", (product_id,)
    ).fetchone()
    if row is None:
        raise BalanceError(
            "PRODUCT_NOT_FOUND",
            f"Product with ID {product_id} not found in DB",
            object_id=product_id,
        )
    return row


def order_row(conn: sqlite3.Connection, service_id: int, service_order_id: int) -> sqlite3.Row:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM orders WHERE service_id = ? AND service_order_id = ?",
        (service_id, service_order_id),
    ).fetchone()
    if row is None:
        raise BalanceError(
            "ORDERS_NOT_SYNCHRONIZED",
            f"Order {service_id}-{service_order_id} not found: "
            "create it with CreateOrUpdateOrdersBatch first",
            service_id=service_id,
            service_order_id=service_order_id,
        )
    return row


def check_owner(owner_client_id: int, client_id: int, what: str) -> None:
    if owner_client_id != client_id:
        raise BalanceError(
            "CLIENT_ID_MISMATCH",
            f"{what} belongs to client {owner_client_id}, not to client {client_id}",
        )


def inserted_id(cursor: sqlite3.Cursor) -> int:
    """The id an INSERT made (sqlite3 types it Optional; after an INSERT it never is)."""
    if cursor.lastrowid is None:  # pragma: no cover - only after a statement that is no INSERT
        raise RuntimeError("INSERT gave no row id")
    return cursor.lastrowid
