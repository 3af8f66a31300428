"""Consumption reports and acts at scale, run on demand (never in CI, never asserted on).

A fresh world (database, topics) with N clients registered in a Balance emulator process of
its own (a Balance client and an order each) and K revenue transfers each, written straight
into the ledger's tables; then, timed: the reporter's first count (N report rows) and send
(N totals through UpdateCampaigns, 1000 per call), a run with nothing changed, a run after 1%
of the clients were charged again, the month close in Balance, the import of the month's
acts (one GetClientActs per client) and the reconciliation (one transaction per client).

    .venv/bin/python -m bench.consumption [--clients 2000] [--charges 5]

Broker and PostgreSQL: the shared stack's (BILLY_KAFKA_BOOTSTRAP / BILLY_DATABASE_URL).
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import psycopg

from bench.stack import TENANT, Stack, World
from billy_core.acts import months
from jobs.acts import ActsImporter
from jobs.balance_jobs import balance_client
from jobs.consumption import ConsumptionReporter
from tests.emulator_process import start_emulator

SERVICE_ID, PRODUCT_ID = 1000, 503162


def _seed(conn: psycopg.Connection, clients: int, charges: int) -> None:
    conn.execute(
        "INSERT INTO wallets (tenant, client_id, currency, available_minor, held_minor, version)"
        " SELECT %s, 'c' || i, 'RUB', 0, 0, 1 FROM generate_series(1, %s) i",
        (TENANT, clients),
    )
    conn.execute(
        "INSERT INTO balance_accounts (tenant, client_id, balance_client_id, service_order_id,"
        " status) SELECT %s, 'c' || i, 10000000 + i, i, 'registered'"
        " FROM generate_series(1, %s) i",
        (TENANT, clients),
    )
    _charge(conn, range(1, clients + 1), charges, "a")


def _charge(conn: psycopg.Connection, ids: range | list[int], charges: int, tag: str) -> None:
    conn.execute(
        "INSERT INTO transfers (tenant, client_id, command_id, source, target, amount_minor,"
        " currency, record_ts_ms) SELECT %s, 'c' || i, %s || i || '-' || j,"
        " 'w:' || %s || '/c' || i || ':available', 't:' || %s || ':revenue:listing',"
        " 100 + j, 'RUB', 0 FROM unnest(%s::int[]) i, generate_series(1, %s) j",
        (TENANT, tag, TENANT, TENANT, list(ids), charges),
    )


def _timed(label: str, fn, rows: list[tuple[str, float, str]]):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = fn()
    rows.append((label, time.perf_counter() - started, str(result)))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--charges", type=int, default=5)
    args = parser.parse_args()
    world = World(Stack.from_env(), partitions_max=3)
    world.open()
    rows: list[tuple[str, float, str]] = []
    try:
        with (
            tempfile.TemporaryDirectory() as state,
            start_emulator(Path(state) / "balance.sqlite3") as emulator,
        ):
            balance = emulator.proxy(timeout_s=60)
            # One Balance client and order per billy client, as billy registers them.
            balance_ids = [
                int(balance.Balance2.CreateClient(1, {"NAME": f"B{i}", "EMAIL": "b@x.ru"})[2])
                for i in range(1, args.clients + 1)
            ]
            for start in range(1, args.clients + 1, 1000):
                orders = [
                    {"ServiceID": SERVICE_ID, "ServiceOrderID": i,
                     "ClientID": balance_ids[i - 1], "ProductID": PRODUCT_ID}
                    for i in range(start, min(start + 1000, args.clients + 1))
                ]  # fmt: skip
                balance.Balance2.CreateOrUpdateOrdersBatch(1, orders)
            settings = world.settings.model_copy(
                update={"balance_url": emulator.url, "consumption_settle_s": 0.0}
            )
            with psycopg.connect(settings.database_url, autocommit=True) as conn:
                _seed(conn, args.clients, args.charges)
                time.sleep(1.1)  # the cutoff is a whole second after the seed's transaction
                reporter = ConsumptionReporter(settings, balance_client(settings))
                _timed("count: first (rows made)", lambda: _rows(conn, reporter), rows)
                _timed("send: first (accepted)", lambda: reporter.send(conn).accepted, rows)
                time.sleep(1.1)
                _timed("count+send: nothing changed", lambda: _run(conn, reporter), rows)
                _charge(conn, list(range(1, args.clients + 1, 100)), 1, "b")
                time.sleep(1.1)
                _timed("count+send: 1% charged again", lambda: _run(conn, reporter), rows)
                month = months.month_of(dt.datetime.now(dt.UTC))
                _timed(
                    "CloseMonth (emulator)",
                    lambda: len(emulator.control.TestBalance.CloseMonth(month)["ActIDs"]),
                    rows,
                )
                importer = ActsImporter(settings, balance_client(settings), world.topics)
                _timed(
                    "import acts (new)", lambda: importer.import_month(conn, month).new_acts, rows
                )
                lines = _timed(
                    "reconcile (clients)", lambda: importer.reconcile_month(conn, month), rows
                )
                differing = sum(1 for x in lines if x.difference_minor)
                rows[-1] = (rows[-1][0], rows[-1][1], f"{len(lines)}, {differing} differing")
    finally:
        world.close()
    print(f"consumption bench: {args.clients} clients x {args.charges} charges")
    for label, seconds, result in rows:
        print(f"  {label:<32} {seconds:8.2f} s   {result}")


def _rows(conn: psycopg.Connection, reporter: ConsumptionReporter) -> int:
    reporter.count(conn)
    row = conn.execute("SELECT count(*) FROM consumption_reports").fetchone()
    return int(row[0]) if row else 0


def _run(conn: psycopg.Connection, reporter: ConsumptionReporter) -> int:
    reporter.count(conn)
    return reporter.send(conn).accepted


if __name__ == "__main__":
    main()
