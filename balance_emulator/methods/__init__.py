"""Balance's methods, one module per area; each registers itself in BALANCE_METHODS.

A method is `func(call, *xmlrpc_params)`. It reads and writes through `call.conn` (one
SQLite transaction: committed when the method returns, rolled back when it raises), raises
`BalanceError` for anything Balance refuses, and returns plain XML-RPC values. Every
method answers under both `Balance.` and `Balance2.`.
"""

from __future__ import annotations

import datetime as dt
import inspect
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

MethodFunc = Callable[..., object]


@dataclass
class Call:
    """What a method gets besides its XML-RPC arguments."""

    conn: sqlite3.Connection
    method: str  # the full name called, for fault documents: "Balance2.CreateClient"
    now: dt.datetime  # naive Moscow time, fixed for the whole call
    public_url: str  # where this emulator's pages are reached (UserPath)
    changed_orders: list[int] = field(default_factory=list)
    epoch_s: float = field(default_factory=time.time)

    def order_changed(self, order_id: int) -> None:
        """Queue a NotifyOrder2 with the order's figures as they stand now (same tx)."""
        from balance_emulator.outbox import enqueue_order_notification

        enqueue_order_notification(self.conn, order_id, self.epoch_s)
        self.changed_orders.append(order_id)


@dataclass(frozen=True)
class MethodSpec:
    name: str
    func: MethodFunc
    writes: bool
    signature: inspect.Signature


BALANCE_METHODS: dict[str, MethodSpec] = {}


F = TypeVar("F", bound=MethodFunc)


def balance_method(name: str, *, writes: bool) -> Callable[[F], F]:
    """Register `func` as Balance's method `name` (bare, without the Balance2. prefix)."""

    def register(func: F) -> F:
        if name in BALANCE_METHODS:
            raise RuntimeError(f"Balance method {name} registered twice")
        signature = inspect.signature(func)
        params = list(signature.parameters.values())[1:]  # without `call`
        BALANCE_METHODS[name] = MethodSpec(name, func, writes, signature.replace(parameters=params))
        return func

    return register


def load_all() -> dict[str, MethodSpec]:
    """Import every method module (they register on import) and return the registry."""
    from balance_emulator.methods import (  # noqa: F401
        clients,
        consumption,
        contracts,
        invoices,
        orders,
        persons,
    )

    return BALANCE_METHODS
