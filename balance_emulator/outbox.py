"""The durable outbox of NotifyOrder2 notifications (written in the caller's transaction).

A notification is queued in the same transaction that changed the order's money, with the
order's cumulative figures at that moment, so it can never be lost or describe a state
that was rolled back. The notifier thread delivers it later (notifier.py).

Tid: digits as a string, growing over the emulator's whole life (across restarts and
Reset): max(last Tid + 1, microseconds since the epoch).
"""

from __future__ import annotations

import json
import sqlite3
import time

from balance_emulator import values
from balance_emulator.store import dec, get_meta, set_meta

SIGNAL_DESCRIPTION = "Order balance have been changed"


def next_tid(conn: sqlite3.Connection) -> str:
    last = int(get_meta(conn, "last_tid") or "0")
    tid = max(last + 1, time.time_ns() // 1000)
    set_meta(conn, "last_tid", str(tid))
    return str(tid)


def order_figures(order: sqlite3.Row) -> dict[str, str]:
    """The cumulative figures of an order, as NotifyOrder2 shows them."""
    return {
        "ConsumeQty": values.qty(dec(order["consume_qty"])),
        "ConsumeSum": values.money(dec(order["consume_sum"])),
        "ConsumeAmount": values.money(dec(order["consume_sum"])),
        "ConsumeCurrency": "RUB",
        "CompletionQty": values.qty(dec(order["completion_qty"])),
    }


def enqueue_order_notification(conn: sqlite3.Connection, order_id: int, now_s: float) -> None:
    order = conn.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
    tid = next_tid(conn)
    struct: dict[str, object] = {
        "ServiceID": order["service_id"],
        "ServiceOrderID": order["service_order_id"],
        "Tid": tid,
        "Signal": 1,
        "SignalDescription": SIGNAL_DESCRIPTION,
        **order_figures(order),
    }
    conn.execute(
        "INSERT INTO outbox (order_id, tid, payload, created_at, next_attempt_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (order_id, tid, json.dumps(struct), now_s, now_s),
    )
