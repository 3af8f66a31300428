"""Which billy client owns a Balance order: read from the mapping rows of Balance part 1.

`balance_accounts` is the ledger's copy (written when a registration's outcome is applied);
`gateway_clients` is the gateway's own view, written before the outcome exists: a
notification for a client registered a moment ago is found there. Both are indexed by
`service_order_id` (migration 0008). ServiceOrderIDs are billy's own hashes per deployment,
tenant and client (consumers/gateway/flows.service_order_id), so one order has one owner.
"""

from __future__ import annotations

from collections.abc import Iterable

import psycopg_pool

from billy_core import db

__all__ = ["OrderDirectory"]


class OrderDirectory:
    """Thread-safe (a connection pool)."""

    def __init__(self, database_url: str, *, size: int = 4) -> None:
        self._pool: psycopg_pool.ConnectionPool = db.pool(
            database_url, size=size, name="billy-intake"
        )
        self._pool.open(wait=False)

    def owners(self, service_order_ids: Iterable[int]) -> dict[int, tuple[str, str]]:
        """order id -> (tenant, client_id) for the orders billy knows; the others left out.
        Raises psycopg errors (the caller answers Balance with a failure: retried later)."""
        ids = sorted(set(service_order_ids))
        if not ids:
            return {}
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT service_order_id, tenant, client_id FROM balance_accounts"
                " WHERE service_order_id = ANY(%s)"
                " UNION SELECT service_order_id, tenant, client_id FROM gateway_clients"
                " WHERE service_order_id = ANY(%s) AND order_synced",
                (ids, ids),
            ).fetchall()
        found: dict[int, tuple[str, str]] = {}
        for order_id, tenant, client_id in rows:
            owner = (tenant, client_id)
            if found.setdefault(int(order_id), owner) != owner:
                raise RuntimeError(f"Balance order {order_id} maps to two clients")
        return found

    def close(self) -> None:
        self._pool.close()
