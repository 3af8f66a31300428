"""Consumption and acts: UpdateCampaigns takes cumulative totals and refuses a future dt;
CloseMonth makes acts from them, dated the month's last day, once per month;
GetClientActs' shape."""

from __future__ import annotations

import datetime as dt
import xmlrpc.client

import pytest

from tests.emulator.conftest import (
    SERVICE_ID,
    UID,
    fault_code,
    make_client,
    make_order,
    make_person,
)
from tests.emulator.test_invoices import BANK_PH, _postpay, credit_invoice, info, request

MSK = dt.timezone(dt.timedelta(hours=3))


def report(balance, order_id: int, when: str, money: object) -> dict:
    return balance.Balance2.UpdateCampaigns(
        [
            {
                "ServiceID": SERVICE_ID,
                "ServiceOrderID": order_id,
                "dt": when,
                "stop": 0,
                "Money": money,
            }
        ]
    )


def paid_order(balance, emulator, amount: str = "1000.00") -> tuple[int, int]:
    client_id = make_client(balance)
    order_id = make_order(balance, client_id)
    person_id = make_person(balance, client_id)
    request_id = request(balance, client_id, order_id, amount)["RequestID"]
    invoice_id = balance.Balance2.CreateInvoice(
        UID, {"RequestID": request_id, "PaysysID": BANK_PH, "PersonID": person_id}
    )
    emulator.control.TestBalance.PayInvoice(invoice_id)
    return client_id, order_id


def test_update_campaigns_takes_cumulative_totals_and_refuses_the_future(balance, emulator):
    client_id, order_id = paid_order(balance, emulator)
    assert report(balance, order_id, "2026-09-10 12:00:00", "100.00") == {
        str(SERVICE_ID): {str(order_id): 1}
    }
    assert report(balance, order_id, "2026-09-11 12:00:00", 250) == {
        str(SERVICE_ID): {str(order_id): 1}
    }
    assert info(balance, order_id)["completion_qty"] == "250"  # a total, not 100 + 250
    report(balance, order_id, "2026-09-11 12:00:00", 250)  # the same total again
    assert info(balance, order_id)["completion_qty"] == "250"
    tomorrow = (dt.datetime.now(MSK) + dt.timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
    assert report(balance, order_id, tomorrow, 900) == {str(SERVICE_ID): {str(order_id): 0}}
    assert report(balance, 999_999_997, "2026-09-11", 1) == {str(SERVICE_ID): {"999999997": 0}}
    assert info(balance, order_id)["completion_qty"] == "250"
    # An XML-RPC dateTime works as well as a string.
    when = xmlrpc.client.DateTime(dt.datetime(2026, 9, 12, 8, 0, 0))
    assert report(balance, order_id, when, "260.50")[str(SERVICE_ID)][str(order_id)] == 1
    assert info(balance, order_id)["completion_qty"] == "260.5"


def test_update_campaigns_refuses_bad_items(balance):
    for item in (
        {"ServiceID": SERVICE_ID, "ServiceOrderID": 1, "stop": 0, "Money": 1},  # no dt
        {"ServiceID": SERVICE_ID, "ServiceOrderID": 1, "dt": "2026-01-01", "Money": 1.5},
        {"ServiceID": SERVICE_ID, "ServiceOrderID": 1, "dt": "yesterday", "Money": 1},
        {"service_id": SERVICE_ID, "ServiceOrderID": 1, "dt": "2026-01-01", "Money": 1},
    ):
        with pytest.raises(xmlrpc.client.Fault) as caught:
            balance.Balance2.UpdateCampaigns([item])
        assert fault_code(caught.value) == "INVALID_PARAM", item


def test_close_month_makes_acts_once_per_month(balance, emulator):
    emulator.control.TestBalance.Reset()
    client_id, order_id = paid_order(balance, emulator)
    report(balance, order_id, "2026-09-10", "100.00")
    report(balance, order_id, "2026-09-30 23:00:00", "300.00")
    report(balance, order_id, "2026-10-05", "500.00")
    september = emulator.control.TestBalance.CloseMonth("2026-09")
    assert september["Month"] == "2026-09" and september["Created"] is True
    assert len(september["ActIDs"]) == 1
    again = emulator.control.TestBalance.CloseMonth("2026-09")
    assert again == {**september, "Created": False}
    october = emulator.control.TestBalance.CloseMonth("2026-10")
    with pytest.raises(xmlrpc.client.Fault) as caught:
        emulator.control.TestBalance.CloseMonth("2026-08")  # a later month is closed
    assert fault_code(caught.value) == "INVALID_PARAM"
    acts = balance.Balance2.GetClientActs("service-token", {"ClientID": client_id})
    assert [a["ID"] for a in acts] == september["ActIDs"] + october["ActIDs"]
    first, second = acts
    assert first["DT"].value == "20260930T00:00:00"
    assert second["DT"].value == "20261031T00:00:00"
    assert (first["AMOUNT"], first["AMOUNT_NDS"], first["PAID_AMOUNT"]) == (
        "300.00",
        "54.10",  # 22% VAT inside 300.00
        "300.00",
    )
    assert second["AMOUNT"] == "200.00"  # 500 cumulative less the 300 billed in September
    assert first["ROWS"] == [
        {
            "SERVICE_ID": SERVICE_ID,
            "SERVICE_ORDER_ID": order_id,
            "PRODUCT_ID": 503162,
            "QTY": "300",
            "PRICE": "1.00",
            "AMOUNT": "300.00",
            "AMOUNT_NDS": "54.10",
        }
    ]
    assert first["EXTERNAL_ID"] and first["CURRENCY"] == "RUR"
    assert emulator.control.TestBalance.Stats()["closed_months"] == ["2026-09", "2026-10"]
    in_october = balance.Balance2.GetClientActs(
        "service-token", {"ClientID": client_id, "DateFrom": "2026-10-01"}
    )
    assert [a["ID"] for a in in_october] == october["ActIDs"]


def test_postpay_act_is_not_paid(balance, emulator):
    emulator.control.TestBalance.Reset()
    client_id, order_id, person_id, contract_id = _postpay(balance)
    credit_invoice(balance, client_id, order_id, person_id, contract_id, "1000.00")
    report(balance, order_id, "2026-10-20", "700.00")
    emulator.control.TestBalance.CloseMonth("2026-10")
    (act,) = balance.Balance2.GetClientActs("t", {"ClientID": client_id, "ContractID": contract_id})
    assert (act["AMOUNT"], act["PAID_AMOUNT"], act["CONTRACT_ID"]) == (
        "700.00",
        "0.00",
        contract_id,
    )


def test_month_close_refusals(emulator):
    for month in ("2026-13", "26-01", "2099-01", 202601):
        with pytest.raises(xmlrpc.client.Fault) as caught:
            emulator.control.TestBalance.CloseMonth(month)
        assert fault_code(caught.value) == "INVALID_PARAM", month
