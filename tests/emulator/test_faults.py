"""Fault switches: latency, failing calls, timeouts before and after the work (drop and
hang), method filter, limit, seed; never applied to TestBalance."""

from __future__ import annotations

import http.client
import time
import xmlrpc.client

import pytest

from tests.emulator.conftest import UID, fault_code, make_client, make_order, make_person
from tests.emulator.test_invoices import BANK_PH, request

NO_ANSWER = (ConnectionError, http.client.HTTPException)


def clients(emulator) -> int:
    return emulator.control.TestBalance.Stats()["clients"]


def test_set_faults_validates_and_round_trips(emulator):
    control = emulator.control.TestBalance
    for bad in (
        {"bogus": 1},
        {"fail_share": 2},
        {"fail_share": "0.6", "timeout_after_share": "0.6"},
        {"timeout_mode": "explode"},
        {"fail_code": "NOPE"},
        {"latency_ms": -1},
        {"only_methods": "CreateClient"},
    ):
        with pytest.raises(xmlrpc.client.Fault) as caught:
            control.SetFaults(bad)
        assert fault_code(caught.value) == "INVALID_PARAM", bad
    switches = control.SetFaults(
        {"fail_share": "0.25", "seed": 7, "only_methods": ["Balance2.CreateClient"]}
    )
    assert switches["fail_share"] == 0.25 and switches["only_methods"] == ["CreateClient"]
    assert control.GetFaults() == switches
    assert control.SetFaults(control.GetFaults()) == switches  # round trip
    assert control.SetFaults({})["fail_share"] == 0  # replaces everything


def test_latency_applies_to_balance_calls_only(balance, emulator):
    emulator.control.TestBalance.SetFaults({"latency_ms": 400})
    started = time.monotonic()
    balance.Balance2.FindClient({"ClientID": 1})
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    emulator.control.TestBalance.Stats()
    assert time.monotonic() - started < 0.4


def test_fail_share_answers_a_fault_and_does_nothing(balance, emulator):
    before = clients(emulator)
    emulator.control.TestBalance.SetFaults({"fail_share": 1, "fail_code": "PERMISSION_DENIED"})
    with pytest.raises(xmlrpc.client.Fault) as caught:
        balance.Balance2.CreateClient(UID, {"NAME": "Never"})
    assert caught.value.faultCode == -1 and fault_code(caught.value) == "PERMISSION_DENIED"
    assert "<method>Balance2.CreateClient</method>" in caught.value.faultString
    assert emulator.control.TestBalance.Ping()["status"] == "ok"  # control is never faulted
    emulator.control.TestBalance.SetFaults({})
    assert clients(emulator) == before
    assert emulator.control.TestBalance.Stats()["faults_injected"]["fail"] >= 1


def test_timeout_before_work_drops_the_connection_and_does_nothing(balance, emulator):
    before = clients(emulator)
    emulator.control.TestBalance.SetFaults({"timeout_before_share": 1})
    with pytest.raises(NO_ANSWER):
        balance.Balance2.CreateClient(UID, {"NAME": "Lost before", "EMAIL": "lb@x.ru"})
    emulator.control.TestBalance.SetFaults({})
    assert clients(emulator) == before
    assert balance.Balance2.FindClient({"Email": "lb@x.ru"}) == [0, 0, []]


def test_timeout_after_work_commits_and_drops_the_connection(balance, emulator):
    before = clients(emulator)
    emulator.control.TestBalance.SetFaults({"timeout_after_share": 1})
    started = time.monotonic()
    with pytest.raises(NO_ANSWER):
        balance.Balance2.CreateClient(UID, {"NAME": "Done after", "EMAIL": "da@x.ru"})
    assert time.monotonic() - started < 2  # "drop" answers nothing at once
    emulator.control.TestBalance.SetFaults({})
    assert clients(emulator) == before + 1  # exactly one: the call was not repeated
    found = balance.Balance2.FindClient({"Email": "da@x.ru"})[2]
    assert [c["NAME"] for c in found] == ["Done after"]


def test_timeout_after_work_in_hang_mode_holds_the_connection(emulator):
    before = clients(emulator)
    emulator.control.TestBalance.SetFaults(
        {"timeout_after_share": 1, "timeout_mode": "hang", "hang_s": 1.5}
    )
    impatient = emulator.proxy(timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        impatient.Balance2.CreateClient(UID, {"NAME": "Hung", "EMAIL": "hung@x.ru"})
    assert 0.4 <= time.monotonic() - started < 1.5
    emulator.control.TestBalance.SetFaults({})
    assert clients(emulator) == before + 1
    patient = emulator.proxy(timeout_s=5)
    emulator.control.TestBalance.SetFaults(
        {"timeout_before_share": 1, "timeout_mode": "hang", "hang_s": 0.3}
    )
    started = time.monotonic()
    with pytest.raises(NO_ANSWER):  # held, then closed without an answer
        patient.Balance2.CreateClient(UID, {"NAME": "Hung before"})
    assert time.monotonic() - started >= 0.3
    emulator.control.TestBalance.SetFaults({})
    assert clients(emulator) == before + 1


def test_timeout_after_create_invoice_leaves_an_invoice_to_find(balance, emulator):
    client_id = make_client(balance)
    order_id = make_order(balance, client_id)
    person_id = make_person(balance, client_id)
    request_id = request(balance, client_id, order_id, 500)["RequestID"]
    emulator.control.TestBalance.SetFaults(
        {"timeout_after_share": 1, "only_methods": ["CreateInvoice"]}
    )
    assert balance.Balance2.GetClientRequests({"ClientID": client_id})  # not faulted
    with pytest.raises(NO_ANSWER):
        balance.Balance2.CreateInvoice(
            UID, {"RequestID": request_id, "PaysysID": BANK_PH, "PersonID": person_id}
        )
    emulator.control.TestBalance.SetFaults({})
    (invoice,) = balance.Balance2.GetClientInvoices(
        {"ClientID": client_id, "RequestID": request_id}
    )
    assert invoice["TOTAL_SUM"] == "500.00"


def test_limit_disarms_after_that_many_faults(balance, emulator):
    emulator.control.TestBalance.SetFaults({"fail_share": 1, "limit": 2})
    for _ in range(2):
        with pytest.raises(xmlrpc.client.Fault):
            balance.Balance2.FindClient({"ClientID": 1})
    assert balance.Balance2.FindClient({"ClientID": 1}) == [0, 0, []]


def test_seed_makes_the_same_decisions(balance, emulator):
    def pattern() -> list[bool]:
        emulator.control.TestBalance.SetFaults({"fail_share": "0.5", "seed": 42})
        outcomes = []
        for _ in range(24):
            try:
                balance.Balance2.FindClient({"ClientID": 1})
                outcomes.append(True)
            except xmlrpc.client.Fault:
                outcomes.append(False)
        return outcomes

    first = pattern()
    assert first == pattern()
    assert 3 <= first.count(False) <= 21  # about half
