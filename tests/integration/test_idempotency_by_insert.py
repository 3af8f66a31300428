"""Idempotency by insert (consumers.ledger.handler, `LedgerHandler.apply`): a batch of at
least INSERT_FIRST_MIN commands is applied without looking its ids up first; a resend among
them is found by the processed_commands primary key, and the batch is applied again with
every id looked up. These tests check that a resend is still answered exactly as before:
the stored result, marked duplicate, the ledger moved once; another payload under a used id
is a conflict; a Balance-bound command answered earlier is not sent to Balance again.
"""

from __future__ import annotations

import psycopg
import pytest

from billy_core.codec import encode_result
from billy_core.commands import Charge, Command, Refund, RegisterClient, TransferCredit
from billy_core.idempotency import payload_hash
from billy_core.results import Code, Result, Status
from consumers.ledger.handler import INSERT_FIRST_MIN
from tests.integration.ledger_partition import TENANT, Partition, available, fund

pytestmark = pytest.mark.integration

BIG = INSERT_FIRST_MIN + 6


def _charges(client: str, prefix: str, n: int, amount: int = 10) -> list[Command]:
    return [Command(f"{prefix}{i}", client, 2, Charge("p", amount, "RUB")) for i in range(n)]


@pytest.fixture
def conn(database_url):
    with psycopg.connect(database_url, autocommit=True) as c:
        yield c


def test_a_resend_in_a_big_batch_gets_its_stored_result_and_moves_nothing(conn):
    p = Partition(conn, 0)
    p.apply(
        [
            Command("r1", "c1", 1, RegisterClient("A", "a@x.ru", "RUB")),
        ]
    )
    fund(conn, "c1", 100_000)
    first = p.apply(_charges("c1", "a", BIG))
    assert [r.code for r in first] == [Code.OK] * BIG
    assert available(conn, "c1") == 100_000 - 10 * BIG

    # A big batch of new charges with one resend in the middle.
    batch = _charges("c1", "b", BIG)
    batch.insert(BIG // 2, _charges("c1", "a", 4)[3])
    results = p.apply(batch)

    assert len(results) == BIG + 1
    resent = results[BIG // 2]
    assert resent.duplicate and resent.command_id == "a3"
    assert resent == Result(**{**_fields(first[3]), "duplicate": True})
    assert [r.code for r in results] == [Code.OK] * (BIG + 1)
    assert sum(r.duplicate for r in results) == 1
    assert available(conn, "c1") == 100_000 - 10 * BIG * 2
    (charged,) = conn.execute(
        "SELECT count(*) FROM applied_services WHERE kind = 'CHARGE'"
    ).fetchone()
    assert charged == 2 * BIG
    # After a resend the handler looks ids up for a while: the next big batch is careful.
    assert p.handler._look_up_until > 0


def test_a_resent_charge_beside_a_refund_of_it_is_a_duplicate(conn):
    """The refund loads the charge's record, so a resent charge decided anew would meet it in
    the core before its processed row met the primary key (found by the long fault profile
    as a crash loop): the charge's id is looked up first."""
    p = Partition(conn, 4)
    p.apply([Command("r5", "c5", 1, RegisterClient("E", "e@x.ru", "RUB"))])
    fund(conn, "c5", 100_000)
    (charged,) = p.apply([Command("paid", "c5", 2, Charge("p", 500, "RUB"))])
    batch = _charges("c5", "f", BIG)
    batch.append(Command("back", "c5", 3, Refund("paid", 200)))
    batch.append(Command("paid", "c5", 2, Charge("p", 500, "RUB")))
    results = p.apply(batch)

    assert results[-2].code is Code.OK and not results[-2].duplicate
    assert results[-1] == Result(**{**_fields(charged), "duplicate": True})
    assert available(conn, "c5") == 100_000 - 500 + 200 - 10 * BIG
    assert p.handler._look_up_until == 0  # found by the lookup, not by the insert


def test_another_payload_under_a_used_id_is_a_conflict_in_a_big_batch(conn):
    p = Partition(conn, 1)
    p.apply(
        [
            Command("r2", "c2", 1, RegisterClient("B", "b@x.ru", "RUB")),
        ]
    )
    fund(conn, "c2", 100_000)
    p.apply([Command("used", "c2", 2, Charge("p", 10, "RUB"))])
    batch = _charges("c2", "n", BIG)
    batch.append(Command("used", "c2", 2, Charge("p", 99, "RUB")))
    results = p.apply(batch)

    assert results[-1].status is Status.REJECTED
    assert results[-1].code is Code.IDEMPOTENCY_CONFLICT
    assert not results[-1].duplicate
    assert available(conn, "c2") == 100_000 - 10 - 10 * BIG


def test_a_balance_bound_command_answered_before_is_not_sent_to_balance_again(conn):
    p = Partition(conn, 2, gateway=True)
    p.apply([Command("r3", "c3", 1, RegisterClient("C", "c@x.ru", "RUB"))])
    # Balance answered an earlier TransferCredit: its processed row holds the Result, and
    # it is no longer pending (as balance_intents.apply_outcomes leaves it).
    earlier = Command("credit", "c3", 2, TransferCredit(5_000, "RUB"))
    answer = Result(
        "credit", "c3", Status.APPLIED, Code.OK, "credited", "RUB", 5_000, 0, 2, False, 1_000
    )
    conn.execute(
        "INSERT INTO processed_commands (tenant, command_id, client_id, payload_hash, applied,"
        " result, source_topic, source_partition, source_offset)"
        " VALUES (%s, 'credit', 'c3', %s, true, %s, %s, 2, 1)",
        (TENANT, payload_hash(earlier), encode_result(answer), p.topic),
    )
    pending_before = conn.execute("SELECT count(*) FROM balance_pending").fetchone()

    batch = _charges("c3", "h", BIG)  # rejected (no money), and written all the same
    batch.append(earlier)
    results = p.apply(batch)

    assert results[-1] == Result(**{**_fields(answer), "duplicate": True})
    assert conn.execute("SELECT count(*) FROM balance_pending").fetchone() == pending_before
    # The insert found no resend (the credit was looked up): the batch went through once.
    assert p.handler._look_up_until == 0


def test_small_batches_look_ids_up_first(conn):
    """Below INSERT_FIRST_MIN no savepoint: a resend is found by the lookup, so the insert
    never meets it and the handler does not turn careful."""
    p = Partition(conn, 3)
    p.apply([Command("r4", "c4", 1, RegisterClient("D", "d@x.ru", "RUB"))])
    first = p.apply(_charges("c4", "s", 3))
    again = p.apply(_charges("c4", "s", 3))
    assert [r.duplicate for r in again] == [True] * 3
    assert [r.code for r in again] == [r.code for r in first]
    assert p.handler._look_up_until == 0


def _fields(result: Result) -> dict[str, object]:
    return {name: getattr(result, name) for name in Result.__dataclass_fields__}
