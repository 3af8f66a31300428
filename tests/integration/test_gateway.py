"""The Balance gateway end to end: ledger, gateway, relay and the Balance emulator PROCESS.

Commands go in on the tenant's topic; results are read back from the results topic; what
Balance holds is read from the emulator's own state (`TestBalance.Dump`), never a mock.
"""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest

from billy_core.codec import decode_result
from billy_core.commands import (
    Charge,
    RegisterClient,
    RequestInvoice,
    TransferCredit,
    UpdateClient,
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
PH = {"lname": "Petrov", "fname": "Ivan", "mname": "Ivanovich", "phone": "+7 900 000-00-00",
      "email": "ivan@example.ru"}  # fmt: skip
UR = {
    "name": "Auto Center",
    "longname": "OOO Auto Center",
    "phone": "+7 495 000-00-00",
    "email": "buh@autocenter.example",
    "legaladdress": "Moscow, Lva Tolstogo 16",
    "postaddress": "Moscow, Lva Tolstogo 16",
    "postcode": "119021",
    "inn": "7736207543",
    "kpp": "773601001",
    "bik": "044525225",
    "account": "40702810938000000001",
}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    with start_emulator(tmp_path_factory.mktemp("balance") / "balance.sqlite3") as process:
        yield process


@pytest.fixture(scope="module")
def gw_settings(settings, emulator):
    return gateway_settings(settings, emulator.url)


@pytest.fixture(scope="module")
def running(gw_settings, topics):
    roles = RunningRoles(gw_settings, ("ledger", "gateway", "relay"))
    yield roles
    roles.close()
    assert not roles.errors, roles.errors


class Io:
    def __init__(self, settings, topics) -> None:
        self.sender = Sender(settings)
        self.results = Reader(settings, topics.results(TENANT))
        self.topic = topics.commands(TENANT)

    def send(self, client: str, body, command_id: str | None = None) -> str:
        command_id = self.sender.command(self.topic, cmd(client, body, command_id))
        self.sender.flush()
        return command_id

    def all_for(self, command_id: str) -> list[Result]:
        return [
            r
            for r in (decode_result(m.value()) for m in self.results.records)
            if r.command_id == command_id
        ]

    def wait(self, *command_ids: str, count: int = 1, timeout_s: float = 60.0) -> list[Result]:
        """The first result of each id, once each has `count` results."""

        def done(_records) -> bool:
            return all(len(self.all_for(c)) >= count for c in command_ids)

        self.results.poll_until(done, timeout_s)
        return [self.all_for(c)[0] for c in command_ids]


@pytest.fixture(scope="module")
def io(gw_settings, topics, running):
    io = Io(gw_settings, topics)
    yield io
    io.results.close()


def _client(prefix: str = "c") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _register(io: Io, client: str, name: str | None = None) -> Result:
    name = name or f"Dealer {client}"
    (r,) = io.wait(io.send(client, RegisterClient(name, f"{client}@example.ru")))
    assert (r.status, r.code, r.details["balance_status"]) == ("APPLIED", "ok", "registered")
    return r


def _dump(emulator, balance_client_id: int) -> dict:
    clients = emulator.control.TestBalance.Dump({"ClientID": balance_client_id})["clients"]
    assert len(clients) == 1
    return clients[0]


def test_register_creates_one_client_and_one_order(io, emulator):
    client = _client()
    r = _register(io, client)
    balance_id = int(r.details["balance_client_id"])
    dumped = _dump(emulator, balance_id)
    assert dumped["NAME"] == f"Dealer {client}"
    assert [o["ServiceOrderID"] for o in dumped["ORDERS"]] == [int(r.details["service_order_id"])]
    assert r.currency == "RUB" and r.wallet_version == 1


def test_charges_never_wait_for_balance(io, emulator):
    """The wallet exists at once: a charge right behind a RegisterClient is answered even
    while Balance is slow, and before the registration's result."""
    client = _client()
    emulator.control.TestBalance.SetFaults({"latency_ms": 1500})
    try:
        register = io.send(client, RegisterClient("Slow Dealer", f"{client}@example.ru"))
        charge = io.send(client, Charge("listing", 100, "RUB"))
        (c,) = io.wait(charge, timeout_s=30)
        assert c.code == "insufficient_funds"  # decided by the wallet, not by Balance
        assert io.all_for(register) == []  # Balance has not answered yet
        (r,) = io.wait(register, timeout_s=60)
        assert r.details["balance_status"] == "registered"
    finally:
        emulator.control.TestBalance.SetFaults({})


def test_a_resend_while_pending_is_answered_once_with_the_outcome(io, emulator):
    client = _client()
    emulator.control.TestBalance.SetFaults({"latency_ms": 800})
    try:
        first = io.send(client, RegisterClient("Twice", f"{client}@example.ru"), "reg-" + client)
        io.send(client, RegisterClient("Twice", f"{client}@example.ru"), "reg-" + client)
        io.wait(first, count=2)
    finally:
        emulator.control.TestBalance.SetFaults({})
    original, again = io.all_for(first)[:2]
    assert (original.duplicate, again.duplicate) == (False, True)
    assert original.details == again.details
    io.results.drain(2.0)
    assert len(io.all_for(first)) == 2  # one result per record, no more
    found = emulator.control.Balance2.FindClient({"Email": f"{client}@example.ru"})[2]
    assert len(found) == 1


def test_update_client_changes_the_same_balance_client(io, emulator):
    client = _client()
    r = _register(io, client)
    balance_id = int(r.details["balance_client_id"])
    (u,) = io.wait(io.send(client, UpdateClient("Renamed", f"new-{client}@example.ru", "+7 1")))
    assert (u.status, u.code, u.details["balance_client_id"]) == ("APPLIED", "ok", str(balance_id))
    dumped = _dump(emulator, balance_id)
    assert (dumped["NAME"], dumped["EMAIL"]) == ("Renamed", f"new-{client}@example.ru")


def test_a_bad_email_in_balance_is_reported_and_update_client_registers(io, emulator):
    """WRONG_EMAIL from Balance: the RegisterClient is APPLIED (the wallet exists) with
    balance_status failed; an UpdateClient with a good address registers the client."""
    client = _client()
    (r,) = io.wait(io.send(client, RegisterClient("Bad Mail", f"{client}@bad@x")))
    assert (r.status, r.code, r.details["balance_status"]) == ("APPLIED", "ok", "failed")
    assert r.details["balance_code"] == "WRONG_EMAIL"
    (p,) = io.wait(io.send(client, UpsertPayer(None, "ph", PH)))
    assert (p.status, p.code, p.details["balance_code"]) == (
        "REJECTED",
        "balance_error",
        "CLIENT_NOT_REGISTERED",
    )
    (u,) = io.wait(io.send(client, UpdateClient("Good Mail", f"{client}@example.ru")))
    assert (u.status, u.code) == ("APPLIED", "ok")
    _dump(emulator, int(u.details["balance_client_id"]))


def test_payers_contracts_invoices_and_credit(io, emulator, gw_settings):
    client = _client()
    r = _register(io, client)
    balance_id = int(r.details["balance_client_id"])
    (ph, ur) = io.wait(
        io.send(client, UpsertPayer(None, "ph", PH)),
        io.send(client, UpsertPayer("legal", "ur", UR)),
    )
    assert (ph.code, ur.code, ur.details["payer_id"]) == ("ok", "ok", "legal")
    # An update of a known payer changes the same Balance person.
    (again,) = io.wait(io.send(client, UpsertPayer("legal", "ur", {"phone": "+7 495 111-11-11"})))
    assert again.details["balance_person_id"] == ur.details["balance_person_id"]
    (pre, post) = io.wait(
        io.send(client, UpsertContract("pre", "legal", "prepay", None, "RUB")),
        io.send(client, UpsertContract("post", "legal", "postpay", 1_000_000, "RUB", 30)),
    )
    assert (pre.code, post.code) == ("ok", "ok")
    (inv,) = io.wait(io.send(client, RequestInvoice(150_000, "RUB", "")))
    assert (inv.status, inv.code) == ("APPLIED", "ok")
    assert inv.details["payment_link"].startswith("http")
    assert inv.details["amount_minor"] == "150000" and inv.details["payer_id"] == "legal"
    (credit,) = io.wait(io.send(client, TransferCredit(400_000, "RUB")))
    assert (credit.status, credit.code, credit.available_minor) == ("APPLIED", "ok", 400_000)
    (over,) = io.wait(io.send(client, TransferCredit(700_000, "RUB")))
    assert (over.status, over.code, over.details["limit_left_minor"]) == (
        "REJECTED",
        "credit_limit_exceeded",
        "600000",
    )
    assert over.available_minor == 400_000
    (charge,) = io.wait(io.send(client, Charge("listing", 100_000, "RUB")))
    assert (charge.code, charge.available_minor) == ("ok", 300_000)
    dumped = _dump(emulator, balance_id)
    assert len(dumped["PERSON_IDS"]) == 2 and len(dumped["CONTRACT_IDS"]) == 2
    assert len(dumped["INVOICE_IDS"]) == 2 and len(dumped["ORDERS"]) == 1
    # The ledger kept the mapping for reads, and the credit as a double entry.
    with psycopg.connect(gw_settings.database_url) as conn:
        row = conn.execute(
            "SELECT balance_client_id, payers, contracts FROM balance_accounts"
            " WHERE tenant = %s AND client_id = %s",
            (TENANT, client),
        ).fetchone()
        assert row[0] == balance_id and set(row[1]) == {ph.command_id, "legal"}
        assert set(row[2]) == {"pre", "post"}
        invoices = conn.execute(
            "SELECT kind, status, amount_minor FROM balance_invoices WHERE tenant = %s"
            " AND client_id = %s ORDER BY created_at",
            (TENANT, client),
        ).fetchall()
        assert invoices == [("prepay", "unpaid", 150_000), ("credit", "credited", 400_000)]
        credit_sum = conn.execute(
            "SELECT sum(amount_minor) FROM transfers WHERE tenant = %s AND client_id = %s"
            " AND source = %s",
            (TENANT, client, f"t:{TENANT}:credit"),
        ).fetchone()[0]
        assert credit_sum == 400_000
    # The read API and the CLI show the same.
    _check_reads(gw_settings, client, balance_id, inv)


def _check_reads(settings, client: str, balance_id: int, invoice: Result) -> None:
    from fastapi.testclient import TestClient

    from billy_core import reads
    from billy_core.api.app import create_app

    api_settings = settings.model_copy(update={"api_tokens": {"t0ken": TENANT}})
    engine = reads.create_engine_for(api_settings, pool_size=1)
    try:
        http = TestClient(create_app(api_settings, engine))
        got = http.get(
            f"/v1/{TENANT}/clients/{client}/balance", headers={"Authorization": "Bearer t0ken"}
        )
        assert got.status_code == 200, got.text
        view = got.json()
        assert (view["status"], view["balance_client_id"]) == ("registered", balance_id)
        assert {p["payer_id"] for p in view["payers"]} >= {"legal"}
        assert {c["contract_id"] for c in view["contracts"]} == {"pre", "post"}
        prepay = view["invoices"][0]
        assert prepay["invoice_id"] == int(invoice.details["invoice_id"])
        assert prepay["payment_link"] == invoice.details["payment_link"]
        assert prepay["status"] == "unpaid"
        missing = http.get(
            f"/v1/{TENANT}/clients/nobody/balance", headers={"Authorization": "Bearer t0ken"}
        )
        assert missing.status_code == 404
    finally:
        engine.dispose()


def test_balance_validation_errors_are_readable_rejections(io, emulator):
    client = _client()
    _register(io, client)
    bad_inn = {**UR, "inn": "1234567890"}
    missing = {k: v for k, v in UR.items() if k != "kpp"}
    (inn, miss, no_payer, no_contract) = io.wait(
        io.send(client, UpsertPayer(None, "ur", bad_inn)),
        io.send(client, UpsertPayer(None, "ur", missing)),
        io.send(client, RequestInvoice(1000, "RUB", "nobody")),
        io.send(client, TransferCredit(1000, "RUB")),
    )
    assert (inn.status, inn.code, inn.details["balance_code"]) == (
        "REJECTED", "balance_error", "INVALID_INN"
    )  # fmt: skip
    assert (miss.code, miss.details["balance_code"]) == (
        "balance_error", "MISSING_MANDATORY_PERSON_FIELD"
    )  # fmt: skip
    assert "kpp" in miss.message
    assert no_payer.code == "payer_not_found"
    assert no_contract.code == "contract_not_found"


def test_unclear_creates_make_one_object_each(io, emulator):
    """Every creating call times out AFTER Balance did the work, once each: the gateway
    finds out what happened and never creates a second client, person or invoice."""
    client = _client()
    emulator.control.TestBalance.SetFaults(
        {
            "timeout_after_share": 1,
            "only_methods": ["CreateClient", "CreatePerson", "CreateRequest2", "CreateInvoice"],
            "limit": 4,
        }
    )
    try:
        r = _register(io, client)
        (p,) = io.wait(io.send(client, UpsertPayer(None, "ph", PH)))
        (inv,) = io.wait(io.send(client, RequestInvoice(5_000, "RUB", "")))
    finally:
        emulator.control.TestBalance.SetFaults({})
    assert (p.code, inv.code) == ("ok", "ok")
    dumped = _dump(emulator, int(r.details["balance_client_id"]))
    assert len(dumped["PERSON_IDS"]) == 1
    assert len(dumped["REQUEST_IDS"]) == 1 and len(dumped["INVOICE_IDS"]) == 1
    assert int(inv.details["invoice_id"]) in dumped["INVOICE_IDS"]
    assert emulator.control.TestBalance.Stats()["faults_injected"]["timeout_after"] == 4


def test_failing_calls_are_retried(io, emulator):
    client = _client()
    emulator.control.TestBalance.SetFaults({"fail_share": 1, "limit": 3})
    try:
        r = _register(io, client)
    finally:
        emulator.control.TestBalance.SetFaults({})
    _dump(emulator, int(r.details["balance_client_id"]))


def test_balance_down_then_back(io, emulator):
    """Balance unreachable: the request waits (backoff) and is answered once it is back."""
    client = _client()
    emulator.stop()
    try:
        command_id = io.send(client, RegisterClient("Later", f"{client}@example.ru"))
        time.sleep(3)
        assert io.all_for(command_id) == []
    finally:
        emulator.restart()
    (r,) = io.wait(command_id, timeout_s=90)
    assert r.details["balance_status"] == "registered"
