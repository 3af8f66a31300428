"""Consumption, month close, acts and reconciliation end to end: ledger, gateway and relay
on threads, the Balance emulator as its own PROCESS (a private one: closing a month is
global in Balance), real Kafka and PostgreSQL.

One story, in order (the tests of this module share it):
a month of charges, confirmed holds and refunds for a few clients -> consumption counted and
sent, the first UpdateCampaigns "times out after the work" and the reporter is replaced (a
restart): sent again, nothing counted twice -> `report_month` waits until Balance accepted
-> one more charge after the report (hidden from Balance) -> CloseMonth -> acts imported and
reconciled: zero differences but the hidden charge, named -> run again: nothing new
published.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import psycopg
import pytest

from billy_core.acts import months, wire
from billy_core.codec import decode_result
from billy_core.commands import Adjust, Charge, ConfirmHold, Hold, Refund, RegisterClient
from jobs.acts import ActsImporter
from jobs.balance_jobs import balance_client
from jobs.consumption import ConsumptionReporter
from tests.conftest import RunningRoles
from tests.emulator_process import start_emulator
from tests.integration.balance_setup import gateway_settings
from tests.integration.kafka_io import Reader, Sender, cmd, now_ms

pytestmark = pytest.mark.integration

TENANT = "autoru"
MONTH = months.month_of(dt.datetime.now(dt.UTC))


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    with start_emulator(tmp_path_factory.mktemp("balance") / "balance.sqlite3") as process:
        yield process


@pytest.fixture(scope="module")
def gw_settings(settings, emulator):
    return gateway_settings(settings, emulator.url, consumption_settle_s=1.0)


@pytest.fixture(scope="module")
def running(gw_settings, topics):
    # No sweeper: the test drives the consumption and acts jobs itself.
    roles = RunningRoles(gw_settings, ("ledger", "gateway", "relay"))
    yield roles
    roles.close()
    assert not roles.errors, roles.errors


class Story:
    def __init__(self, settings, topics) -> None:
        self.settings = settings
        self.topics = topics
        self.sender = Sender(settings)
        self.results = Reader(settings, topics.results(TENANT), topics.admin_results)
        self.outputs = Reader(settings, topics.acts, topics.reconciliation)
        self.ledger: dict[str, int] = {}  # what the test expects as each client's revenue
        self.clients = [f"d-{uuid.uuid4().hex[:6]}" for _ in range(3)]
        self.conn = psycopg.connect(settings.database_url, autocommit=True)

    def send(self, client: str, body, admin: bool = False) -> str:
        topic = self.topics.admin_commands if admin else self.topics.commands(TENANT)
        key = f"{TENANT}/{client}" if admin else None
        command_id = self.sender.command(topic, cmd(client, body), key=key)
        self.sender.flush()
        return command_id

    def wait(self, command_id: str, timeout_s: float = 60.0):
        def done(records) -> bool:
            return any(decode_result(m.value()).command_id == command_id for m in records)

        self.results.poll_until(done, timeout_s)
        return next(
            r
            for r in (decode_result(m.value()) for m in self.results.records)
            if r.command_id == command_id
        )

    def applied(self, client: str, body, admin: bool = False):
        r = self.wait(self.send(client, body, admin))
        assert (r.status, r.code) == ("APPLIED", "ok"), (body, r)
        return r

    def outputs_of(self, topic: str) -> list:
        return [m for m in self.outputs.records if m.topic() == topic]


@pytest.fixture(scope="module")
def story(gw_settings, topics, running):
    s = Story(gw_settings, topics)
    yield s
    s.results.close()
    s.outputs.close()
    s.conn.close()


def _balance_consumed(emulator, story: Story) -> dict[str, int]:
    """What Balance holds as each client's consumed money (its order's completion_sum)."""
    rows = story.conn.execute(
        "SELECT client_id, service_order_id FROM balance_accounts WHERE tenant = %s", (TENANT,)
    ).fetchall()
    orders = {int(o): c for c, o in rows if o is not None}
    infos = emulator.control.Balance2.GetOrdersInfo(
        [{"ServiceID": story.settings.balance_service_id, "ServiceOrderID": o} for o in orders]
    )
    return {
        orders[int(i["ServiceOrderID"])]: int(Decimal(i["completion_sum"]) * 100) for i in infos
    }


def test_1_a_month_of_charges_refunds_and_holds(story):
    a, b, c = story.clients
    for client in story.clients:
        r = story.applied(client, RegisterClient(f"Dealer {client}", f"{client}@example.ru"))
        assert r.details["balance_status"] == "registered"
        story.applied(client, Adjust(1_000_000, "RUB", "funding", "tester"), admin=True)
    first = story.applied(a, Charge("listing", 150_000, "RUB"))
    story.applied(a, Refund(first.command_id, 20_000))
    story.applied(a, Charge("boost", 33_333, "RUB"))
    expires = now_ms() + 3_600_000
    story.applied(b, Hold("h1", "calls", 90_000, "RUB", expires))
    story.applied(b, ConfirmHold("h1", 60_000))
    story.applied(b, Charge("listing", 10_000, "RUB"))
    story.applied(c, Charge("listing", 5_000, "RUB"))
    story.ledger = {a: 150_000 - 20_000 + 33_333, b: 60_000 + 10_000, c: 5_000}


def test_2_a_report_lost_in_flight_is_sent_again_after_a_restart(story, emulator):
    """UpdateCampaigns does its work but the answer is lost (as a kill right after the call
    would): nothing is marked accepted; a new reporter sends the same totals again, and
    Balance holds each total once, not twice."""
    first = ConsumptionReporter(story.settings, balance_client(story.settings))
    target = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=1)
    while first.count(story.conn, until=target) < target:
        pass
    waiting = story.conn.execute(
        "SELECT client_id, total_minor FROM consumption_reports WHERE NOT accepted"
    ).fetchall()
    assert dict(waiting) == story.ledger
    emulator.control.TestBalance.SetFaults(
        {"timeout_after_share": 1, "only_methods": ["UpdateCampaigns"], "limit": 1}
    )
    try:
        sent = first.send(story.conn)
    finally:
        emulator.control.TestBalance.SetFaults({})
    assert (sent.accepted, sent.failed) == (0, 3)
    assert _balance_consumed(emulator, story) == story.ledger  # the work was done
    restarted = ConsumptionReporter(story.settings, balance_client(story.settings))
    sent = restarted.send(story.conn)
    assert (sent.accepted, sent.refused, sent.failed) == (3, 0, 0)
    assert _balance_consumed(emulator, story) == story.ledger  # the same totals, not double
    assert restarted.send(story.conn).accepted == 0  # nothing left to send
    restarted.count(story.conn)
    assert restarted.send(story.conn).accepted == 0  # nothing changed: nothing reported


def test_3_report_before_close_then_a_hidden_charge(story, emulator):
    a, b, c = story.clients
    story.applied(a, Charge("listing", 7_000, "RUB"))  # after the last report: must be counted
    story.ledger[a] += 7_000
    reporter = ConsumptionReporter(story.settings, balance_client(story.settings))
    _, sent = reporter.report_month(story.conn, MONTH, timeout_s=60)
    assert (sent.accepted, sent.refused, sent.failed) == (1, 0, 0)
    assert _balance_consumed(emulator, story) == story.ledger
    story.applied(c, Charge("listing", 1_234, "RUB"))  # after the report: Balance never hears
    closed = emulator.control.TestBalance.CloseMonth(MONTH)
    assert closed["Created"] and len(closed["ActIDs"]) == 3


def test_4_acts_imported_and_reconciled_the_hidden_charge_named(story):
    a, b, c = story.clients
    importer = ActsImporter(story.settings, balance_client(story.settings), story.topics)
    imported = importer.import_month(story.conn, MONTH)
    assert (imported.new_acts, imported.failures) == (3, ())
    lines = {line.client_id: line for line in importer.reconcile_month(story.conn, MONTH)}
    assert {k: (v.act_minor, v.difference_minor, v.status) for k, v in lines.items()} == {
        a: (story.ledger[a], 0, "matched"),
        b: (story.ledger[b], 0, "matched"),
        c: (story.ledger[c], -1_234, "differs"),
    }
    assert lines[c].ledger_minor == story.ledger[c] + 1_234

    def published(records) -> bool:
        return (
            len([m for m in records if m.topic() == story.topics.acts]) >= 3
            and len([m for m in records if m.topic() == story.topics.reconciliation]) >= 3
        )

    story.outputs.poll_until(published, 60)
    acts = [wire.decode_act(m.value()) for m in story.outputs_of(story.topics.acts)]
    assert sorted((x.client_id, x.amount_minor, x.month) for x in acts) == sorted(
        (k, story.ledger[k], MONTH) for k in story.clients
    )
    assert all(x.act_date.day >= 28 and x.act_date.strftime("%Y-%m") == MONTH for x in acts)
    for m in story.outputs_of(story.topics.reconciliation):
        rec = wire.decode_reconciliation(m.value())
        assert m.key().decode() == f"{TENANT}/{rec.client_id}"
        expected = -1_234 if rec.client_id == c else 0
        assert (rec.difference_minor, rec.revision, rec.month) == (expected, 1, MONTH)


def test_5_running_again_publishes_nothing_new(story):
    importer = ActsImporter(story.settings, balance_client(story.settings), story.topics)
    assert importer.import_month(story.conn, MONTH).new_acts == 0
    importer.reconcile_month(story.conn, MONTH)
    before = len(story.outputs.records)
    story.outputs.drain(3.0)
    assert len(story.outputs.records) == before
    rows = story.conn.execute("SELECT count(*) FROM outbox").fetchone()
    assert rows is not None


def test_6_reads_list_a_clients_acts_with_their_reconciliation(story):
    from fastapi.testclient import TestClient

    from billy_core import reads
    from billy_core.api.app import create_app

    a, _, c = story.clients
    settings = story.settings.model_copy(update={"api_tokens": {"tok-acts": TENANT}})
    engine = reads.create_engine_for(settings)
    try:
        with TestClient(create_app(settings, engine)) as http:
            auth = {"Authorization": "Bearer tok-acts"}
            got = http.get(f"/v1/{TENANT}/clients/{c}/acts", headers=auth)
            assert got.status_code == 200, got.text
            body = got.json()
            (act,) = body["acts"]
            assert (act["month"], act["amount_minor"], act["reconciliation_status"]) == (
                MONTH,
                story.ledger[c],
                "differs",
            )
            (month,) = body["reconciliations"]
            assert (month["difference_minor"], month["status"]) == (-1_234, "differs")
            ok = http.get(f"/v1/{TENANT}/clients/{a}/acts", headers=auth).json()
            assert [x["reconciliation_status"] for x in ok["acts"]] == ["matched"]
            assert http.get(f"/v1/{TENANT}/clients/nobody/acts", headers=auth).status_code == 404
            assert http.get(f"/v1/realty/clients/{a}/acts", headers=auth).status_code in (
                401,
                403,
                404,
            )
    finally:
        engine.dispose()


def test_7_billy_reconcile_prints_the_table_and_says_there_is_a_difference(story):
    import os
    import subprocess
    import sys

    a, _, c = story.clients
    env = {
        **os.environ,
        "BILLY_DATABASE_URL": story.settings.database_url,
        "BILLY_KAFKA_BOOTSTRAP": story.settings.kafka_bootstrap,
        "BILLY_TOPIC_PREFIX": story.settings.topic_prefix,
        "BILLY_BALANCE_URL": story.settings.balance_url,
    }
    billy = [sys.executable, "-m", "billy.cli"]
    done = subprocess.run(
        [*billy, "reconcile", "--month", MONTH], env=env, capture_output=True, text=True
    )
    assert done.returncode == 3, done.stderr
    lines = done.stdout.splitlines()
    assert "acts " + MONTH + ": 0 new from 3 client(s)" in lines
    (row,) = [line for line in lines if line.startswith(f"{TENANT}/{c} ")]
    assert row.split()[-2:] == ["RUB", "differs"] and "-12.34 RUB" in row
    assert f"reconcile {MONTH}: 3 client(s), 1 with a difference" in lines
    shown = subprocess.run(
        [*billy, "acts", TENANT, a], env=env, capture_output=True, text=True, check=True
    )
    assert "matched" in shown.stdout and MONTH in shown.stdout
    bad = subprocess.run(
        [*billy, "reconcile", "--month", "2026-1"], env=env, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "--month" in bad.stderr


def test_8_a_refused_report_is_logged_kept_and_sent_again(story, caplog):
    """Balance answers 0 for an order it does not know: the report stays waiting, its refusal
    is counted, and the next run sends it again (accepted once Balance knows the order)."""
    from billy_core import metrics

    a = story.clients[0]
    (order_id,) = story.conn.execute(
        "SELECT service_order_id FROM balance_accounts WHERE tenant = %s AND client_id = %s",
        (TENANT, a),
    ).fetchone()
    earlier = months.previous_month(MONTH)  # a month already past: no dt in the future
    _, end = months.month_bounds(earlier)
    story.conn.execute(
        "INSERT INTO consumption_reports (tenant, client_id, month, service_order_id,"
        " total_minor, currency, report_dt) VALUES (%s, 'ghost', %s, 999999991, 100, 'RUB', %s)",
        (TENANT, earlier, end - dt.timedelta(seconds=1)),
    )
    refused_before = metrics.consumption_reports.labels("refused")._value.get()
    reporter = ConsumptionReporter(story.settings, balance_client(story.settings))
    with caplog.at_level("WARNING", logger="billy.consumption"):
        sent = reporter.send(story.conn)
    assert (sent.accepted, sent.refused, sent.failed) == (0, 1, 0)
    assert metrics.consumption_reports.labels("refused")._value.get() == refused_before + 1
    assert "order 999999991" in caplog.text and "sent again" in caplog.text
    row = story.conn.execute(
        "SELECT accepted, refusals FROM consumption_reports WHERE client_id = 'ghost'"
    ).fetchone()
    assert row == (False, 1)
    # Balance knows the order now (the ghost's row is pointed at a real one): accepted.
    story.conn.execute(
        "UPDATE consumption_reports SET service_order_id = %s WHERE client_id = 'ghost'",
        (order_id,),
    )
    assert reporter.send(story.conn).accepted == 1
    story.conn.execute("DELETE FROM consumption_reports WHERE client_id = 'ghost'")


def test_9_the_report_command_killed_and_run_again_loses_nothing(story, emulator):
    """`billy consumption report` SIGKILLed while Balance is slow (wherever the kill lands:
    counting, in the call, before the mark), then run again: every total reaches Balance,
    once (cumulative), and every report is accepted."""
    import os
    import signal
    import subprocess
    import sys
    import time

    b = story.clients[1]
    story.applied(b, Charge("listing", 4_321, "RUB"))
    story.ledger[b] += 4_321
    env = {
        **os.environ,
        "BILLY_DATABASE_URL": story.settings.database_url,
        "BILLY_KAFKA_BOOTSTRAP": story.settings.kafka_bootstrap,
        "BILLY_TOPIC_PREFIX": story.settings.topic_prefix,
        "BILLY_BALANCE_URL": story.settings.balance_url,
        "BILLY_CONSUMPTION_SETTLE_S": "1",
    }
    command = [sys.executable, "-m", "billy.cli", "consumption", "report", "--month", MONTH]
    emulator.control.TestBalance.SetFaults(
        {"latency_ms": 3000, "only_methods": ["UpdateCampaigns"]}
    )
    try:
        killed = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(4.0)  # past counting (settle 1 s), inside the slow UpdateCampaigns
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        assert killed.returncode == -signal.SIGKILL
    finally:
        emulator.control.TestBalance.SetFaults({})
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert f"every report of {MONTH} is accepted" in again.stdout
    consumed = _balance_consumed(emulator, story)
    assert {k: consumed[k] for k in story.clients[:2]} == {
        k: story.ledger[k] for k in story.clients[:2]
    }
    waiting = story.conn.execute(
        "SELECT count(*) FROM consumption_reports WHERE NOT accepted"
    ).fetchone()
    assert waiting == (0,)


def test_10_the_periodic_run_reconciles_last_month_only_once_balance_closed_it(story):
    """run_once looks at the month before its clock's. The closed month is reconciled again:
    a and c are as they were (nothing rewritten, nothing published); b's charge of test 9,
    applied after the close, is now a difference (revision 2). A month without any act (not
    closed) is not reconciled at all."""
    a, b, c = story.clients
    _, end = months.month_bounds(MONTH)

    def rows() -> dict:
        found = story.conn.execute(
            "SELECT client_id, revision, difference_minor, status, checked_at"
            " FROM reconciliations WHERE month = %s",
            (MONTH,),
        ).fetchall()
        return {r[0]: r[1:] for r in found}

    before = rows()
    next_month = ActsImporter(
        story.settings, balance_client(story.settings), story.topics, clock=lambda: end
    )
    next_month.run_once(story.conn)
    after = rows()
    assert (after[a], after[c]) == (before[a], before[c])
    assert after[b][:3] == (2, -4_321, "differs")
    this_month = ActsImporter(
        story.settings,
        balance_client(story.settings),
        story.topics,
        clock=lambda: end - dt.timedelta(days=1),
    )
    this_month.run_once(story.conn)  # looks at the month before MONTH: no act there
    earlier = months.previous_month(MONTH)
    assert story.conn.execute(
        "SELECT count(*) FROM reconciliations WHERE month = %s", (earlier,)
    ).fetchone() == (0,)
