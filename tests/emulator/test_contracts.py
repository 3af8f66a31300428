"""Contracts: CreateOffer / CreateCommonContract, prepay and postpay rules,
GetClientContracts' shape, GetClientCreditLimits."""

from __future__ import annotations

import xmlrpc.client

import pytest

from tests.emulator.conftest import (
    MONEY_PRODUCT,
    SERVICE_ID,
    UID,
    fault_code,
    make_client,
    make_person,
)


def contract_params(client: int, person: int, **overrides) -> dict:
    params = {
        "client_id": client,
        "person_id": person,
        "currency": "RUR",
        "firm_id": 1,
        "services": [SERVICE_ID],
        "payment_type": 3,
        "payment_term": 15,
        "credit_limit_single": "50000.00",
        "start_dt": "2026-01-01",
        "signed": 1,
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def test_postpay_contract_and_its_credit_limit(balance):
    client_id = make_client(balance)
    person_id = make_person(balance, client_id, "ur")
    answer = balance.Balance2.CreateCommonContract(UID, contract_params(client_id, person_id))
    assert set(answer) == {"ID", "EXTERNAL_ID"}
    assert isinstance(answer["ID"], int) and answer["EXTERNAL_ID"]
    (contract,) = balance.Balance2.GetClientContracts({"ClientID": client_id})
    assert contract["ID"] == answer["ID"]
    assert contract["EXTERNAL_ID"] == answer["EXTERNAL_ID"]
    assert contract["PAYMENT_TYPE"] == 3
    assert contract["CURRENCY"] == "RUR"
    assert contract["PERSON_ID"] == person_id
    assert contract["SERVICES"] == [SERVICE_ID]
    assert contract["IS_ACTIVE"] == 1 and contract["IS_SIGNED"] == 1
    assert isinstance(contract["DT"], xmlrpc.client.DateTime)
    assert contract["DT"].value.startswith("20260101")
    assert contract["FINISH_DT"] is None
    limits = balance.Balance2.GetClientCreditLimits(client_id, MONEY_PRODUCT)
    assert limits == {
        "CURRENCY": "RUR",
        "LIMITS": [{"CONTRACT_ID": answer["ID"], "LIMIT_TOTAL": "50000.00", "LIMIT_SPENT": "0.00"}],
        "PRODUCT_PRICE": "1.00",
    }


def test_prepay_offer_has_no_credit_limit(balance):
    client_id = make_client(balance)
    person_id = make_person(balance, client_id)
    answer = balance.Balance2.CreateOffer(
        UID,
        contract_params(
            client_id, person_id, payment_type=2, payment_term=None, credit_limit_single=None
        ),
    )
    (contract,) = balance.Balance2.GetClientContracts({"ClientID": client_id})
    assert contract["ID"] == answer["ID"] and contract["PAYMENT_TYPE"] == 2
    assert balance.Balance2.GetClientCreditLimits(client_id, MONEY_PRODUCT)["LIMITS"] == []


def test_every_call_makes_a_new_contract(balance):
    client_id = make_client(balance)
    person_id = make_person(balance, client_id, "ur")
    first = balance.Balance2.CreateCommonContract(UID, contract_params(client_id, person_id))
    second = balance.Balance2.CreateCommonContract(UID, contract_params(client_id, person_id))
    assert first["ID"] != second["ID"]
    assert len(balance.Balance2.GetClientContracts({"ClientID": client_id})) == 2


@pytest.mark.parametrize(
    "overrides, code",
    [
        ({"payment_term": None}, "INVALID_PARAM"),  # postpay needs a payment term
        ({"payment_type": 1}, "INVALID_PARAM"),
        ({"currency": "USD"}, "INVALID_PARAM"),
        ({"services": []}, "INVALID_PARAM"),
        ({"credit_limit_single": 100.5}, "INVALID_PARAM"),  # a float is never money
        ({"payment_type": 2, "payment_term": None}, "INVALID_PARAM"),  # limit on prepay
        ({"person_id": 20000000}, "PERSON_NOT_FOUND"),
    ],
)
def test_contract_refusals(balance, overrides, code):
    client_id = make_client(balance)
    person_id = make_person(balance, client_id, "ur")
    with pytest.raises(xmlrpc.client.Fault) as caught:
        balance.Balance2.CreateCommonContract(
            UID, contract_params(client_id, person_id, **overrides)
        )
    assert fault_code(caught.value) == code
    assert balance.Balance2.GetClientContracts({"ClientID": client_id}) == []


def test_person_of_another_client_is_refused(balance):
    client_id, other = make_client(balance), make_client(balance)
    person_id = make_person(balance, other, "ur")
    with pytest.raises(xmlrpc.client.Fault) as caught:
        balance.Balance2.CreateCommonContract(UID, contract_params(client_id, person_id))
    assert fault_code(caught.value) == "CLIENT_ID_MISMATCH"


def test_contract_not_started_is_inactive_and_has_no_limit(balance):
    client_id = make_client(balance)
    person_id = make_person(balance, client_id, "ur")
    balance.Balance2.CreateCommonContract(
        UID, contract_params(client_id, person_id, start_dt="2099-01-01")
    )
    (contract,) = balance.Balance2.GetClientContracts({"ClientID": client_id})
    assert contract["IS_ACTIVE"] == 0
    assert balance.Balance2.GetClientCreditLimits(client_id, MONEY_PRODUCT)["LIMITS"] == []


def test_unknown_product_in_credit_limits(balance):
    client_id = make_client(balance)
    with pytest.raises(xmlrpc.client.Fault) as caught:
        balance.Balance2.GetClientCreditLimits(client_id, 1)
    assert fault_code(caught.value) == "PRODUCT_NOT_FOUND"
