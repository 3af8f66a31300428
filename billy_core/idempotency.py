"""The idempotency key's companion: a hash of what a command asks for.

Same `command_id` and same hash is a resend (answered with the stored result); same
`command_id` and another hash is `idempotency_conflict`. The hash covers the client and the
body, not `issued_at`: a service that rebuilds the same command on retry is still resending.
"""

from __future__ import annotations

import hashlib
from dataclasses import fields
from typing import Any

from billy_core.commands import Command

# Optional fields added to a body after commands were stored: left out while unset, so a
# command stored before the field existed hashes the same when it is resent.
_ADDED_LATER = frozenset(
    {
        ("RegisterClient", "phone"),
        ("UpsertContract", "payment_term_days"),
        ("RequestInvoice", "contract_id"),
        ("TransferCredit", "contract_id"),
    }
)


# A body class's field names in order (`dataclasses.fields` builds them on every call).
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(body: Any) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(type(body))
    if names is None:
        names = _FIELD_NAMES[type(body)] = tuple(f.name for f in fields(body))
    return names


def payload_hash(command: Command) -> bytes:
    body = command.body
    kind = type(body).__name__
    parts = [kind, command.client_id]
    for name in _field_names(body):
        value = getattr(body, name)
        if value is None and (kind, name) in _ADDED_LATER:
            continue
        if isinstance(value, dict):  # a map's order is not part of its meaning
            value = sorted(value.items())
        parts.append(f"{name}={value!r}")
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).digest()
