"""The gateway's SQL: pending requests, their progress, claims, the client view, the outcome.

Each function is one short autocommit statement (or, for `finish`, one transaction) on a
connection the caller holds; none runs while a Balance call is in flight.
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from billy_core.stream import outbox as outbox_rows

ClientKey = tuple[str, str]
SHARDS = 16  # gateway outbox shards per deployment; one client always uses the same one


@dataclass(slots=True)
class RequestRow:
    id: int
    tenant: str
    client_id: str
    command_id: str
    kind: str
    body: dict[str, Any]
    currency: str
    attempts: int
    progress: dict[str, Any]
    first_attempt_at: dt.datetime | None

    @property
    def client(self) -> ClientKey:
        return (self.tenant, self.client_id)


@dataclass(slots=True)
class ClientView:
    """What the gateway knows the client has in Balance (the next request builds on it)."""

    tenant: str
    client_id: str
    balance_client_id: int | None = None
    service_order_id: int | None = None
    order_synced: bool = False
    payers: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> person_id, kind
    contracts: dict[str, dict[str, Any]] = field(default_factory=dict)
    default_payer: str | None = None


def heads(
    conn: psycopg.Connection, deployment: str, busy: set[ClientKey], limit: int
) -> list[RequestRow]:
    """The oldest pending request of each of this deployment's clients that is due and not
    being performed (another deployment's requests are its own gateway's)."""
    rows = conn.execute(
        "SELECT id, tenant, client_id, command_id, kind, body, currency, attempts, progress,"
        " first_attempt_at FROM ("
        "  SELECT DISTINCT ON (tenant, client_id) * FROM balance_requests"
        "  WHERE deployment = %s AND state = 'pending' ORDER BY tenant, client_id, id"
        ") h WHERE next_attempt_at <= now() ORDER BY id LIMIT %s",
        (deployment, limit + len(busy)),
    ).fetchall()
    out = [RequestRow(*row) for row in rows]
    return [r for r in out if r.client not in busy][:limit]


def pending_count(conn: psycopg.Connection, deployment: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM balance_requests WHERE deployment = %s AND state = 'pending'",
        (deployment,),
    ).fetchone()
    return int(row[0]) if row else 0


def start_attempt(conn: psycopg.Connection, request: RequestRow) -> None:
    conn.execute(
        "UPDATE balance_requests SET attempts = attempts + 1,"
        " first_attempt_at = coalesce(first_attempt_at, now()) WHERE id = %s",
        (request.id,),
    )
    request.attempts += 1


def save_progress(conn: psycopg.Connection, request: RequestRow, **updates: Any) -> None:
    """Merge `updates` into the request's progress, durably, before going on."""
    request.progress.update(updates)
    conn.execute(
        "UPDATE balance_requests SET progress = progress || %s WHERE id = %s",
        (Jsonb(updates), request.id),
    )


def postpone(conn: psycopg.Connection, request: RequestRow, delay_s: float) -> None:
    conn.execute(
        "UPDATE balance_requests SET next_attempt_at = now() + make_interval(secs => %s)"
        " WHERE id = %s",
        (delay_s, request.id),
    )


def claim(conn: psycopg.Connection, kind: str, balance_id: int, request: RequestRow) -> bool:
    """Record that this command owns a Balance object; False when another command does."""
    conn.execute(
        "INSERT INTO balance_claims (kind, balance_id, tenant, client_id, command_id)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (kind, balance_id, request.tenant, request.client_id, request.command_id),
    )
    row = conn.execute(
        "SELECT tenant, command_id FROM balance_claims WHERE kind = %s AND balance_id = %s",
        (kind, balance_id),
    ).fetchone()
    return row is not None and (row[0], row[1]) == (request.tenant, request.command_id)


def claimed(
    conn: psycopg.Connection, kind: str, ids: list[int], by_other_than: RequestRow
) -> set[int]:
    """Of `ids`, those claimed by another command than `by_other_than`'s."""
    if not ids:
        return set()
    rows = conn.execute(
        "SELECT balance_id FROM balance_claims WHERE kind = %s AND balance_id = ANY(%s)"
        " AND (tenant, command_id) <> (%s, %s)",
        (kind, ids, by_other_than.tenant, by_other_than.command_id),
    ).fetchall()
    return {int(r[0]) for r in rows}


def load_view(conn: psycopg.Connection, tenant: str, client_id: str) -> ClientView:
    row = conn.execute(
        "SELECT balance_client_id, service_order_id, order_synced, payers, contracts,"
        " default_payer FROM gateway_clients WHERE tenant = %s AND client_id = %s",
        (tenant, client_id),
    ).fetchone()
    if row is None:
        return ClientView(tenant, client_id)
    return ClientView(tenant, client_id, row[0], row[1], row[2], row[3], row[4], row[5])


def save_view(conn: psycopg.Connection, view: ClientView) -> None:
    conn.execute(
        "INSERT INTO gateway_clients (tenant, client_id, balance_client_id, service_order_id,"
        " order_synced, payers, contracts, default_payer) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (tenant, client_id) DO UPDATE SET"
        " balance_client_id = EXCLUDED.balance_client_id,"
        " service_order_id = EXCLUDED.service_order_id, order_synced = EXCLUDED.order_synced,"
        " payers = EXCLUDED.payers, contracts = EXCLUDED.contracts,"
        " default_payer = EXCLUDED.default_payer, updated_at = now()",
        (
            view.tenant,
            view.client_id,
            view.balance_client_id,
            view.service_order_id,
            view.order_synced,
            Jsonb(view.payers),
            Jsonb(view.contracts),
            view.default_payer,
        ),
    )


def shard_of(deployment: str, tenant: str, client_id: str) -> str:
    """The client's gateway outbox shard: all its outcomes go out in the order written."""
    n = zlib.crc32(f"{tenant}/{client_id}".encode()) % SHARDS
    return f"{deployment}.gateway/{n}"


def finish(
    conn: psycopg.Connection,
    request: RequestRow,
    *,
    deployment: str,
    topic: str,
    value: bytes,
    code: str,
) -> bool:
    """One transaction: mark the request done and write its outcome to the outbox (the
    relay publishes it). False when the request was already done (nothing written)."""
    shard = shard_of(deployment, request.tenant, request.client_id)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "UPDATE balance_requests SET state = 'done', outcome_code = %s, done_at = now(),"
            " progress = %s WHERE id = %s AND state = 'pending'",
            (code, Jsonb(request.progress), request.id),
        )
        if cur.rowcount != 1:
            return False
        cur.execute(
            "INSERT INTO gateway_outbox_shards (shard, seq) VALUES (%s, 0) ON CONFLICT DO NOTHING",
            (shard,),
        )
        # The row lock orders this shard's writers: seqs commit in the order they are taken.
        row = cur.execute(
            "UPDATE gateway_outbox_shards SET seq = seq + 1 WHERE shard = %s RETURNING seq",
            (shard,),
        ).fetchone()
        assert row is not None
        box = outbox_rows.Outbox(deployment, shard, int(row[0]) - 1)
        box.add(
            topic,
            f"{request.tenant}/{request.client_id}",
            value,
            f"balance-outcome:{request.tenant}:{request.command_id}",
        )
        outbox_rows.write(cur, box)
    try:  # wake the relay at once; best effort (it looks by itself after its idle wait)
        outbox_rows.notify(conn, deployment)
    except psycopg.OperationalError:
        pass
    return True
