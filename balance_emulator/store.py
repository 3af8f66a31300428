"""The emulator's state: one SQLite file in WAL mode, so it survives a restart.

Concurrency: every XML-RPC call runs on its own thread. Readers take a pooled connection
and run in parallel (WAL lets them read while one writer writes). Writers additionally
hold one process-wide lock for the whole transaction (`BEGIN IMMEDIATE` ... `COMMIT`), so
two writers never race for SQLite's lock and nothing ever sees SQLITE_BUSY; the emulator
is the file's only user.

Money and quantities are stored as decimal TEXT and computed as Decimal, never REAL.
Ids start at a different base per kind (clients 10000001, persons 20000001, ...), so an id
of one kind passed where another is expected is "not found" instead of hitting a stranger.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

SCHEMA_VERSION = 1

# First id of each kind (AUTOINCREMENT continues from sqlite_sequence + 1).
ID_BASES: dict[str, int] = {
    "clients": 10_000_001,
    "persons": 20_000_001,
    "contracts": 30_000_001,
    "requests": 40_000_001,
    "invoices": 50_000_001,
    "acts": 60_000_001,
    "orders": 70_000_001,
}

# (id, name, unit, price with VAT, VAT percent). Russia's VAT is 22% from 2026-01-01.
SEED_PRODUCTS: tuple[tuple[int, str, str, str, str], ...] = (
    (503162, "RUB money", "RUB", "1.00", "22"),
    (508892, "Subscription, month", "month", "990.00", "22"),
    (509001, "Listing placement, day", "day", "150.00", "22"),
    (509002, "Phone call", "call", "25.00", "22"),
)

# Payment systems: (id, name, person type that may use it).
SEED_PAYSYSES: tuple[tuple[int, str, str], ...] = (
    (1000, "YooMoney wallet", "ph"),
    (1001, "Bank transfer, individual", "ph"),
    (1002, "Bank card, individual", "ph"),
    (1003, "Bank transfer, legal entity", "ur"),
    (1033, "Bank card, legal entity", "ur"),
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS products (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, unit TEXT NOT NULL,
    price TEXT NOT NULL, nds_pct TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS paysyses (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, person_type TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS clients (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, email TEXT, phone TEXT,
    client_type_id INTEGER NOT NULL DEFAULT 0, is_agency INTEGER NOT NULL DEFAULT 0,
    agency_id INTEGER, extra TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS persons (
    id INTEGER PRIMARY KEY AUTOINCREMENT, client_id INTEGER NOT NULL, type TEXT NOT NULL,
    fields TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS persons_client ON persons (client_id);
CREATE TABLE IF NOT EXISTS contracts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, external_id TEXT NOT NULL, kind TEXT NOT NULL,
    client_id INTEGER NOT NULL, person_id INTEGER NOT NULL, currency TEXT NOT NULL,
    firm_id INTEGER NOT NULL, services TEXT NOT NULL, payment_type INTEGER NOT NULL,
    payment_term INTEGER, credit_limit TEXT NOT NULL, start_dt TEXT NOT NULL,
    finish_dt TEXT, signed INTEGER NOT NULL, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS contracts_client ON contracts (client_id);
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT, service_id INTEGER NOT NULL,
    service_order_id INTEGER NOT NULL, client_id INTEGER NOT NULL,
    product_id INTEGER NOT NULL, agency_id INTEGER, contract_id INTEGER, text TEXT,
    consume_qty TEXT NOT NULL DEFAULT '0', consume_sum TEXT NOT NULL DEFAULT '0',
    paid_sum TEXT NOT NULL DEFAULT '0',
    completion_qty TEXT NOT NULL DEFAULT '0', completion_sum TEXT NOT NULL DEFAULT '0',
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    UNIQUE (service_id, service_order_id));
CREATE INDEX IF NOT EXISTS orders_client ON orders (client_id);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT, client_id INTEGER NOT NULL,
    props TEXT NOT NULL DEFAULT '{}', total_sum TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS requests_client ON requests (client_id);
CREATE TABLE IF NOT EXISTS request_rows (
    request_id INTEGER NOT NULL, row_no INTEGER NOT NULL, order_id INTEGER NOT NULL,
    qty TEXT NOT NULL, sum TEXT NOT NULL, PRIMARY KEY (request_id, row_no));
CREATE INDEX IF NOT EXISTS request_rows_order ON request_rows (order_id);
CREATE TABLE IF NOT EXISTS invoices (
    id INTEGER PRIMARY KEY AUTOINCREMENT, external_id TEXT NOT NULL,
    request_id INTEGER NOT NULL, client_id INTEGER NOT NULL, person_id INTEGER NOT NULL,
    contract_id INTEGER, paysys_id INTEGER NOT NULL, credit INTEGER NOT NULL,
    total_sum TEXT NOT NULL, receipt_sum TEXT NOT NULL DEFAULT '0',
    created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS invoices_client ON invoices (client_id);
CREATE INDEX IF NOT EXISTS invoices_request ON invoices (request_id);
CREATE TABLE IF NOT EXISTS completions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, order_id INTEGER NOT NULL, dt TEXT NOT NULL,
    completion_qty TEXT NOT NULL, completion_sum TEXT NOT NULL, reported_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS completions_order ON completions (order_id, dt);
CREATE TABLE IF NOT EXISTS acts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, external_id TEXT NOT NULL,
    client_id INTEGER NOT NULL, contract_id INTEGER, month TEXT NOT NULL, dt TEXT NOT NULL,
    amount TEXT NOT NULL, amount_nds TEXT NOT NULL, paid_amount TEXT NOT NULL,
    created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS acts_client ON acts (client_id);
CREATE TABLE IF NOT EXISTS act_rows (
    act_id INTEGER NOT NULL, order_id INTEGER NOT NULL, qty TEXT NOT NULL,
    price TEXT NOT NULL, amount TEXT NOT NULL, amount_nds TEXT NOT NULL,
    paid_amount TEXT NOT NULL, PRIMARY KEY (act_id, order_id));
CREATE INDEX IF NOT EXISTS act_rows_order ON act_rows (order_id);
CREATE TABLE IF NOT EXISTS closed_months (month TEXT PRIMARY KEY, closed_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, order_id INTEGER NOT NULL,
    tid TEXT NOT NULL, payload TEXT NOT NULL, created_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    delivered_at REAL, deliveries INTEGER NOT NULL DEFAULT 0, last_error TEXT,
    shaped INTEGER NOT NULL DEFAULT 0, held_until REAL, duplicate INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (delivered_at, next_attempt_at);
"""

_DATA_TABLES = (
    "clients",
    "persons",
    "contracts",
    "orders",
    "requests",
    "request_rows",
    "invoices",
    "completions",
    "acts",
    "act_rows",
    "closed_months",
    "outbox",
)


class Store:
    """Pooled connections to one SQLite file; `read()` and `write()` give a transaction."""

    def __init__(self, path: Path, *, pool_size_max: int = 32) -> None:
        self.path = path
        self._pool: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._pool_size_max = pool_size_max
        self._write_lock = threading.Lock()
        schema_conn = self._connect()
        try:
            schema_conn.executescript(_SCHEMA)  # idempotent: CREATE ... IF NOT EXISTS
        finally:
            schema_conn.close()
        with self.write() as conn:
            version = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if version is None:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                _seed(conn)
            elif int(version[0]) != SCHEMA_VERSION:
                raise RuntimeError(
                    f"{path} has schema version {version[0]}, this emulator speaks "
                    f"{SCHEMA_VERSION}: remove the file to start afresh"
                )

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: transactions are explicit (BEGIN / COMMIT) below.
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash (only an OS crash may lose the
        # last commits), which is what a test emulator needs.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=OFF")
        return conn

    def _take(self) -> sqlite3.Connection:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            return self._connect()

    def _give_back(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:  # never pool a connection with an open transaction
            conn.close()
        elif self._pool.qsize() < self._pool_size_max:
            self._pool.put(conn)
        else:
            conn.close()

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for reads (a deferred transaction)."""
        conn = self._take()
        try:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("ROLLBACK")
        finally:
            self._give_back(conn)

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; committed when the block ends, rolled back if it raises."""
        conn = self._take()
        try:
            with self._write_lock:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
        finally:
            self._give_back(conn)

    def reset(self) -> None:
        """Empty every data table (products and meta other than the Tid clock stay)."""
        with self.write() as conn:
            for table in _DATA_TABLES:
                conn.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
            conn.execute("DELETE FROM products")
            conn.execute("DELETE FROM meta WHERE key = 'faults'")
            _seed(conn)

    def close(self) -> None:
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return


def _seed(conn: sqlite3.Connection) -> None:
    for table, base in ID_BASES.items():
        conn.execute("DELETE FROM sqlite_sequence WHERE name = ?", (table,))
        conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, base - 1))
    conn.executemany(
        "INSERT OR REPLACE INTO products (id, name, unit, price, nds_pct) VALUES (?, ?, ?, ?, ?)",
        SEED_PRODUCTS,
    )
    conn.executemany(
        "INSERT OR REPLACE INTO paysyses (id, name, person_type) VALUES (?, ?, ?)",
        SEED_PAYSYSES,
    )


def dec(text: str | None) -> Decimal:
    """A stored decimal TEXT as Decimal (NULL as 0)."""
    return Decimal(text) if text is not None else Decimal(0)


def get_meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )
