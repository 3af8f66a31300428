"""Sending commands and reading results as plain Avro data (the wire module), no billy import."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.contract import wire
from tests.contract.conftest import Billy


def new_id(prefix: str = "cmd") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def send_command(
    billy: Billy,
    tenant: str,
    client: str,
    body_type: str,
    body: dict[str, Any],
    command_id: str | None = None,
) -> str:
    command_id = command_id or new_id()
    value = wire.encode("Command", wire.command(command_id, client, body_type, body))
    topic = "admin.commands" if tenant.startswith("admin:") else f"{tenant}.commands"
    key = f"{tenant[6:]}/{client}" if tenant.startswith("admin:") else client
    billy.send(topic, key.encode(), value)
    return command_id


def results(
    billy: Billy, topic: str, wanted: dict[str, int], timeout_s: float = 60.0
) -> dict[str, list[dict[str, Any]]]:
    """Decoded results per command_id, waiting until each id has `wanted[id]` of them."""

    def decoded(records: list[Any]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for m in records:
            r = wire.decode(m.value(), "Result")
            out.setdefault(r["command_id"], []).append(r)
        return out

    records = billy.read(
        topic,
        lambda rs: all(len(decoded(rs).get(i, [])) >= n for i, n in wanted.items()),
        timeout_s,
    )
    time.sleep(0.5)  # anything extra would show up now
    records = billy.read(
        topic, lambda rs: all(len(decoded(rs).get(i, [])) >= n for i, n in wanted.items())
    )
    return decoded(records)


def register(billy: Billy, tenant: str, client: str) -> dict[str, Any]:
    cid = send_command(
        billy,
        tenant,
        client,
        "RegisterClient",
        {"name": "Dealer", "email": "dealer@example.ru", "currency": "RUB"},
    )
    return results(billy, f"{tenant}.results", {cid: 1})[cid][0]


def fund(billy: Billy, tenant: str, client: str, amount_minor: int) -> dict[str, Any]:
    cid = send_command(
        billy,
        f"admin:{tenant}",
        client,
        "Adjust",
        {
            "amount_minor": amount_minor,
            "currency": "RUB",
            "reason": "contract test funding",
            "operator": "qa",
        },
    )
    return results(billy, "admin.results", {cid: 1})[cid][0]
