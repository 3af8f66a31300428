"""Payments end to end: the Balance emulator PROCESS pays an invoice and notifies billy's intake
over HTTP; the ledger credits the wallet once; the result, the wallet snapshot, the payment line
and the paid invoice are read back from Kafka and PostgreSQL. Forged, unsigned, stale and
malformed notifications are sent to the intake by hand, signed (or not) like Balance signs.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
import xmlrpc.client

import httpx
import psycopg
import pytest
from click.testing import CliRunner
from prometheus_client import REGISTRY
from pydantic import SecretStr

from billy.cli import main
from billy_core.balance.notifications import sign
from billy_core.codec import decode_applied_service, decode_result
from billy_core.commands import (
    Charge,
    RegisterClient,
    RequestInvoice,
    TransferCredit,
    UpsertContract,
    UpsertPayer,
)
from billy_core.results import Result
from tests.conftest import RunningRoles
from tests.emulator_process import start_emulator
from tests.integration.balance_setup import gateway_settings
from tests.integration.kafka_io import Reader, Sender, cmd

pytestmark = pytest.mark.integration

TENANT = "autoru"
SECRET = "payments-test-secret"
PH = {"lname": "Petrov", "fname": "Ivan", "mname": "Ivanovich", "phone": "+7 900 000-00-00",
      "email": "ivan@example.ru"}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def intake_url():
    return f"http://127.0.0.1:{_free_port()}/balance"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory, intake_url):
    with start_emulator(
        tmp_path_factory.mktemp("balance") / "balance.sqlite3",
        notify_url=intake_url,
        notify_form="json",
        notify_secret=SECRET,
    ) as process:
        yield process


@pytest.fixture(scope="module")
def pay_settings(settings, emulator, intake_url):
    return gateway_settings(
        settings,
        emulator.url,
        intake_port=int(intake_url.split(":")[2].split("/")[0]),
        balance_notify_secret=SecretStr(SECRET),
    )


@pytest.fixture(scope="module")
def running(pay_settings, topics):
    roles = RunningRoles(pay_settings, ("ledger", "gateway", "relay", "intake"))
    yield roles
    roles.close()
    assert not roles.errors, roles.errors


class Io:
    def __init__(self, settings, topics) -> None:
        self.sender = Sender(settings)
        self.results = Reader(settings, topics.results(TENANT))
        self.applied = Reader(settings, topics.applied_services)
        self.topic = topics.commands(TENANT)

    def send(self, client: str, body) -> str:
        command_id = self.sender.command(self.topic, cmd(client, body))
        self.sender.flush()
        return command_id

    def of(self, predicate) -> list[Result]:
        return [r for r in (decode_result(m.value()) for m in self.results.records) if predicate(r)]

    def wait(self, predicate, count: int = 1, timeout_s: float = 60.0) -> list[Result]:
        self.results.poll_until(lambda _: len(self.of(predicate)) >= count, timeout_s)
        return self.of(predicate)

    def answer(self, client: str, body) -> Result:
        command_id = self.send(client, body)
        (r,) = self.wait(lambda r: r.command_id == command_id)
        return r

    def payments(self, client: str) -> list[Result]:
        return self.of(lambda r: r.client_id == client and r.code == "payment_received")


@pytest.fixture(scope="module")
def io(pay_settings, topics, running):
    io = Io(pay_settings, topics)
    yield io
    io.results.close()
    io.applied.close()


def _client_with_invoice(io: Io, amount_minor: int) -> tuple[str, Result, Result]:
    client = f"p-{uuid.uuid4().hex[:8]}"
    reg = io.answer(client, RegisterClient(f"Dealer {client}", f"{client}@example.ru"))
    assert reg.details["balance_status"] == "registered"
    assert io.answer(client, UpsertPayer(None, "ph", PH)).code == "ok"
    inv = io.answer(client, RequestInvoice(amount_minor, "RUB", ""))
    assert (inv.status, inv.code) == ("APPLIED", "ok"), inv
    return client, reg, inv


def _db(settings, sql: str, *args):
    with psycopg.connect(settings.database_url) as conn:
        return conn.execute(sql, args).fetchall()


def test_a_paid_invoice_is_credited_once_with_its_result_line_and_invoice(
    io, emulator, pay_settings
):
    client, reg, inv = _client_with_invoice(io, 150_000)
    invoice_id = int(inv.details["invoice_id"])
    emulator.control.TestBalance.PayInvoice(invoice_id)
    (paid,) = io.wait(lambda r: r.client_id == client and r.code == "payment_received")
    order = reg.details["service_order_id"]
    assert (paid.status, paid.available_minor, paid.currency) == ("APPLIED", 150_000, "RUB")
    assert paid.command_id.startswith(f"billy-payment:{order}:")
    assert paid.details["amount_minor"] == "150000"
    assert paid.details["invoice_id"] == str(invoice_id)
    assert paid.details["order_sum_minor"] == "150000"
    # The applied-services log carries the payment as its own kind of line.
    io.applied.poll_until(
        lambda ms: any(decode_applied_service(m.value()).command_id == paid.command_id for m in ms)
    )
    line = next(
        decode_applied_service(m.value())
        for m in io.applied.records
        if decode_applied_service(m.value()).command_id == paid.command_id
    )
    assert (str(line.kind), line.amount_minor) == ("PAYMENT", 150_000)
    # The invoice shows as paid; the payment is listed; the double entry is from payments.
    assert _db(
        pay_settings,
        "SELECT status FROM balance_invoices WHERE client_id = %s AND invoice_id = %s",
        client,
        invoice_id,
    ) == [("paid",)]
    assert _db(
        pay_settings,
        "SELECT amount_minor, invoice_id FROM payments WHERE client_id = %s",
        client,
    ) == [(150_000, invoice_id)]
    assert _db(
        pay_settings,
        "SELECT source, amount_minor FROM transfers WHERE client_id = %s AND command_id = %s",
        client,
        paid.command_id,
    ) == [(f"t:{TENANT}:payments", 150_000)]
    # The command line lists it too.
    shown = CliRunner().invoke(
        main,
        ["payments", TENANT, client],
        env={"BILLY_DATABASE_URL": pay_settings.database_url, "BILLY_LOG_FORMAT": "text"},
    )
    assert shown.exit_code == 0, shown.output
    assert f"invoice {invoice_id}" in shown.output and "150000 minor" in shown.output
    # Balance delivers the same notification again: nothing more is credited.
    emulator.control.TestBalance.WaitNotifications(10)
    _notify(pay_settings, _last_struct(emulator, int(order)))
    time.sleep(2)
    io.results.poll_until(lambda _: True, 1)
    assert len(io.payments(client)) == 1


def test_a_postpay_topup_is_credited_once_whatever_arrives_first(io, emulator, pay_settings):
    client = f"p-{uuid.uuid4().hex[:8]}"
    reg = io.answer(client, RegisterClient(f"Dealer {client}", f"{client}@example.ru"))
    assert io.answer(client, UpsertPayer("me", "ph", PH)).code == "ok"
    post = io.answer(client, UpsertContract("post", "me", "postpay", 1_000_000, "RUB", 30))
    assert post.code == "ok"
    credit = io.answer(client, TransferCredit(400_000, "RUB"))
    assert (credit.code, credit.available_minor) == ("ok", 400_000)
    order = int(reg.details["service_order_id"])
    assert emulator.control.TestBalance.WaitNotifications(15) == 0
    _wait_order_seen(pay_settings, client, 400_000)
    assert io.payments(client) == []  # the notification of the top-up credited nothing more
    # A payment after it is credited exactly.
    inv = io.answer(client, RequestInvoice(50_000, "RUB", ""))
    emulator.control.TestBalance.PayInvoice(int(inv.details["invoice_id"]))
    (paid,) = io.wait(lambda r: r.client_id == client and r.code == "payment_received")
    assert (paid.details["amount_minor"], paid.available_minor) == ("50000", 450_000)
    assert paid.details["order_sum_minor"] == "450000"
    assert _db(
        pay_settings,
        "SELECT credited_payments_minor, credited_postpay_minor, seen_minor FROM balance_orders"
        " WHERE client_id = %s AND service_order_id = %s",
        client,
        order,
    ) == [(50_000, 400_000, 450_000)]


def test_the_xmlrpc_form_is_taken_as_well(io, emulator, pay_settings):
    client, _, inv = _client_with_invoice(io, 70_000)
    emulator.control.TestBalance.SetNotify({"form": "xmlrpc"})
    try:
        emulator.control.TestBalance.PayInvoice(int(inv.details["invoice_id"]))
        (paid,) = io.wait(lambda r: r.client_id == client and r.code == "payment_received")
        assert paid.available_minor == 70_000
    finally:
        emulator.control.TestBalance.SetNotify({"form": "json"})


# --- notifications billy refuses or ignores ------------------------------------------------


def _post(settings, body: bytes, path: str = "/BalanceClient/NotifyOrder2", signature=...):
    headers = {"Content-Type": "application/json"}
    if signature is ...:
        signature = sign(SECRET.encode(), body)
    if signature is not None:
        headers["X-Balance-Signature"] = signature
    url = f"http://127.0.0.1:{settings.intake_port}/balance{path}"
    return httpx.post(url, content=body, headers=headers, timeout=30)


def _notify(settings, struct: dict, signature=...) -> httpx.Response:
    return _post(settings, json.dumps([struct]).encode(), signature=signature)


def _last_struct(emulator, order: int) -> dict:
    rows = emulator.control.TestBalance.GetNotifications({"ServiceOrderID": order})
    return rows[-1]["Payload"]


def _wait_order_seen(settings, client: str, seen_minor: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = _db(settings, "SELECT seen_minor FROM balance_orders WHERE client_id = %s", client)
        if rows and rows[0][0] >= seen_minor:
            return
        time.sleep(0.3)
    raise AssertionError(f"{client}: the order never showed {seen_minor}")


def _count(name: str, **labels: str) -> float:
    """A counter of this process's registry (the roles run on its threads)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _wallet(settings, client: str) -> int:
    return _db(settings, "SELECT available_minor FROM wallets WHERE client_id = %s", client)[0][0]


def test_forged_stale_unsigned_and_malformed_notifications_credit_nothing(
    io, emulator, pay_settings
):
    client, reg, inv = _client_with_invoice(io, 30_000)
    order = int(reg.details["service_order_id"])
    emulator.control.TestBalance.PayInvoice(int(inv.details["invoice_id"]))
    io.wait(lambda r: r.client_id == client and r.code == "payment_received")
    genuine = _last_struct(emulator, order)
    before = _wallet(pay_settings, client)
    newer_tid = str(int(genuine["Tid"]) + 1000)

    # Unsigned or wrongly signed: 403, nothing read.
    forged = {**genuine, "Tid": newer_tid, "ConsumeSum": "999999.00"}
    assert _notify(pay_settings, forged, signature=None).status_code == 403
    assert _notify(pay_settings, forged, signature="sha256=" + "0" * 64).status_code == 403
    # Signed, but Balance does not confirm the figures: answered with success (Balance stops
    # retrying a snapshot that can never be confirmed), credited nothing, counted.
    forged_before = _count("billy_notifications_total", form="json", outcome="forged")
    assert _notify(pay_settings, forged).status_code == 200
    assert _count("billy_notifications_total", form="json", outcome="forged") == forged_before + 1
    unknown_order = {**forged, "ServiceOrderID": 2_000_000_001}
    assert _notify(pay_settings, unknown_order).status_code == 503  # billy does not know it
    # A Tid older than the last applied, with figures Balance confirms: ignored by the ledger.
    stale = {**genuine, "Tid": str(int(genuine["Tid"]) - 1)}
    assert _notify(pay_settings, stale).status_code == 200
    # Balance away: the figures cannot be confirmed, so Balance is told to deliver it again.
    emulator.control.TestBalance.SetFaults({"fail_share": 1, "only_methods": ["GetOrdersInfo"]})
    try:
        assert _notify(pay_settings, stale).status_code == 503
    finally:
        emulator.control.TestBalance.SetFaults({})
    # Malformed: 400 naming the field.
    bad = _notify(pay_settings, {**genuine, "ConsumeSum": "12.345"})
    assert bad.status_code == 400 and "ConsumeSum" in bad.json()["error"]
    bad = _notify(pay_settings, {**genuine, "Tid": "12a"})
    assert bad.status_code == 400 and "Tid" in bad.json()["error"]
    other_service = _notify(pay_settings, {**genuine, "ServiceID": 7})
    assert other_service.status_code == 400 and "ServiceID" in other_service.json()["error"]
    # XML-RPC: unsigned is a fault; NotifyClient2 / NotifyInvoice are answered with success.
    call = xmlrpc.client.dumps((forged,), "BalanceClient.NotifyOrder2").encode()
    answer = _post(pay_settings, call, path="", signature=None)
    with pytest.raises(xmlrpc.client.Fault, match="signature"):
        xmlrpc.client.loads(answer.content)
    client2 = xmlrpc.client.dumps(({"ClientID": 1},), "BalanceClient.NotifyClient2").encode()
    (ok,), _ = xmlrpc.client.loads(_post(pay_settings, client2, path="").content)
    assert ok == [0, "ok"]
    assert _post(pay_settings, b"{}", path="/BalanceClient/NotifyInvoice").status_code == 200

    time.sleep(3)  # the ledger had every chance to apply whatever reached it
    assert _count("billy_payments_total", tenant=TENANT, outcome="stale") >= 1
    io.results.poll_until(lambda _: True, 1)
    assert _wallet(pay_settings, client) == before
    assert len(io.payments(client)) == 1
    (last_tid,) = _db(pay_settings, "SELECT last_tid FROM balance_orders WHERE client_id = %s",
                      client)[0]  # fmt: skip
    assert int(last_tid) == int(genuine["Tid"])


def test_a_source_outside_the_allow_list_is_refused_before_its_body_is_read(pay_settings):
    import threading

    from intake import IntakeServer

    port = _free_port()
    strict = pay_settings.model_copy(
        update={"intake_port": port, "intake_allow_cidrs": ("10.0.0.0/8",)}
    )
    stop = threading.Event()
    server = IntakeServer(strict)
    thread = threading.Thread(target=server.run, args=(stop,), daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{port}/balance/BalanceClient/NotifyOrder2"
        deadline = time.monotonic() + 30
        while True:
            try:
                before = _count("billy_notifications_total", form="json", outcome="refused_source")
                body = b"[]"
                answer = httpx.post(
                    url, content=body, headers={"X-Balance-Signature": sign(SECRET.encode(), body)}
                )
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert answer.status_code == 403 and "source" in answer.json()["error"]
        after = _count("billy_notifications_total", form="json", outcome="refused_source")
        assert after == before + 1
    finally:
        stop.set()
        thread.join(10)


def test_a_body_over_the_limit_is_refused(pay_settings, running):
    big = b"[" + b" " * (pay_settings.intake_body_bytes_max + 1) + b"]"
    assert _post(pay_settings, big).status_code == 413


def test_bad_records_on_the_events_topic_are_dead_lettered_and_the_partition_goes_on(
    io, pay_settings, topics
):
    """Garbage among the intake's events (the payment mark with a broken body, a huge one
    with control characters, a wrong type in a field) cannot stop the ledger: each goes to
    the DLQ as it was, and the client's next command on the same partition is answered."""
    client, _reg, _inv = _client_with_invoice(io, 10_000)
    key = f"{TENANT}/{client}".encode()
    good_shape = {
        "v": 1,
        "type": "payment",
        "tenant": TENANT,
        "client_id": client,
        "service_order_id": 1,
        "tid": "5",
        "order_sum_minor": 100,
    }
    bad = [
        b'{"type":"payment","v":1,' + b"\x00" * 10,  # the mark, then no JSON
        json.dumps({**good_shape, "client_id": "\x07" * 100_000}).encode(),  # huge, a BEL
        json.dumps({**good_shape, "order_sum_minor": "100"}, sort_keys=True).encode(),  # a string
    ]
    sender = Sender(pay_settings)
    for value in bad:
        sender.raw(topics.internal_events, key, value)
    sender.flush()

    # The partition goes on: the client's next command is answered.
    after = io.answer(client, Charge("listing", 1, "RUB"))
    assert (after.status, after.code) == ("REJECTED", "insufficient_funds")
    dlq = Reader(pay_settings, topics.dlq)
    try:
        dlq.poll_until(lambda ms: sum(1 for m in ms if m.value() in bad) >= len(bad), timeout_s=60)
        kept = [m for m in dlq.records if m.value() in bad]
        assert sorted(m.value() for m in kept) == sorted(bad)  # exact copies
        assert all(m.key() == key for m in kept)
        reasons = [dict(m.headers() or [])["billy-dlq-reason"].decode() for m in kept]
        assert all(reasons), reasons
    finally:
        dlq.close()
    assert io.payments(client) == []
