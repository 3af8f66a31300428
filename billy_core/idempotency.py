"""The idempotency key's companion: a hash of what a command asks for.

Same `command_id` and same hash is a resend (answered with the stored result); same
`command_id` and another hash is `idempotency_conflict`. The hash covers the client and the
body, not `issued_at`: a service that rebuilds the same command on retry is still resending.
"""

from __future__ import annotations

import hashlib
from dataclasses import fields

from billy_core.commands import Command


def payload_hash(command: Command) -> bytes:
    body = command.body
    parts = [type(body).__name__, command.client_id]
    for f in fields(body):
        value = getattr(body, f.name)
        if isinstance(value, dict):  # a map's order is not part of its meaning
            value = sorted(value.items())
        parts.append(f"{f.name}={value!r}")
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).digest()
