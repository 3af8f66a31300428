"""DESIGN.md "Payments", from outside: a JVM-like service registers a client and asks for an
invoice; the client pays it in Balance (an emulator process of this module's own, which
notifies billy's intake over HTTP, signed); the service sees the money arrive as a Result on
its results topic, decoded with the published schemas, and in the read API. No billy import.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.contract import wire
from tests.contract.conftest import TOKENS, Billy, _free_port, start_billy, stop_billy
from tests.contract.speak import register, results, send_command
from tests.emulator_process import start_emulator

pytestmark = pytest.mark.integration

SECRET = "contract-payments-secret"
PH = {"lname": "Petrova", "fname": "Anna", "mname": "Sergeevna", "phone": "+7 900 000-00-01",
      "email": "anna@example.ru"}  # fmt: skip


@pytest.fixture(scope="module")
def intake_port() -> int:
    return _free_port()


@pytest.fixture(scope="module")
def emulator(tmp_path_factory, intake_port):  # type: ignore[no-untyped-def]
    with start_emulator(
        tmp_path_factory.mktemp("balance") / "balance.sqlite3",
        notify_url=f"http://127.0.0.1:{intake_port}/balance",
        notify_secret=SECRET,
    ) as process:
        yield process


@pytest.fixture(scope="module")
def billy(stack, fresh_database, tmp_path_factory, emulator, intake_port) -> Iterator[Billy]:  # type: ignore[no-untyped-def]
    prefix = f"p{uuid.uuid4().hex[:10]}"
    log = tmp_path_factory.mktemp("billy") / "billy.log"
    env = {
        "BILLY_BALANCE_URL": emulator.url,
        "BILLY_INTAKE_PORT": str(intake_port),
        "BILLY_BALANCE_NOTIFY_SECRET": SECRET,
    }
    running = start_billy(stack, fresh_database, prefix, log, extra_env=env)
    yield running
    stop_billy(running)


def _ask(billy: Billy, client: str, body_type: str, body: dict) -> dict:
    cid = send_command(billy, "autoru", client, body_type, body)
    (r,) = results(billy, "autoru.results", {cid: 1}, timeout_s=90)[cid]
    return r


def test_a_paid_invoice_arrives_as_a_payment_result_and_in_the_read_api(billy, emulator):
    client = f"jvm-{uuid.uuid4().hex[:8]}"
    reg = register(billy, "autoru", client)
    assert reg["status"] == "APPLIED" and reg["details"]["balance_status"] == "registered"
    payer = _ask(billy, client, "UpsertPayer", {"payer_id": None, "type": "ph", "fields": PH})
    assert payer["code"] == "ok"
    invoice = _ask(
        billy,
        client,
        "RequestInvoice",
        {"amount_minor": 250_000, "currency": "RUB", "payer_id": "", "contract_id": None},
    )
    assert invoice["code"] == "ok"
    invoice_id = invoice["details"]["invoice_id"]

    emulator.control.TestBalance.PayInvoice(int(invoice_id))

    def paid(records: list) -> list[dict]:
        decoded = (wire.decode(m.value(), "Result") for m in records)
        return [r for r in decoded if r["client_id"] == client and r["code"] == "payment_received"]

    records = billy.read("autoru.results", lambda rs: bool(paid(rs)), timeout_s=90)
    (payment,) = paid(records)
    order = reg["details"]["service_order_id"]
    assert payment["status"] == "APPLIED" and payment["duplicate"] is False
    assert payment["command_id"].startswith(f"billy-payment:{order}:")
    assert (payment["available_minor"], payment["currency"]) == (250_000, "RUB")
    assert payment["details"]["amount_minor"] == "250000"
    assert payment["details"]["invoice_id"] == invoice_id
    # The key is the client id, like every result.
    (record,) = [m for m in records if wire.decode(m.value(), "Result") == payment]
    assert record.key() == client.encode()

    # The read API lists the payment and shows the invoice as paid.
    headers = {"Authorization": f"Bearer {TOKENS['autoru']}"}
    listed = httpx.get(f"{billy.api}/v1/autoru/clients/{client}/payments", headers=headers)
    assert listed.status_code == 200, listed.text
    (row,) = listed.json()["payments"]
    assert (row["amount_minor"], str(row["invoice_id"])) == (250_000, invoice_id)
    assert row["tid"] == payment["details"]["tid"]
    balance = httpx.get(f"{billy.api}/v1/autoru/clients/{client}/balance", headers=headers)
    assert balance.status_code == 200, balance.text  # where part 1 lists the invoices
    statuses = {str(i["invoice_id"]): i["status"] for i in balance.json()["invoices"]}
    assert statuses[invoice_id] == "paid"


def _notify(billy_intake: str, structs: list, secret: str | None) -> httpx.Response:
    """POST a JSON NotifyOrder2 as Balance does: the body signed with HMAC-SHA256."""
    body = json.dumps(structs).encode()
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers["X-Balance-Signature"] = f"sha256={digest}"
    return httpx.post(f"{billy_intake}/BalanceClient/NotifyOrder2", content=body, headers=headers)


def test_forged_unsigned_and_malformed_notifications_credit_nothing(billy, intake_port):
    """Speaking only HTTP, as Balance would: an unsigned or wrongly signed notification is
    refused (403), a malformed one is refused naming the field (400, Balance sends it again
    later), and a signed one whose figures Balance does not confirm is answered 200 (so
    Balance stops) and credits nothing."""
    client = f"jvm-{uuid.uuid4().hex[:8]}"
    reg = register(billy, "autoru", client)
    order = int(reg["details"]["service_order_id"])
    intake = f"http://127.0.0.1:{intake_port}/balance"
    forged = {
        "ServiceID": 1000,  # billy's default ServiceID
        "ServiceOrderID": order,
        "Tid": "9" * 17,
        "Signal": 1,
        "SignalDescription": "Order balance have been changed",
        "ConsumeQty": "1000000",
        "ConsumeSum": "1000000.00",  # Balance has nothing on this order
        "ConsumeAmount": "1000000.00",
        "ConsumeCurrency": "RUB",
        "CompletionQty": "0",
    }

    assert _notify(intake, [forged], None).status_code == 403
    assert _notify(intake, [forged], "not-the-secret").status_code == 403
    for field, bad in [("ConsumeSum", "1e6"), ("Tid", "12\x00"), ("ServiceOrderID", "x" * 5000)]:
        answer = _notify(intake, [{**forged, field: bad}], SECRET)
        assert answer.status_code == 400, (field, answer.text)
        assert field in answer.text
    assert _notify(intake, [forged], SECRET).status_code == 200

    # Nothing was credited: no payment result, and the read API lists no payment.
    marker = send_command(
        billy,
        "autoru",
        client,
        "Charge",
        {"product_id": "listing", "amount_minor": 1, "currency": "RUB"},
    )
    answers = results(billy, "autoru.results", {marker: 1}, timeout_s=90)
    (after,) = answers[marker]
    assert (after["status"], after["code"]) == ("REJECTED", "insufficient_funds")
    assert after["available_minor"] == 0
    headers = {"Authorization": f"Bearer {TOKENS['autoru']}"}
    listed = httpx.get(f"{billy.api}/v1/autoru/clients/{client}/payments", headers=headers)
    assert listed.status_code == 200 and listed.json()["payments"] == []
