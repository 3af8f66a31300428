"""The reporter's counting over month boundaries, on a real PostgreSQL with a clock of the
test's own: revenue applied (transfers.created_at) on both sides of Moscow midnights ends up
in the month Balance will bill it in, each month closed by a report of exactly its total,
dated its last second. No Balance call is made: only `count` runs."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from billy_core.settings import Settings
from jobs.consumption import ConsumptionReporter

pytestmark = pytest.mark.integration

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def _transfer(conn, client: str, amount: int, when: str, refund: bool = False) -> None:
    wallet, revenue = f"w:autoru/{client}:available", "t:autoru:revenue:listing"
    source, target = (revenue, wallet) if refund else (wallet, revenue)
    conn.execute(
        "INSERT INTO transfers (tenant, client_id, command_id, source, target, amount_minor,"
        " currency, record_ts_ms, created_at) VALUES ('autoru', %s, %s, %s, %s, %s, 'RUB', 0, %s)",
        (client, f"{client}-{when}-{amount}", source, target, amount, at(when)),
    )


@pytest.fixture
def conn(database_url):
    with psycopg.connect(database_url, autocommit=True) as c:
        for table in ("transfers", "consumption_reports", "consumption_watermark",
                      "balance_accounts", "wallets"):  # fmt: skip
            c.execute(f"TRUNCATE {table}")
        for n, client in enumerate(("a", "b", "nobalance"), start=1):
            c.execute(
                "INSERT INTO wallets (tenant, client_id, currency, available_minor, held_minor,"
                " version) VALUES ('autoru', %s, 'RUB', 0, 0, 1)",
                (client,),
            )
            if client != "nobalance":
                c.execute(
                    "INSERT INTO balance_accounts (tenant, client_id, balance_client_id,"
                    " service_order_id, status) VALUES ('autoru', %s, %s, %s, 'registered')",
                    (client, 10_000_000 + n, 500 + n),
                )
        yield c


def _reports(conn) -> dict[tuple[str, str], tuple[int, dt.datetime]]:
    rows = conn.execute(
        "SELECT client_id, month, total_minor, report_dt FROM consumption_reports"
    ).fetchall()
    return {(c, m): (t, d) for c, m, t, d in rows}


def test_each_month_ends_with_a_report_of_exactly_its_total(database_url, conn):
    _transfer(conn, "a", 1_000, "2026-10-15T10:00:00")
    _transfer(conn, "a", 200, "2026-10-31T20:59:59.500")  # 23:59:59.5 in Moscow: October
    _transfer(conn, "a", 30, "2026-10-31T21:00:00")  # Moscow midnight: November
    _transfer(conn, "b", 5_000, "2026-10-31T22:00:00")  # UTC October, Moscow November
    _transfer(conn, "b", 700, "2026-11-20T12:00:00", refund=True)
    _transfer(conn, "nobalance", 999, "2026-11-02T12:00:00")  # no Balance order: not reported
    _transfer(conn, "late", 800, "2026-11-20T09:00:00")  # its order is not known yet
    now = at("2026-12-02T12:00:00")
    reporter = ConsumptionReporter(
        Settings(database_url=database_url, consumption_settle_s=10),
        None,  # type: ignore[arg-type]  # count never calls Balance
        clock=lambda: now,
    )
    counted = reporter.count(conn)
    assert counted == at("2026-12-02T11:59:50")
    expected = {
        ("a", "2026-10"): (1_200, at("2026-10-31T20:59:59")),  # October's last Moscow second
        ("a", "2026-11"): (1_230, at("2026-11-30T20:59:59")),
        ("b", "2026-11"): (4_300, at("2026-11-30T20:59:59")),
    }
    assert _reports(conn) == expected
    # Nothing new: a second count makes no report.
    assert reporter.count(conn) == counted
    assert _reports(conn) == expected
    # Balance answers the late client's registration now: its revenue so far is reported,
    # dated now (Balance bills it with this month); a December charge of b likewise.
    conn.execute(
        "INSERT INTO balance_accounts (tenant, client_id, balance_client_id, service_order_id,"
        " status, updated_at) VALUES ('autoru', 'late', 10000009, 509, 'registered', %s)",
        (at("2026-12-02T12:00:10"),),
    )
    _transfer(conn, "b", 45, "2026-12-02T11:59:55")  # applied after the last cutoff
    later = at("2026-12-02T12:01:00")
    reporter.clock = lambda: later
    reporter.count(conn)
    assert _reports(conn) == {
        **expected,
        ("b", "2026-12"): (4_345, at("2026-12-02T12:00:49")),
        ("late", "2026-12"): (800, at("2026-12-02T12:00:49")),
    }  # a's total did not change: no December report for a
