"""Read-only queries over PostgreSQL, shared by the CLI (`billy wallet`, `billy applied-services`)
and the HTTP read API (billy_core.api).

SQLAlchemy Core on the tables of billy_core.store.tables, through a psycopg 3 engine made by
`create_engine_for(settings)`. Every query function takes an open `Connection` and the tenant
first: a query never crosses tenants or clients (DESIGN.md, "Scale"). Names and emails are never
read here, so they cannot leak into an answer.

Times in the database are integer milliseconds since the epoch (UTC); the functions return them
as such (`*_ms`) and as timezone-aware datetimes. Money is an integer of minor units with its
currency; never a float.

Errors:
- `InvalidCursor` (a ValueError): a pagination cursor that this module did not make.
- `ValueError` naming the argument for a limit or time range out of bounds.
- SQLAlchemy's `DBAPIError` family when PostgreSQL fails (the engine has connect and statement
  timeouts, so no call waits for long).
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from billy_core.money import Money
from billy_core.settings import Settings
from billy_core.store.tables import adjustments as adjustments_table
from billy_core.store.tables import applied_services as applied_services_table
from billy_core.store.tables import balance_accounts, balance_invoices, holds, wallets

__all__ = [
    "APPLIED_LIMIT_MAX",
    "CONNECT_TIMEOUT_S",
    "STATEMENT_TIMEOUT_MS",
    "InvalidCursor",
    "applied_services",
    "balance_view",
    "create_engine_for",
    "decode_cursor",
    "encode_cursor",
    "get_wallet",
    "ms_to_datetime",
    "open_holds",
    "parse_iso",
    "print_applied_services",
    "money_text",
    "print_balance",
    "read_client_view",
    "print_wallet",
    "to_ms",
    "wallet_exists",
]

APPLIED_LIMIT_MAX = 1000
"""Rows per page of applied services, at most."""
CONNECT_TIMEOUT_S = 5
"""How long opening a PostgreSQL connection may take."""
STATEMENT_TIMEOUT_MS = 5000
"""How long one read query may run; reads are indexed and small, so this is generous."""
_ID_LEN_MAX = 64
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class InvalidCursor(ValueError):
    """A `cursor` that is not one this module made (garbled, truncated or tampered with)."""


# --- engine ------------------------------------------------------------------------------------


def create_engine_for(settings: Settings, *, pool_size: int = 5) -> Engine:
    """A pooled psycopg 3 engine for reads, with connect and statement timeouts.

    Connections are checked before use (`pool_pre_ping`), so a restarted PostgreSQL costs one
    failed ping, not one failed request.
    """
    return sa.create_engine(
        settings.sqlalchemy_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=CONNECT_TIMEOUT_S,
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": CONNECT_TIMEOUT_S,
            "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
            "application_name": "billy-reads",
        },
    )


# --- time --------------------------------------------------------------------------------------


def ms_to_datetime(ms: int) -> datetime:
    """Milliseconds since the epoch -> an aware UTC datetime."""
    return _EPOCH + timedelta(milliseconds=ms)


def to_ms(value: datetime) -> int:
    """An aware datetime (a naive one is taken as UTC) -> integer milliseconds since the epoch."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    # Integer arithmetic: a float timestamp would round some milliseconds away.
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def parse_iso(value: str, option: str) -> datetime:
    """Parse an ISO 8601 date or date-time; a value without an offset is taken as UTC.

    Raises ValueError naming `option` (e.g. "--from") when the text is not ISO 8601.
    """
    try:
        parsed = datetime.fromisoformat(value.strip())
    except (ValueError, AttributeError):
        raise ValueError(
            f"{option}: not an ISO 8601 time: {value!r} (e.g. 2024-05-01T12:00:00+03:00)"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


# --- cursor ------------------------------------------------------------------------------------


def encode_cursor(applied_at_ms: int, command_id: str) -> str:
    """The opaque cursor after the row (applied_at_ms, command_id): base64url of a JSON pair."""
    raw = json.dumps([applied_at_ms, command_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The (applied_at_ms, command_id) pair of a cursor; raises InvalidCursor for anything else."""
    if not isinstance(cursor, str) or not 1 <= len(cursor) <= 200:
        raise InvalidCursor("cursor: not a cursor returned by this API")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        pair = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidCursor("cursor: not a cursor returned by this API") from None
    if (
        not isinstance(pair, list)
        or len(pair) != 2
        or isinstance(pair[0], bool)
        or not isinstance(pair[0], int)
        or pair[0] < 0
        or not isinstance(pair[1], str)
        or not 1 <= len(pair[1]) <= _ID_LEN_MAX
    ):
        raise InvalidCursor("cursor: not a cursor returned by this API")
    return pair[0], pair[1]


# --- queries -----------------------------------------------------------------------------------


def get_wallet(conn: Connection, tenant: str, client_id: str) -> dict[str, Any] | None:
    """The client's wallet, or None when the client has none (never registered).

    Keys: currency, available_minor, held_minor, version, updated_at (aware datetime).
    """
    row = conn.execute(
        sa.select(
            wallets.c.currency,
            wallets.c.available_minor,
            wallets.c.held_minor,
            wallets.c.version,
            wallets.c.updated_at,
        ).where(wallets.c.tenant == tenant, wallets.c.client_id == client_id)
    ).one_or_none()
    return None if row is None else dict(row._mapping)


def wallet_exists(conn: Connection, tenant: str, client_id: str) -> bool:
    return (
        conn.execute(
            sa.select(sa.literal(1)).where(
                wallets.c.tenant == tenant, wallets.c.client_id == client_id
            )
        ).first()
        is not None
    )


def open_holds(conn: Connection, tenant: str, client_id: str) -> list[dict[str, Any]]:
    """The client's holds with status 'open', soonest expiry first.

    A hold past its `expires_at` stays open here until billy releases it (within seconds);
    `expires_at` tells the reader. Keys: hold_id, product_id, amount_minor, currency,
    expires_at_ms, expires_at, created_at.
    """
    rows = conn.execute(
        sa.select(
            holds.c.hold_id,
            holds.c.product_id,
            holds.c.amount_minor,
            holds.c.currency,
            holds.c.expires_at_ms,
            holds.c.created_at,
        )
        .where(holds.c.tenant == tenant, holds.c.client_id == client_id, holds.c.status == "open")
        .order_by(holds.c.expires_at_ms, holds.c.hold_id)
    ).all()
    out = []
    for row in rows:
        item = dict(row._mapping)
        item["expires_at"] = ms_to_datetime(item["expires_at_ms"])
        out.append(item)
    return out


def adjustments(conn: Connection, tenant: str, client_id: str) -> list[dict[str, Any]]:
    """The billing team's corrections of a client, oldest first: the audit trail. Keys:
    command_id, amount_minor (signed), currency, operator, reason, applied_at_ms, applied_at."""
    rows = conn.execute(
        sa.select(
            adjustments_table.c.command_id,
            adjustments_table.c.amount_minor,
            adjustments_table.c.currency,
            adjustments_table.c.operator,
            adjustments_table.c.reason,
            adjustments_table.c.applied_at_ms,
        )
        .where(adjustments_table.c.tenant == tenant, adjustments_table.c.client_id == client_id)
        .order_by(adjustments_table.c.applied_at_ms, adjustments_table.c.command_id)
    ).all()
    out = []
    for row in rows:
        item = dict(row._mapping)
        item["applied_at"] = ms_to_datetime(item["applied_at_ms"])
        out.append(item)
    return out


def applied_services(
    conn: Connection,
    tenant: str,
    client_id: str,
    since_ms: int | None,
    until_ms: int | None,
    after_cursor: str | None,
    limit: int,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the client's applied services, oldest first.

    `since_ms` is inclusive and `until_ms` exclusive (either may be None). Pages are keyset
    pages on (applied_at_ms, command_id): pass the returned cursor as `after_cursor` for the
    next page; the cursor is None on the last page. Rows appended behind a cursor (a later
    charge) show up on a later page; rows are never skipped or repeated.

    Keys: command_id, kind ('CHARGE' or 'REFUND'), product_id, amount_minor, currency,
    refund_of, applied_at_ms, applied_at.

    Raises ValueError naming `limit` or `since_ms`, and InvalidCursor for a bad cursor.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= APPLIED_LIMIT_MAX:
        raise ValueError(f"limit: must be 1..{APPLIED_LIMIT_MAX}, got {limit!r}")
    if since_ms is not None and until_ms is not None and since_ms >= until_ms:
        raise ValueError("since_ms: must be before until_ms")
    t = applied_services_table
    query = sa.select(
        t.c.command_id,
        t.c.kind,
        t.c.product_id,
        t.c.amount_minor,
        t.c.currency,
        t.c.refund_of,
        t.c.applied_at_ms,
    ).where(t.c.tenant == tenant, t.c.client_id == client_id)
    if since_ms is not None:
        query = query.where(t.c.applied_at_ms >= since_ms)
    if until_ms is not None:
        query = query.where(t.c.applied_at_ms < until_ms)
    if after_cursor is not None:
        after_ms, after_id = decode_cursor(after_cursor)
        # A row-value comparison: the index applied_services_by_time serves it as a range.
        query = query.where(
            sa.tuple_(t.c.applied_at_ms, t.c.command_id) > sa.tuple_(after_ms, after_id)
        )
    # One row more than asked says whether another page exists.
    query = query.order_by(t.c.applied_at_ms, t.c.command_id).limit(limit + 1)
    rows = [dict(r._mapping) for r in conn.execute(query).all()]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1]["applied_at_ms"], rows[-1]["command_id"])
    for row in rows:
        row["applied_at"] = ms_to_datetime(row["applied_at_ms"])
    return rows, next_cursor


# --- CLI printing ------------------------------------------------------------------------------


INVOICES_SHOWN_MAX = 1000
"""Invoices a Balance view lists, at most (oldest first)."""


def balance_view(conn: Connection, tenant: str, client_id: str) -> dict[str, Any] | None:
    """The client's Balance ids, payers, contracts and invoices; None without a wallet.

    Status `pending` while Balance has not answered the registration."""
    if not wallet_exists(conn, tenant, client_id):
        return None
    a = balance_accounts.c
    row = conn.execute(
        sa.select(a.balance_client_id, a.service_order_id, a.status, a.payers, a.contracts).where(
            a.tenant == tenant, a.client_id == client_id
        )
    ).first()
    i = balance_invoices.c
    invoices = conn.execute(
        sa.select(
            i.command_id,
            i.invoice_id,
            i.request_id,
            i.kind,
            i.amount_minor,
            i.currency,
            i.payer_id,
            i.contract_id,
            i.payment_link,
            i.status,
            i.created_at,
        )
        .where(i.tenant == tenant, i.client_id == client_id)
        .order_by(i.created_at, i.command_id)
        .limit(INVOICES_SHOWN_MAX)
    ).all()
    payers = [] if row is None else list(row.payers.values())
    contracts = [] if row is None else list(row.contracts.values())
    return {
        "status": "pending" if row is None else row.status,
        "balance_client_id": None if row is None else row.balance_client_id,
        "service_order_id": None if row is None else row.service_order_id,
        "payers": [
            {"payer_id": p["payer_id"], "balance_person_id": p["person_id"], "kind": p["kind"]}
            for p in payers
        ],
        "contracts": [
            {
                "contract_id": c["contract_id"],
                "balance_contract_id": c["balance_contract_id"],
                "external_id": c["external_id"],
                "payer_id": c["payer_id"],
                "payment_type": c["payment_type"],
                "credit_limit_minor": c.get("credit_limit_minor"),
                "currency": c["currency"],
                "payment_term_days": c.get("payment_term_days"),
            }
            for c in contracts
        ],
        "invoices": [dict(r._mapping) for r in invoices],
    }


_View = TypeVar("_View")


def read_client_view(
    settings: Settings,
    tenant: str,
    client: str,
    read: Callable[[Connection, str, str], _View | None],
) -> _View | None:
    """One client's view for a `billy` print command, on a connection of its own. None after
    saying why on stderr: no such wallet, or PostgreSQL cannot be asked."""
    engine = create_engine_for(settings, pool_size=1)
    try:
        with engine.connect() as conn:
            view = read(conn, tenant, client)
    except sa.exc.DBAPIError as exc:
        _fail(f"cannot read PostgreSQL: {_first_line(exc)}", 1)
        return None
    finally:
        engine.dispose()
    if view is None:
        _fail(f"no wallet for client {client!r} of tenant {tenant!r}", 1)
    return view


def print_balance(settings: Settings, tenant: str, client: str) -> int:
    """Print what Balance holds for a client. Exit code 0; 1 without such a wallet or when
    PostgreSQL cannot be asked."""
    view = read_client_view(settings, tenant, client, balance_view)
    if view is None:
        return 1
    print(f"balance {tenant}/{client}: {view['status']}")
    print(f"  Balance client  {view['balance_client_id'] or '-'}")
    print(f"  order           {view['service_order_id'] or '-'}")
    print(f"payers: {len(view['payers'])}")
    for p in view["payers"]:
        print(f"  {p['payer_id']}  {p['kind']}  person {p['balance_person_id']}")
    print(f"contracts: {len(view['contracts'])}")
    for c in view["contracts"]:
        limit = c["credit_limit_minor"]
        shown = f"  limit {money_text(limit, c['currency'])}" if limit is not None else ""
        print(
            f"  {c['contract_id']}  {c['payment_type']}  {c['external_id']}"
            f" (id {c['balance_contract_id']})  payer {c['payer_id']}{shown}"
        )
    print(f"invoices: {len(view['invoices'])}")
    for v in view["invoices"]:
        print(
            f"  {v['invoice_id']}  {v['kind']:<7} {money_text(v['amount_minor'], v['currency'])}"
            f"  {v['status']:<9} {v['payment_link'] or ''}"
        )
    return 0


def money_text(amount_minor: int, currency: str) -> str:
    """ "150000 minor (1500.00 RUB)": the exact integer and the human reading."""
    return f"{amount_minor} minor ({Money(amount_minor, currency)})"


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fail(message: str, code: int) -> int:
    print(f"billy: {message}", file=sys.stderr)
    return code


def print_wallet(settings: Settings, tenant: str, client: str) -> int:
    """Print a wallet and its open holds. Exit code 0; 1 when there is no such wallet or
    PostgreSQL cannot be asked."""
    engine = create_engine_for(settings, pool_size=1)
    try:
        with engine.connect() as conn:
            wallet = get_wallet(conn, tenant, client)
            if wallet is None:
                return _fail(f"no wallet for client {client!r} of tenant {tenant!r}", 1)
            held = open_holds(conn, tenant, client)
    except sa.exc.DBAPIError as exc:
        return _fail(f"cannot read PostgreSQL: {_first_line(exc)}", 1)
    finally:
        engine.dispose()
    cur = wallet["currency"]
    print(f"wallet {tenant}/{client}")
    print(f"  currency    {cur}")
    print(f"  available   {money_text(wallet['available_minor'], cur)}")
    print(f"  held        {money_text(wallet['held_minor'], cur)}")
    print(f"  version     {wallet['version']}")
    print(f"  updated at  {_iso(wallet['updated_at'])}")
    print(f"open holds: {len(held)}")
    for h in held:
        print(
            f"  {h['hold_id']}  product {h['product_id']}  "
            f"{money_text(h['amount_minor'], h['currency'])}  expires {_iso(h['expires_at'])}"
        )
    return 0


def print_adjustments(settings: Settings, tenant: str, client: str) -> int:
    """Print a client's corrections by the billing team (operator and reason). Exit code 0;
    1 when PostgreSQL cannot be asked."""
    engine = create_engine_for(settings, pool_size=1)
    try:
        with engine.connect() as conn:
            rows = adjustments(conn, tenant, client)
    except sa.exc.DBAPIError as exc:
        return _fail(f"cannot read PostgreSQL: {_first_line(exc)}", 1)
    finally:
        engine.dispose()
    print(f"adjustments of {tenant}/{client}: {len(rows)}")
    for r in rows:
        print(
            f"  {_iso(r['applied_at'])}  {money_text(r['amount_minor'], r['currency']):>18}"
            f"  by {r['operator']}  {r['command_id']}  {r['reason']}"
        )
    return 0


def print_applied_services(
    settings: Settings,
    tenant: str,
    client: str,
    since_iso: str | None,
    until_iso: str | None,
    limit: int,
) -> int:
    """Print up to `limit` applied services in [--from, --to), oldest first.

    Exit code 0; 1 when there is no such wallet or PostgreSQL cannot be asked; 2 for a bad
    --from, --to or --limit (the message names the option). Times without an offset are UTC.
    """
    try:
        since = parse_iso(since_iso, "--from") if since_iso is not None else None
        until = parse_iso(until_iso, "--to") if until_iso is not None else None
    except ValueError as exc:
        return _fail(str(exc), 2)
    if since is not None and until is not None and since >= until:
        return _fail("--from: must be before --to", 2)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        return _fail(f"--limit: must be a positive integer, got {limit!r}", 2)
    since_ms = to_ms(since) if since is not None else None
    until_ms = to_ms(until) if until is not None else None
    engine = create_engine_for(settings, pool_size=1)
    try:
        with engine.connect() as conn:
            if not wallet_exists(conn, tenant, client):
                return _fail(f"no wallet for client {client!r} of tenant {tenant!r}", 1)
            rows, more = _collect(conn, tenant, client, since_ms, until_ms, limit)
    except sa.exc.DBAPIError as exc:
        return _fail(f"cannot read PostgreSQL: {_first_line(exc)}", 1)
    finally:
        engine.dispose()
    window = f"from {_iso(since) if since else 'the start'} to {_iso(until) if until else 'now'}"
    print(f"applied services of {tenant}/{client}, {window} (times in UTC)")
    totals: dict[tuple[str, str], int] = {}
    for r in rows:
        refund = f"  refund of {r['refund_of']}" if r["refund_of"] else ""
        print(
            f"  {_iso(r['applied_at'])}  {r['kind']:<6}  {r['product_id']}  "
            f"{money_text(r['amount_minor'], r['currency'])}  {r['command_id']}{refund}"
        )
        key = (r["kind"], r["currency"])
        totals[key] = totals.get(key, 0) + r["amount_minor"]
    print(f"{len(rows)} row(s)" + (f"; more follow, raise --limit (now {limit})" if more else ""))
    for (kind, currency), total in sorted(totals.items()):
        print(f"  total {kind.lower():<6} {money_text(total, currency)}")
    return 0


def _collect(
    conn: Connection,
    tenant: str,
    client: str,
    since_ms: int | None,
    until_ms: int | None,
    limit: int,
) -> tuple[list[dict[str, Any]], bool]:
    """Up to `limit` rows, page by page; True when more rows exist after them."""
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        page, cursor = applied_services(
            conn,
            tenant,
            client,
            since_ms,
            until_ms,
            cursor,
            min(limit - len(rows), APPLIED_LIMIT_MAX),
        )
        rows.extend(page)
        if cursor is None or len(rows) >= limit:
            return rows, cursor is not None


def _first_line(exc: BaseException) -> str:
    line = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["error"])[0]
    if isinstance(getattr(exc, "orig", None), psycopg.errors.UndefinedTable):
        line += "; run `billy migrate` first"
    return line
