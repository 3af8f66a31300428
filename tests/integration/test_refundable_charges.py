"""What can be refunded is stored on the applied-services log's CHARGE rows (migration 0012):
a charge's `refunded_minor` follows its refunds, whether they come in a later batch or in
the batch that applied the charge, and a refund cannot name anything but a charge."""

from __future__ import annotations

import psycopg
import pytest

from billy_core.commands import Charge, Command, ConfirmHold, Hold, Refund, RegisterClient
from billy_core.results import Code
from tests.integration.ledger_partition import TENANT, Partition, available, fund

pytestmark = pytest.mark.integration


@pytest.fixture
def conn(database_url):
    with psycopg.connect(database_url, autocommit=True) as c:
        yield c


def _refunded(conn: psycopg.Connection, client: str) -> dict[str, tuple[str, int]]:
    rows = conn.execute(
        "SELECT command_id, kind, refunded_minor FROM applied_services"
        " WHERE tenant = %s AND client_id = %s",
        (TENANT, client),
    ).fetchall()
    return {command_id: (kind, refunded) for command_id, kind, refunded in rows}


def test_a_charge_refunded_in_its_own_batch_and_in_later_ones(conn):
    p = Partition(conn, 5)
    p.apply([Command("reg", "k1", 1, RegisterClient("K", "k@x.ru", "RUB"))])
    fund(conn, "k1", 10_000)
    first = p.apply(
        [
            Command("ch", "k1", 2, Charge("vin", 1_000, "RUB")),
            Command("rf1", "k1", 3, Refund("ch", 300)),
        ]
    )
    assert [r.code for r in first] == [Code.OK, Code.OK]
    assert _refunded(conn, "k1")["ch"] == ("CHARGE", 300)

    later = p.apply(
        [
            Command("rf2", "k1", 4, Refund("ch", 600)),
            Command("rf3", "k1", 5, Refund("ch", 200)),  # 100 left
        ]
    )
    assert [r.code for r in later] == [Code.OK, Code.EXCEEDS_REFUNDABLE]
    assert later[1].details["refundable_minor"] == "100"
    assert _refunded(conn, "k1") == {
        "ch": ("CHARGE", 900),
        "rf1": ("REFUND", 0),
        "rf2": ("REFUND", 0),
    }
    assert available(conn, "k1") == 10_000 - 1_000 + 900


def test_a_confirmed_hold_is_refundable_and_nothing_else_is(conn):
    p = Partition(conn, 6)
    p.apply([Command("reg2", "k2", 1, RegisterClient("L", "l@x.ru", "RUB"))])
    fund(conn, "k2", 10_000)
    p.apply(
        [
            Command("h", "k2", 2, Hold("h1", "top", 500, "RUB", 10**13)),
            Command("conf", "k2", 3, ConfirmHold("h1", 400)),
            Command("back", "k2", 4, Refund("conf", 150)),
        ]
    )
    results = p.apply(
        [
            Command("again", "k2", 5, Refund("back", 1)),  # a refund is not a charge
            Command("hold", "k2", 6, Refund("h", 1)),  # nor is a hold
        ]
    )
    assert [r.code for r in results] == [Code.CHARGE_NOT_FOUND, Code.CHARGE_NOT_FOUND]
    assert _refunded(conn, "k2") == {"conf": ("CHARGE", 150), "back": ("REFUND", 0)}
