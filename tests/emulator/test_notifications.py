"""NotifyOrder2: both forms, the signature, cumulative snapshots with a growing Tid,
retries until success, duplicates, reordering, delay, batching."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator

import pytest

from tests.emulator.conftest import UID, make_client, make_order, make_person
from tests.emulator.receiver import Receiver
from tests.emulator.test_consumption import report
from tests.emulator.test_invoices import BANK_PH, _postpay, credit_invoice, request
from tests.emulator_process import DEFAULT_NOTIFY_SECRET, EmulatorProcess, start_emulator

FIELDS = {
    "ServiceID",
    "ServiceOrderID",
    "Tid",
    "Signal",
    "SignalDescription",
    "ConsumeQty",
    "ConsumeSum",
    "ConsumeAmount",
    "ConsumeCurrency",
    "CompletionQty",
}


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture(scope="module")
def emulator(tmp_path_factory, receiver) -> Iterator[EmulatorProcess]:
    state = tmp_path_factory.mktemp("balance") / "emulator.sqlite3"
    with start_emulator(state, notify_url=receiver.url) as process:
        yield process


@pytest.fixture(autouse=True)
def fresh(emulator, receiver) -> None:
    emulator.control.TestBalance.SetFaults({})
    emulator.control.TestBalance.SetNotify(
        {
            "url": receiver.url,
            "form": "json",
            "retry_base_s": 0.05,
            "retry_max_s": 0.2,
            "batch_max": 1,
        }
    )
    assert emulator.control.TestBalance.WaitNotifications(10) == 0
    with receiver.lock:
        receiver.deliveries.clear()
        receiver.fail_first = 0


def unpaid_invoice(balance, amount: object = "100.00") -> tuple[int, int]:
    client_id = make_client(balance)
    order_id = make_order(balance, client_id)
    person_id = make_person(balance, client_id)
    request_id = request(balance, client_id, order_id, amount)["RequestID"]
    invoice_id = balance.Balance2.CreateInvoice(
        UID, {"RequestID": request_id, "PaysysID": BANK_PH, "PersonID": person_id}
    )
    return invoice_id, order_id


def verify_signature(delivery) -> None:
    expected = hmac.new(DEFAULT_NOTIFY_SECRET.encode(), delivery.body, hashlib.sha256).hexdigest()
    assert delivery.headers["X-Balance-Signature"] == f"sha256={expected}"


def test_json_form_struct_and_signature(balance, emulator, receiver):
    invoice_id, order_id = unpaid_invoice(balance)
    emulator.control.TestBalance.PayInvoice(invoice_id, "100.00")
    (struct,) = receiver.wait_for(1)
    (delivery,) = receiver.accepted()
    assert delivery.path == "/balance/BalanceClient/NotifyOrder2"
    assert delivery.headers["Content-Type"] == "application/json"
    verify_signature(delivery)
    assert set(struct) == FIELDS
    assert struct["ServiceOrderID"] == order_id and struct["Signal"] == 1
    assert struct["Tid"].isdigit()
    assert (struct["ConsumeQty"], struct["ConsumeSum"], struct["ConsumeAmount"]) == (
        "100",
        "100.00",
        "100.00",
    )
    assert struct["ConsumeCurrency"] == "RUB" and struct["CompletionQty"] == "0"


def test_xmlrpc_form_struct_and_signature(balance, emulator, receiver):
    emulator.control.TestBalance.SetNotify({"form": "xmlrpc"})
    invoice_id, order_id = unpaid_invoice(balance)
    emulator.control.TestBalance.PayInvoice(invoice_id)
    (struct,) = receiver.wait_for(1)
    (delivery,) = receiver.accepted()
    assert delivery.path == "/balance"
    verify_signature(delivery)
    assert set(struct) == FIELDS and struct["ServiceOrderID"] == order_id
    assert struct["ConsumeSum"] == "100.00"


def test_snapshots_are_cumulative_and_tid_grows(balance, emulator, receiver):
    invoice_id, order_id = unpaid_invoice(balance, "300.00")
    emulator.control.TestBalance.PayInvoice(invoice_id, "100.00")
    emulator.control.TestBalance.PayInvoice(invoice_id, "200.00")
    report(balance, order_id, "2026-11-01", "50.00")
    structs = receiver.wait_for(3)
    assert [s["ConsumeSum"] for s in structs] == ["100.00", "300.00", "300.00"]
    assert [s["CompletionQty"] for s in structs] == ["0", "0", "50"]
    tids = [int(s["Tid"]) for s in structs]
    assert tids == sorted(tids) and len(set(tids)) == 3
    # GetOrdersInfo agrees with the last snapshot.
    (info,) = balance.Balance2.GetOrdersInfo([{"ServiceID": 7, "ServiceOrderID": order_id}])
    assert (info["consume_sum"], info["completion_qty"]) == ("300.00", "50")


def test_credit_invoice_notifies_at_once(balance, receiver):
    client_id, order_id, person_id, contract_id = _postpay(balance)
    credit_invoice(balance, client_id, order_id, person_id, contract_id, "700.00")
    (struct,) = receiver.wait_for(1)
    assert struct["ServiceOrderID"] == order_id and struct["ConsumeSum"] == "700.00"


@pytest.mark.parametrize("form", ["json", "xmlrpc"])
def test_retries_until_delivered(balance, emulator, receiver, form):
    emulator.control.TestBalance.SetNotify({"form": form})
    receiver.fail_first = 3
    invoice_id, order_id = unpaid_invoice(balance)
    emulator.control.TestBalance.PayInvoice(invoice_id)
    (struct,) = receiver.wait_for(1)
    assert struct["ServiceOrderID"] == order_id
    assert len(receiver.deliveries) == 4
    (row,) = emulator.control.TestBalance.GetNotifications({"ServiceOrderID": order_id})
    assert row["Delivered"] and row["Attempts"] == 4 and row["Deliveries"] == 1


def test_duplicates(balance, emulator, receiver):
    emulator.control.TestBalance.SetFaults({"notify_duplicate_share": 1})
    invoice_id, order_id = unpaid_invoice(balance)
    emulator.control.TestBalance.PayInvoice(invoice_id)
    first, second = receiver.wait_for(2)
    assert first == second
    assert emulator.control.TestBalance.Stats()["faults_injected"]["notify_duplicated"] >= 1


def test_reorder_sends_an_older_snapshot_after_a_newer_one(balance, emulator, receiver):
    emulator.control.TestBalance.SetFaults({"notify_reorder_share": 1, "notify_reorder_hold_s": 5})
    invoice_id, order_id = unpaid_invoice(balance, "300.00")
    emulator.control.TestBalance.PayInvoice(invoice_id, "100.00")
    emulator.control.TestBalance.PayInvoice(invoice_id, "200.00")
    structs = receiver.wait_for(2)
    assert [s["ConsumeSum"] for s in structs] == ["300.00", "100.00"]
    assert int(structs[0]["Tid"]) > int(structs[1]["Tid"])  # a receiver must skip the stale one


def test_delay(balance, emulator, receiver):
    emulator.control.TestBalance.SetFaults({"notify_delay_share": 1, "notify_delay_ms": 800})
    invoice_id, _ = unpaid_invoice(balance)
    started = time.monotonic()
    emulator.control.TestBalance.PayInvoice(invoice_id)
    time.sleep(0.4)
    assert receiver.accepted_structs() == []
    assert len(receiver.wait_for(1)) == 1
    assert time.monotonic() - started >= 0.8


def test_notifications_wait_without_url_then_go_in_batches(balance, emulator, receiver):
    emulator.control.TestBalance.SetNotify({"url": None})
    orders = []
    for _ in range(3):
        invoice_id, order_id = unpaid_invoice(balance)
        emulator.control.TestBalance.PayInvoice(invoice_id)
        orders.append(order_id)
    time.sleep(0.3)
    assert receiver.deliveries == []
    assert len(emulator.control.TestBalance.GetNotifications({"PendingOnly": True})) == 3
    emulator.control.TestBalance.SetNotify({"url": receiver.url, "batch_max": 5})
    structs = receiver.wait_for(3)
    assert [s["ServiceOrderID"] for s in structs] == orders
    assert len(receiver.accepted()) == 1  # one POST carrying all three
    verify_signature(receiver.accepted()[0])


def test_notifications_survive_a_restart(balance, emulator, receiver):
    receiver.fail_first = 10**6  # the intake is down
    invoice_id, order_id = unpaid_invoice(balance)
    emulator.control.TestBalance.PayInvoice(invoice_id)
    deadline = time.monotonic() + 5
    while not receiver.deliveries and time.monotonic() < deadline:
        time.sleep(0.02)
    emulator.kill()
    receiver.fail_first = 0
    emulator.start()  # the intake is back; the outbox row is still there
    emulator.control.TestBalance.SetNotify({"retry_base_s": 0.05, "retry_max_s": 0.2})
    (struct,) = receiver.wait_for(1)
    assert struct["ServiceOrderID"] == order_id


def test_unreachable_receiver_is_retried_until_it_answers(balance, emulator, receiver):
    from tests.emulator_process import free_port

    emulator.control.TestBalance.SetNotify({"url": f"http://127.0.0.1:{free_port()}/balance"})
    invoice_id, order_id = unpaid_invoice(balance)
    emulator.control.TestBalance.PayInvoice(invoice_id)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        (row,) = emulator.control.TestBalance.GetNotifications({"ServiceOrderID": order_id})
        if row["Attempts"] >= 2:
            break
        time.sleep(0.05)
    assert not row["Delivered"] and row["Attempts"] >= 2 and row["LastError"]
    emulator.control.TestBalance.SetNotify({"url": receiver.url})
    (struct,) = receiver.wait_for(1)
    assert struct["ServiceOrderID"] == order_id
