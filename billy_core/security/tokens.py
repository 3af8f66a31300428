"""The HTTP read API's tokens: made here, stored hashed, checked in constant time, rotatable.

A token is `bt1.<selector>.<secret>`: the selector (12 hex digits, not secret) finds its row
in `api_tokens`; only SHA-256 of the secret is stored, and the check compares digests with
`hmac.compare_digest`. The secrets are 256 random bits, so a plain hash is enough (nothing
to guess); a leaked table gives no usable token. Rotation adds a new token and gives the old
ones an `expires_at` (the overlap window); both work until then.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from billy_core.store.tables import api_tokens

_VERSION = "bt1"


@dataclass(frozen=True, slots=True)
class TokenRow:
    selector: str
    tenant: str
    created_at: datetime
    expires_at: datetime | None


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _split(token: str) -> tuple[str, str] | None:
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != _VERSION or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def issue(conn: Connection, tenant: str, expires_at: datetime | None = None) -> str:
    """Store a new token for `tenant` and return it: the only time it is ever seen whole."""
    selector, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    conn.execute(
        api_tokens.insert().values(
            selector=selector, tenant=tenant, secret_sha256=_digest(secret), expires_at=expires_at
        )
    )
    return f"{_VERSION}.{selector}.{secret}"


def tenant_of(conn: Connection, token: str, now: datetime | None = None) -> str | None:
    """The tenant `token` reads, or None (unknown, malformed, expired)."""
    parts = _split(token)
    if parts is None:
        return None
    selector, secret = parts
    row = conn.execute(
        sa.select(api_tokens.c.tenant, api_tokens.c.secret_sha256, api_tokens.c.expires_at).where(
            api_tokens.c.selector == selector
        )
    ).first()
    if row is None:
        return None
    if not hmac.compare_digest(_digest(secret), bytes(row.secret_sha256)):
        return None
    if row.expires_at is not None and row.expires_at <= (now or datetime.now(UTC)):
        return None
    return str(row.tenant)


def rotate(conn: Connection, tenant: str, overlap_s: float) -> str:
    """A new token for `tenant`; every other live token of it expires `overlap_s` from now
    (0: at once). Returns the new token."""
    if overlap_s < 0:
        raise ValueError("overlap_s: must be zero or more")
    until = datetime.now(UTC) + timedelta(seconds=overlap_s)
    conn.execute(
        api_tokens.update()
        .where(api_tokens.c.tenant == tenant)
        .where(sa.or_(api_tokens.c.expires_at.is_(None), api_tokens.c.expires_at > until))
        .values(expires_at=until)
    )
    return issue(conn, tenant)


def revoke_all(conn: Connection, tenant: str) -> int:
    """Delete every token of `tenant`; returns how many."""
    return conn.execute(api_tokens.delete().where(api_tokens.c.tenant == tenant)).rowcount


def listing(conn: Connection, tenant: str | None = None) -> list[TokenRow]:
    """Tokens (never their secrets), oldest first."""
    query = sa.select(
        api_tokens.c.selector, api_tokens.c.tenant, api_tokens.c.created_at, api_tokens.c.expires_at
    ).order_by(api_tokens.c.tenant, api_tokens.c.created_at)
    if tenant is not None:
        query = query.where(api_tokens.c.tenant == tenant)
    return [TokenRow(r.selector, r.tenant, r.created_at, r.expires_at) for r in conn.execute(query)]
