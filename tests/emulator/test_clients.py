"""Clients: CreateClient's status array and non-idempotency, updates, the batch read,
FindClient's filters and its empty-filter fault, key casing, both prefixes."""

from __future__ import annotations

import xml.etree.ElementTree as ET
import xmlrpc.client

import pytest

from tests.emulator.conftest import UID, fault_code, make_client


def test_create_client_returns_status_array_and_creates_a_new_client_every_call(balance):
    first = balance.Balance2.CreateClient(UID, {"NAME": "Same", "EMAIL": "same@acme.ru"})
    second = balance.Balance2.CreateClient(UID, {"NAME": "Same", "EMAIL": "same@acme.ru"})
    assert first[:2] == [0, "SUCCESS"] and second[:2] == [0, "SUCCESS"]
    assert isinstance(first[2], int) and first[2] != second[2]


def test_create_client_with_client_id_updates_it(balance):
    client_id = make_client(balance, "Before")
    answer = balance.Balance2.CreateClient(
        UID, {"CLIENT_ID": client_id, "NAME": "After", "PHONE": "+7 1", "URL": "https://a.ru"}
    )
    assert answer == [0, "SUCCESS", client_id]
    code, clients = balance.Balance2.GetClientByIdBatch([client_id])
    assert code == 0
    (client,) = clients
    assert client["NAME"] == "After"
    assert client["EMAIL"] == "billing@acme.ru"  # kept: not in the update
    assert client["PHONE"] == "+7 1" and client["URL"] == "https://a.ru"


def test_client_struct_keys_are_upper_case(balance):
    client_id = make_client(balance)
    (client,) = balance.Balance2.GetClientByIdBatch([client_id])[1]
    assert {"CLIENT_ID", "NAME", "EMAIL", "PHONE", "CLIENT_TYPE_ID", "IS_AGENCY"} <= set(client)
    assert client["CLIENT_ID"] == client_id and client["IS_AGENCY"] == 0


def test_get_client_by_id_batch_leaves_unknown_ids_out(balance):
    client_id = make_client(balance)
    assert [c["CLIENT_ID"] for c in balance.Balance2.GetClientByIdBatch([client_id, 99])[1]] == [
        client_id
    ]


def test_unknown_client_update_is_client_not_found(balance):
    with pytest.raises(xmlrpc.client.Fault) as caught:
        balance.Balance2.CreateClient(UID, {"CLIENT_ID": 10, "NAME": "X"})
    assert fault_code(caught.value) == "CLIENT_NOT_FOUND"


def test_wrong_email_and_wrong_key_casing_are_faults(balance):
    with pytest.raises(xmlrpc.client.Fault) as caught:
        balance.Balance2.CreateClient(UID, {"NAME": "X", "EMAIL": "not-an-email"})
    assert fault_code(caught.value) == "WRONG_EMAIL"
    with pytest.raises(xmlrpc.client.Fault) as caught:
        balance.Balance2.CreateClient(UID, {"name": "X", "email": "x@x.ru"})
    assert fault_code(caught.value) == "INVALID_PARAM"
    assert "name" in caught.value.faultString


def test_fault_document_shape(balance):
    with pytest.raises(xmlrpc.client.Fault) as caught:
        balance.Balance2.FindClient({})
    fault = caught.value
    assert fault.faultCode == -1
    document = ET.fromstring(fault.faultString)
    assert document.tag == "error"
    assert [child.tag for child in document][-5:] == [
        "wo-rollback",
        "method",
        "code",
        "parent-codes",
        "contents",
    ]
    assert document.findtext("msg")
    assert document.findtext("wo-rollback") == "0"
    assert document.findtext("method") == "Balance2.FindClient"
    assert document.findtext("code") == "INVALID_PARAM"
    assert document.find("parent-codes/code").text == "EXCEPTION"


def test_not_found_fault_names_the_object_and_parent_codes(balance):
    with pytest.raises(xmlrpc.client.Fault) as caught:
        balance.Balance.GetClientPersons(12345)
    document = ET.fromstring(caught.value.faultString)
    assert document.findtext("code") == "CLIENT_NOT_FOUND"
    assert document.findtext("object-id") == "12345"
    assert document.findtext("method") == "Balance.GetClientPersons"
    assert [c.text for c in document.find("parent-codes")] == ["NOT_FOUND", "EXCEPTION"]


def test_find_client_filters(balance):
    marker = "Zebra-7f3a"
    client_id = int(
        balance.Balance2.CreateClient(
            UID, {"NAME": f"Shop {marker}", "EMAIL": "zebra@shop.ru", "PHONE": "+7 555"}
        )[2]
    )
    for filters in (
        {"ClientID": client_id},
        {"ClientID": str(client_id)},
        {"Name": marker.lower()},
        {"Email": "ZEBRA@shop.ru"},
        {"Phone": "+7 555", "Name": "Shop"},
    ):
        answer = balance.Balance2.FindClient(filters)
        assert answer[:2] == [0, 0], filters
        assert [c["CLIENT_ID"] for c in answer[2]] == [client_id], filters
    assert balance.Balance2.FindClient({"Email": "nobody@shop.ru"}) == [0, 0, []]


def test_both_prefixes_answer_every_method(balance):
    methods = balance.system.listMethods()
    bare = {m.split(".", 1)[1] for m in methods if m.startswith("Balance2.")}
    assert bare == {m.split(".", 1)[1] for m in methods if m.startswith("Balance.")}
    assert {
        "CreateClient",
        "GetClientByIdBatch",
        "FindClient",
        "CreateOrUpdateOrdersBatch",
        "CreatePerson",
        "GetClientPersons",
        "CreateOffer",
        "CreateCommonContract",
        "GetClientContracts",
        "CreateRequest2",
        "CreateInvoice",
        "GetClientCreditLimits",
        "GetOrdersInfo",
        "UpdateCampaigns",
        "GetClientActs",
        "GetClientRequests",
        "GetClientInvoices",
    } <= bare
    client_id = int(balance.Balance.CreateClient(UID, {"NAME": "Old prefix"})[2])
    assert balance.Balance2.GetClientByIdBatch([client_id])[1][0]["NAME"] == "Old prefix"


def test_wrong_arity_and_unknown_method_are_faults(balance):
    with pytest.raises(xmlrpc.client.Fault) as caught:
        balance.Balance2.CreateClient({"NAME": "no uid"})
    assert fault_code(caught.value) == "INVALID_PARAM"
    with pytest.raises(xmlrpc.client.Fault) as caught:
        balance.Balance2.NoSuchMethod()
    assert fault_code(caught.value) == "UNKNOWN_METHOD"


def test_uid_may_be_a_numeric_string_but_not_garbage(balance):
    assert balance.Balance2.CreateClient(str(UID), {"NAME": "S"})[0] == 0
    assert balance.Balance2.CreateClient("1120000000012345", {"NAME": "S"})[0] == 0
    with pytest.raises(xmlrpc.client.Fault) as caught:
        balance.Balance2.CreateClient("root", {"NAME": "S"})
    assert fault_code(caught.value) == "INVALID_PARAM"
