"""Requests and invoices: CreateRequest2 / CreateInvoice make a new object every call,
PayInvoice puts money on the order, credit invoices spend the limit and are refused above
it, and the listings show what an unclear call did."""

from __future__ import annotations

import urllib.request
import xmlrpc.client

import pytest

from tests.emulator.conftest import (
    MONEY_PRODUCT,
    SERVICE_ID,
    UID,
    fault_code,
    make_client,
    make_order,
    make_person,
)
from tests.emulator.test_contracts import contract_params

BANK_PH, BANK_UR = 1001, 1003


def order_key(order_id: int) -> dict:
    return {"ServiceID": SERVICE_ID, "ServiceOrderID": order_id}


def info(balance, order_id: int) -> dict:
    (answer,) = balance.Balance2.GetOrdersInfo([order_key(order_id)])
    return answer


def request(balance, client_id: int, order_id: int, qty: object) -> dict:
    return balance.Balance2.CreateRequest2(UID, client_id, [{**order_key(order_id), "Qty": qty}])


def test_create_request2_makes_a_new_request_every_call(balance):
    client_id = make_client(balance)
    order_id = make_order(balance, client_id)
    first = request(balance, client_id, order_id, "6000")
    second = request(balance, client_id, order_id, "6000")
    assert set(first) == {"RequestID", "UserPath", "AdminPath"}
    assert first["RequestID"] != second["RequestID"]
    assert str(first["RequestID"]) in first["UserPath"]
    with urllib.request.urlopen(first["UserPath"], timeout=5) as page:  # noqa: S310
        assert b"6000.00" in page.read()
    listed = balance.Balance2.GetClientRequests({"ClientID": client_id, **order_key(order_id)})
    assert [r["RequestID"] for r in listed] == [first["RequestID"], second["RequestID"]]
    assert listed[0]["TotalSum"] == "6000.00"
    assert listed[0]["Rows"] == [{**order_key(order_id), "Qty": "6000", "Sum": "6000.00"}]
    assert listed[0]["InvoiceIDs"] == []


def test_request_refusals(balance):
    client_id, other = make_client(balance), make_client(balance)
    order_id = make_order(balance, client_id)
    with pytest.raises(xmlrpc.client.Fault) as caught:
        request(balance, other, order_id, "10")
    assert fault_code(caught.value) == "CLIENT_ID_MISMATCH"
    with pytest.raises(xmlrpc.client.Fault) as caught:
        request(balance, client_id, 999_999_998, "10")
    assert fault_code(caught.value) == "ORDERS_NOT_SYNCHRONIZED"
    for bad_qty in ("0", "-5", "1e3", 2.5):
        with pytest.raises(xmlrpc.client.Fault) as caught:
            request(balance, client_id, order_id, bad_qty)
        assert fault_code(caught.value) == "INVALID_PARAM", bad_qty


def test_prepay_invoice_then_payment_puts_money_on_the_order(balance, emulator):
    client_id = make_client(balance)
    order_id = make_order(balance, client_id)
    person_id = make_person(balance, client_id)
    request_id = request(balance, client_id, order_id, 6000)["RequestID"]
    first = balance.Balance2.CreateInvoice(
        UID, {"RequestID": request_id, "PaysysID": BANK_PH, "PersonID": person_id, "Credit": 0}
    )
    second = balance.Balance2.CreateInvoice(
        UID, {"RequestID": request_id, "PaysysID": BANK_PH, "PersonID": person_id}
    )
    assert isinstance(first, int) and first != second  # not idempotent
    assert info(balance, order_id)["consume_sum"] == "0.00"  # nothing until paid
    paid = emulator.control.TestBalance.PayInvoice(first, "2500.50")
    assert paid["ReceiptSum"] == "2500.50" and paid["Status"] == "partly_paid"
    assert info(balance, order_id)["consume_sum"] == "2500.50"
    paid = emulator.control.TestBalance.PayInvoice(first)  # the rest
    assert paid == {
        "InvoiceID": first,
        "Paid": "3499.50",
        "TotalSum": "6000.00",
        "ReceiptSum": "6000.00",
        "Status": "paid",
        "Credit": 0,
    }
    order = info(balance, order_id)
    assert order["consume_sum"] == "6000.00" and order["consume_qty"] == "6000"
    invoices = balance.Balance2.GetClientInvoices({"ClientID": client_id, "RequestID": request_id})
    assert [i["ID"] for i in invoices] == [first, second]
    assert invoices[0]["STATUS"] == "paid" and invoices[1]["STATUS"] == "unpaid"
    assert invoices[0]["TOTAL_SUM"] == "6000.00" and invoices[0]["CURRENCY"] == "RUR"
    assert invoices[0]["ROWS"] == [{**order_key(order_id), "Qty": "6000", "Sum": "6000.00"}]
    by_order = balance.Balance2.GetClientInvoices({"ClientID": client_id, **order_key(order_id)})
    assert [i["ID"] for i in by_order] == [first, second]
    listed = balance.Balance2.GetClientRequests({"ClientID": client_id})
    assert listed[0]["InvoiceIDs"] == [first, second]


def test_invoice_refusals(balance):
    client_id = make_client(balance)
    order_id = make_order(balance, client_id)
    person_id = make_person(balance, client_id)
    request_id = request(balance, client_id, order_id, 100)["RequestID"]
    cases = [
        ({"RequestID": 40000000, "PaysysID": BANK_PH, "PersonID": person_id}, "REQUEST_NOT_FOUND"),
        ({"RequestID": request_id, "PaysysID": BANK_PH, "PersonID": 1}, "PERSON_NOT_FOUND"),
        ({"RequestID": request_id, "PaysysID": BANK_UR, "PersonID": person_id}, "INVALID_PARAM"),
        ({"RequestID": request_id, "PaysysID": 5, "PersonID": person_id}, "INVALID_PARAM"),
        (
            {"RequestID": request_id, "PaysysID": BANK_PH, "PersonID": person_id, "Credit": 1},
            "CONTRACT_RULE_VIOLATION",
        ),
        (
            {"RequestID": request_id, "PaysysID": BANK_PH, "PersonID": person_id, "Overdraft": 1},
            "CONTRACT_RULE_VIOLATION",
        ),
    ]
    for params, code in cases:
        with pytest.raises(xmlrpc.client.Fault) as caught:
            balance.Balance2.CreateInvoice(UID, params)
        assert fault_code(caught.value) == code, params
    assert balance.Balance2.GetClientInvoices({"ClientID": client_id}) == []


def _postpay(balance, limit: str = "10000.00"):
    client_id = make_client(balance)
    order_id = make_order(balance, client_id)
    person_id = make_person(balance, client_id, "ur")
    contract_id = balance.Balance2.CreateCommonContract(
        UID, contract_params(client_id, person_id, credit_limit_single=limit)
    )["ID"]
    return client_id, order_id, person_id, contract_id


def credit_invoice(balance, client_id, order_id, person_id, contract_id, amount):
    request_id = request(balance, client_id, order_id, amount)["RequestID"]
    return balance.Balance2.CreateInvoice(
        UID,
        {
            "RequestID": request_id,
            "PaysysID": BANK_UR,
            "PersonID": person_id,
            "ContractID": contract_id,
            "Credit": 1,
        },
    )


def test_credit_invoice_credits_the_order_at_once_and_spends_the_limit(balance, emulator):
    client_id, order_id, person_id, contract_id = _postpay(balance)
    credit_invoice(balance, client_id, order_id, person_id, contract_id, "4000.00")
    assert info(balance, order_id)["consume_sum"] == "4000.00"
    (limit,) = balance.Balance2.GetClientCreditLimits(client_id, MONEY_PRODUCT)["LIMITS"]
    assert limit == {
        "CONTRACT_ID": contract_id,
        "LIMIT_TOTAL": "10000.00",
        "LIMIT_SPENT": "4000.00",
    }
    invoice_id = credit_invoice(balance, client_id, order_id, person_id, contract_id, "6000.00")
    assert info(balance, order_id)["consume_sum"] == "10000.00"
    # Above what is left of the limit: refused, nothing changes.
    with pytest.raises(xmlrpc.client.Fault) as caught:
        credit_invoice(balance, client_id, order_id, person_id, contract_id, "0.01")
    assert fault_code(caught.value) == "CONTRACT_RULE_VIOLATION"
    assert info(balance, order_id)["consume_sum"] == "10000.00"
    (invoice,) = [
        i
        for i in balance.Balance2.GetClientInvoices({"ClientID": client_id})
        if i["ID"] == invoice_id
    ]
    assert invoice["CREDIT"] == 1 and invoice["CONTRACT_ID"] == contract_id
    # The client pays its bill: the limit is free again, the order keeps its money.
    emulator.control.TestBalance.PayInvoice(invoice_id)
    (limit,) = balance.Balance2.GetClientCreditLimits(client_id, MONEY_PRODUCT)["LIMITS"]
    assert limit["LIMIT_SPENT"] == "4000.00"
    assert info(balance, order_id)["consume_sum"] == "10000.00"


def test_credit_needs_a_signed_postpay_contract_of_the_same_person(balance):
    client_id, order_id, person_id, contract_id = _postpay(balance)
    other_person = make_person(balance, client_id, "ur")
    request_id = request(balance, client_id, order_id, 10)["RequestID"]
    with pytest.raises(xmlrpc.client.Fault) as caught:
        balance.Balance2.CreateInvoice(
            UID,
            {
                "RequestID": request_id,
                "PaysysID": BANK_UR,
                "PersonID": other_person,
                "ContractID": contract_id,
                "Credit": 1,
            },
        )
    assert fault_code(caught.value) == "CONTRACT_RULE_VIOLATION"
    unsigned = balance.Balance2.CreateCommonContract(
        UID, contract_params(client_id, person_id, signed=0)
    )["ID"]
    with pytest.raises(xmlrpc.client.Fault) as caught:
        credit_invoice(balance, client_id, order_id, person_id, unsigned, 10)
    assert fault_code(caught.value) == "CONTRACT_RULE_VIOLATION"
    prepay = balance.Balance2.CreateOffer(
        UID,
        contract_params(
            client_id, person_id, payment_type=2, payment_term=None, credit_limit_single=None
        ),
    )["ID"]
    with pytest.raises(xmlrpc.client.Fault) as caught:
        credit_invoice(balance, client_id, order_id, person_id, prepay, 10)
    assert fault_code(caught.value) == "CONTRACT_RULE_VIOLATION"


def test_pay_unknown_invoice(emulator):
    with pytest.raises(xmlrpc.client.Fault) as caught:
        emulator.control.TestBalance.PayInvoice(50000000, "1.00")
    assert fault_code(caught.value) == "INVOICE_NOT_FOUND"


def test_product_with_another_price(balance, emulator):
    emulator.control.TestBalance.AddProduct(
        {"ID": 777001, "Name": "Banner day", "Unit": "day", "Price": "150.00", "NDS": "22"}
    )
    client_id = make_client(balance)
    order_id = make_order(balance, client_id, product_id=777001)
    person_id = make_person(balance, client_id)
    request_id = request(balance, client_id, order_id, 3)["RequestID"]
    invoice_id = balance.Balance2.CreateInvoice(
        UID, {"RequestID": request_id, "PaysysID": BANK_PH, "PersonID": person_id}
    )
    emulator.control.TestBalance.PayInvoice(invoice_id)
    order = info(balance, order_id)
    assert order["consume_sum"] == "450.00" and order["consume_qty"] == "3"
    assert balance.Balance2.GetClientCreditLimits(client_id, 777001)["PRODUCT_PRICE"] == "150.00"
