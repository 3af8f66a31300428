"""The ledger's SQL: load what a batch touches, write what it decided.

Every function takes an open psycopg cursor inside the caller's transaction; nothing here
commits. Reads lock the wallet rows they return (`FOR UPDATE`, in key order, so two writers
never deadlock), because a client's wallet can be touched from two partitions: its tenant's
command topic and the admin topic.

Inserts go through COPY: at thousands of commands per second, one round trip per table per
batch instead of one per row is what keeps PostgreSQL from being the limit.

Key lists travel as binary arrays (`%b`): psycopg dumps a text-format array element by
element in Python, with quoting, and PostgreSQL parses it back; binary costs a third of the
client's CPU per element and less of the server's (measured: 0.75 against 2.16 µs).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import psycopg

from billy_core.ledger.state import ChargeRecord, ClientState, HoldRecord, Wallet

ClientKey = tuple[str, str]  # (tenant, client_id)


# --- loading -----------------------------------------------------------------------------


def load_processed(
    cur: psycopg.Cursor, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], tuple[bytes, bytes]]:
    """(tenant, command_id) -> (payload_hash, stored result bytes) for ids seen before."""
    tenants, ids = _columns(keys, 2)
    if not ids:
        return {}
    cur.execute(
        "SELECT p.tenant, p.command_id, p.payload_hash, p.result FROM processed_commands p"
        " JOIN unnest(%b::text[], %b::text[]) AS k(tenant, command_id)"
        " USING (tenant, command_id)",
        (tenants, ids),
    )
    return {(t, c): (bytes(h), bytes(r)) for t, c, h, r in cur}


def load_states(
    cur: psycopg.Cursor,
    clients: Iterable[ClientKey],
    holds: Iterable[tuple[str, str, str]],
    charges: Iterable[tuple[str, str, str]],
) -> dict[ClientKey, ClientState]:
    """A ClientState per client: its wallet (locked) and the holds and charges named."""
    states = {key: ClientState(tenant=key[0], client_id=key[1]) for key in sorted(set(clients))}
    tenants, client_ids = _columns(states, 2)
    if not client_ids:
        return states
    cur.execute(
        "SELECT w.tenant, w.client_id, w.currency, w.available_minor, w.held_minor,"
        " w.version, w.overdraft_limit_minor FROM wallets w"
        " JOIN unnest(%b::text[], %b::text[]) AS k(tenant, client_id) USING (tenant, client_id)"
        " ORDER BY w.tenant, w.client_id FOR UPDATE OF w",
        (tenants, client_ids),
    )
    for tenant, client_id, currency, available, held, version, overdraft in cur:
        states[(tenant, client_id)].wallet = Wallet(
            tenant=tenant,
            client_id=client_id,
            currency=currency,
            available_minor=available,
            held_minor=held,
            version=version,
            overdraft_limit_minor=overdraft,
        )
    t, c, h = _columns(holds, 3)
    if h:
        cur.execute(
            "SELECT x.tenant, x.client_id, x.hold_id, x.product_id, x.amount_minor, x.currency,"
            " x.expires_at_ms, x.status, x.confirmed_minor, x.settled_by FROM holds x"
            " JOIN unnest(%b::text[], %b::text[], %b::text[]) AS k(tenant, client_id, hold_id)"
            " USING (tenant, client_id, hold_id)",
            (t, c, h),
        )
        for tenant, client_id, hold_id, *rest in cur:
            states[(tenant, client_id)].holds[hold_id] = HoldRecord(hold_id, *rest)
    t, c, ids = _columns(charges, 3)
    if ids:
        cur.execute(
            "SELECT x.tenant, x.client_id, x.command_id, x.product_id, x.amount_minor,"
            " x.currency, x.refunded_minor FROM applied_services x"
            " JOIN unnest(%b::text[], %b::text[], %b::text[]) AS k(tenant, client_id, command_id)"
            " USING (tenant, client_id, command_id) WHERE x.kind = 'CHARGE'",
            (t, c, ids),
        )
        for tenant, client_id, command_id, *rest in cur:
            states[(tenant, client_id)].charges[command_id] = ChargeRecord(command_id, *rest)
    return states


def open_hold_totals(cur: psycopg.Cursor, clients: Iterable[ClientKey]) -> dict[ClientKey, int]:
    """The sum of each client's open holds, as written so far in this transaction."""
    tenants, client_ids = _columns(clients, 2)
    if not client_ids:
        return {}
    cur.execute(
        "SELECT h.tenant, h.client_id, sum(h.amount_minor) FROM holds h"
        " JOIN unnest(%b::text[], %b::text[]) AS k(tenant, client_id) USING (tenant, client_id)"
        " WHERE h.status = 'open' GROUP BY h.tenant, h.client_id",
        (tenants, client_ids),
    )
    return {(t, c): int(total) for t, c, total in cur}


# --- writing -----------------------------------------------------------------------------


@dataclass(slots=True)
class Writes:
    """Everything one partition batch decided, as rows, written by `write`.

    New rows (created in this batch) are COPYed; rows loaded from the database and changed
    are updated with one statement per table.
    """

    clients: list[tuple[str, str, str, str]] = field(default_factory=list)  # + name, email
    new_wallets: list[Wallet] = field(default_factory=list)
    changed_wallets: list[Wallet] = field(default_factory=list)
    new_holds: list[tuple[str, str, HoldRecord]] = field(default_factory=list)
    changed_holds: list[tuple[str, str, HoldRecord]] = field(default_factory=list)
    # Charges are the applied-services log's CHARGE rows (in `applied`); these had a refund.
    refunded_charges: list[tuple[str, str, ChargeRecord]] = field(default_factory=list)
    transfers: list[tuple[str, str, str, str, str, int, str, int]] = field(default_factory=list)
    processed: list[tuple[str, str, str, bytes, bool, bytes, str, int, int]] = field(
        default_factory=list
    )
    applied: list[tuple[str, str, str, str, str, int, str, str | None, int]] = field(
        default_factory=list
    )
    # (tenant, client_id, command_id, amount_minor, currency, operator, reason, applied_at_ms)
    adjustments: list[tuple[str, str, str, int, str, str, str, int]] = field(default_factory=list)


def write(cur: psycopg.Cursor, w: Writes) -> None:
    # The processed records first: a command applied twice is refused by their primary key
    # before any other table's (the ledger handler's idempotency by insert relies on it).
    if w.processed:
        _copy(
            cur,
            "processed_commands (tenant, command_id, client_id, payload_hash, applied, result,"
            " source_topic, source_partition, source_offset)",
            w.processed,
        )
    if w.clients:
        _copy(cur, "clients (tenant, client_id, name, email)", w.clients)
    if w.new_wallets:
        _copy(
            cur,
            "wallets (tenant, client_id, currency, available_minor, held_minor,"
            " overdraft_limit_minor, version)",
            [
                (
                    x.tenant,
                    x.client_id,
                    x.currency,
                    x.available_minor,
                    x.held_minor,
                    x.overdraft_limit_minor,
                    x.version,
                )
                for x in w.new_wallets
            ],
        )
    if w.changed_wallets:
        # The rows were locked when loaded; the version guard and the CHECK constraints are
        # the last word on the balances.
        ws = w.changed_wallets
        cur.execute(
            "UPDATE wallets w SET available_minor = u.available, held_minor = u.held,"
            " version = u.version, updated_at = now()"
            " FROM unnest(%b::text[], %b::text[], %b::bigint[], %b::bigint[], %b::bigint[])"
            " AS u(tenant, client_id, available, held, version)"
            " WHERE w.tenant = u.tenant AND w.client_id = u.client_id AND w.version < u.version",
            (
                [x.tenant for x in ws],
                [x.client_id for x in ws],
                [x.available_minor for x in ws],
                [x.held_minor for x in ws],
                [x.version for x in ws],
            ),
        )
        if cur.rowcount != len(ws):
            raise RuntimeError(f"wallet update matched {cur.rowcount} of {len(ws)} rows")
    if w.new_holds:
        _copy(
            cur,
            "holds (tenant, client_id, hold_id, product_id, amount_minor, currency,"
            " expires_at_ms, status, confirmed_minor, settled_by)",
            [
                (
                    t,
                    c,
                    h.hold_id,
                    h.product_id,
                    h.amount_minor,
                    h.currency,
                    h.expires_at_ms,
                    h.status,
                    h.confirmed_minor,
                    h.settled_by,
                )
                for t, c, h in w.new_holds
            ],
        )
    if w.changed_holds:
        hs = w.changed_holds
        cur.execute(
            "UPDATE holds x SET status = u.status, confirmed_minor = u.confirmed,"
            " settled_by = u.settled_by"
            " FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::bigint[],"
            " %b::text[]) AS u(tenant, client_id, hold_id, status, confirmed, settled_by)"
            " WHERE x.tenant = u.tenant AND x.client_id = u.client_id AND x.hold_id = u.hold_id",
            (
                [t for t, _, _ in hs],
                [c for _, c, _ in hs],
                [h.hold_id for _, _, h in hs],
                [h.status for _, _, h in hs],
                [h.confirmed_minor for _, _, h in hs],
                [h.settled_by for _, _, h in hs],
            ),
        )
    if w.transfers:
        _copy(
            cur,
            "transfers (tenant, client_id, command_id, source, target, amount_minor, currency,"
            " record_ts_ms)",
            w.transfers,
        )
    if w.adjustments:
        _copy(
            cur,
            "adjustments (tenant, client_id, command_id, amount_minor, currency, operator, reason,"
            " applied_at_ms)",
            w.adjustments,
        )
    if w.applied:
        _copy(
            cur,
            "applied_services (tenant, client_id, command_id, kind, product_id, amount_minor,"
            " currency, refund_of, applied_at_ms)",
            w.applied,
        )
    if w.refunded_charges:
        # After the COPY above: a charge refunded in the batch that applied it is updated too.
        cs = w.refunded_charges
        cur.execute(
            "UPDATE applied_services x SET refunded_minor = u.refunded"
            " FROM unnest(%b::text[], %b::text[], %b::text[], %b::bigint[])"
            " AS u(tenant, client_id, command_id, refunded)"
            " WHERE x.tenant = u.tenant AND x.client_id = u.client_id"
            " AND x.command_id = u.command_id AND x.kind = 'CHARGE'",
            (
                [t for t, _, _ in cs],
                [c for _, c, _ in cs],
                [x.command_id for _, _, x in cs],
                [x.refunded_minor for _, _, x in cs],
            ),
        )
        if cur.rowcount != len(cs):
            raise RuntimeError(f"charge update matched {cur.rowcount} of {len(cs)} rows")


def _copy(cur: psycopg.Cursor, target: str, rows: Iterable[tuple[object, ...]]) -> None:
    with cur.copy(f"COPY {target} FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _columns(rows: Iterable[tuple[str, ...]], width: int) -> tuple[list[str], ...]:
    columns: tuple[list[str], ...] = tuple([] for _ in range(width))
    for row in rows:
        for i in range(width):
            columns[i].append(row[i])
    return columns
