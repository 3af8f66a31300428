"""Persons: ph and ur with their mandatory fields, INN checks, WRONG_EMAIL, updates and
PERSON_TYPE_MISMATCH, GetClientPersons' shape."""

from __future__ import annotations

import xml.etree.ElementTree as ET
import xmlrpc.client

import pytest

from tests.emulator.conftest import PH_PERSON, UID, UR_PERSON, fault_code, make_client


def test_create_person_without_person_id_creates_a_new_one_every_call(balance):
    client_id = make_client(balance)
    first = balance.Balance2.CreatePerson(UID, {"client_id": client_id, **PH_PERSON})
    second = balance.Balance2.CreatePerson(UID, {"client_id": client_id, **PH_PERSON})
    assert isinstance(first, int) and first != second
    assert len(balance.Balance2.GetClientPersons(client_id)) == 2


@pytest.mark.parametrize("kind, fields", [("ph", PH_PERSON), ("ur", UR_PERSON)])
def test_every_mandatory_field_is_named_when_missing(balance, kind, fields):
    client_id = make_client(balance)
    for name in fields:
        if name == "type":
            continue
        incomplete = {k: v for k, v in fields.items() if k != name}
        with pytest.raises(xmlrpc.client.Fault) as caught:
            balance.Balance2.CreatePerson(UID, {"client_id": client_id, **incomplete})
        document = ET.fromstring(caught.value.faultString)
        assert document.findtext("code") == "MISSING_MANDATORY_PERSON_FIELD", name
        assert document.findtext("field-name") == name
        assert name in document.findtext("msg")
    assert balance.Balance2.GetClientPersons(client_id) == []


@pytest.mark.parametrize(
    "inn", ["7736207544", "12345", "77362075431", "abcdefghij", "500100732258"]
)
def test_invalid_inn(balance, inn):
    client_id = make_client(balance)
    with pytest.raises(xmlrpc.client.Fault) as caught:
        balance.Balance2.CreatePerson(UID, {"client_id": client_id, **UR_PERSON, "inn": inn})
    assert fault_code(caught.value) == "INVALID_INN"


def test_twelve_digit_inn_is_valid_for_ur_and_ph(balance):
    client_id = make_client(balance)
    balance.Balance2.CreatePerson(UID, {"client_id": client_id, **UR_PERSON, "inn": "500100732259"})
    balance.Balance2.CreatePerson(UID, {"client_id": client_id, **PH_PERSON, "inn": "500100732259"})
    with pytest.raises(xmlrpc.client.Fault) as caught:  # 10 digits is for legal entities
        balance.Balance2.CreatePerson(
            UID, {"client_id": client_id, **PH_PERSON, "inn": "7736207543"}
        )
    assert fault_code(caught.value) == "INVALID_INN"


def test_wrong_email(balance):
    client_id = make_client(balance)
    with pytest.raises(xmlrpc.client.Fault) as caught:
        balance.Balance2.CreatePerson(UID, {"client_id": client_id, **PH_PERSON, "email": "x@"})
    assert fault_code(caught.value) == "WRONG_EMAIL"


def test_update_keeps_id_and_merges_fields_and_refuses_a_type_change(balance):
    client_id = make_client(balance)
    person_id = balance.Balance2.CreatePerson(UID, {"client_id": client_id, **PH_PERSON})
    same = balance.Balance2.CreatePerson(
        UID, {"client_id": client_id, "type": "ph", "person_id": person_id, "fname": "Petr"}
    )
    assert same == person_id
    (person,) = balance.Balance2.GetClientPersons(client_id)
    assert person["FNAME"] == "Petr" and person["LNAME"] == "Ivanov"
    with pytest.raises(xmlrpc.client.Fault) as caught:
        balance.Balance2.CreatePerson(
            UID, {"client_id": client_id, **UR_PERSON, "person_id": person_id}
        )
    assert fault_code(caught.value) == "PERSON_TYPE_MISMATCH"
    other = make_client(balance)
    with pytest.raises(xmlrpc.client.Fault) as caught:
        balance.Balance2.CreatePerson(
            UID, {"client_id": other, **PH_PERSON, "person_id": person_id}
        )
    assert fault_code(caught.value) == "CLIENT_ID_MISMATCH"
    with pytest.raises(xmlrpc.client.Fault) as caught:
        balance.Balance2.CreatePerson(UID, {"client_id": client_id, **PH_PERSON, "person_id": 7})
    assert fault_code(caught.value) == "PERSON_NOT_FOUND"


def test_get_client_persons_shape(balance):
    client_id = make_client(balance)
    person_id = balance.Balance2.CreatePerson(UID, {"client_id": client_id, **UR_PERSON})
    (person,) = balance.Balance2.GetClientPersons(client_id)
    assert person["ID"] == str(person_id)
    assert person["CLIENT_ID"] == str(client_id)
    assert person["TYPE"] == "ur"
    assert person["NAME"] == "Acme LLC"
    assert person["EMAIL"] == "office@acme.ru"
    assert person["INN"] == "7736207543"
    assert all(isinstance(v, str) for v in person.values())


def test_unknown_client_and_bad_type(balance):
    with pytest.raises(xmlrpc.client.Fault) as caught:
        balance.Balance2.CreatePerson(UID, {"client_id": 5, **PH_PERSON})
    assert fault_code(caught.value) == "CLIENT_NOT_FOUND"
    client_id = make_client(balance)
    with pytest.raises(xmlrpc.client.Fault) as caught:
        balance.Balance2.CreatePerson(UID, {"client_id": client_id, **PH_PERSON, "type": "yt"})
    assert fault_code(caught.value) == "INVALID_PARAM"
