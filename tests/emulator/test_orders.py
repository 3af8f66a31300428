"""Orders: per-order status pairs, upsert by (ServiceID, ServiceOrderID), idempotency,
the product (and client) cannot change, GetOrdersInfo's shape."""

from __future__ import annotations

import xml.etree.ElementTree as ET
import xmlrpc.client

import pytest

from tests.emulator.conftest import (
    MONEY_PRODUCT,
    SERVICE_ID,
    UID,
    fault_code,
    make_client,
    new_order_id,
)


def _order(client_id: int, order_id: int, product_id: int = MONEY_PRODUCT, **extra) -> dict:
    return {
        "ServiceID": SERVICE_ID,
        "ServiceOrderID": order_id,
        "ClientID": client_id,
        "ProductID": product_id,
        **extra,
    }


def test_upsert_is_idempotent_and_answers_per_order(balance, emulator):
    client_id = make_client(balance)
    order_id = new_order_id()
    before = emulator.control.TestBalance.Stats()["orders"]
    for _ in range(3):
        answer = balance.Balance2.CreateOrUpdateOrdersBatch(
            UID, [_order(client_id, order_id, Text="wallet")]
        )
        assert answer == [[0, "Success"]]
    assert emulator.control.TestBalance.Stats()["orders"] == before + 1
    (info,) = balance.Balance2.GetOrdersInfo(
        [{"ServiceID": SERVICE_ID, "ServiceOrderID": order_id}]
    )
    assert info["Text"] == "wallet"


def test_product_cannot_change_and_errors_are_per_order(balance):
    client_id = make_client(balance)
    order_id, other_id = new_order_id(), new_order_id()
    balance.Balance2.CreateOrUpdateOrdersBatch(UID, [_order(client_id, order_id)])
    answer = balance.Balance2.CreateOrUpdateOrdersBatch(
        UID,
        [
            _order(client_id, order_id, product_id=508892),
            _order(client_id, other_id),
            _order(99, new_order_id()),
        ],
    )
    assert [code for code, _ in answer] == [-1, 0, -1]
    first = ET.fromstring(answer[0][1])
    assert first.findtext("code") == "INVALID_PARAM"
    assert "product" in first.findtext("msg")
    assert first.findtext("method") == "Balance2.CreateOrUpdateOrdersBatch"
    assert ET.fromstring(answer[2][1]).findtext("code") == "CLIENT_NOT_FOUND"
    (info,) = balance.Balance2.GetOrdersInfo(
        [{"ServiceID": SERVICE_ID, "ServiceOrderID": order_id}]
    )
    assert info["ProductID"] == MONEY_PRODUCT  # unchanged
    assert (
        len(balance.Balance2.GetOrdersInfo([{"ServiceID": SERVICE_ID, "ServiceOrderID": other_id}]))
        == 1
    )


def test_client_cannot_change(balance):
    client_id, other = make_client(balance), make_client(balance)
    order_id = new_order_id()
    balance.Balance2.CreateOrUpdateOrdersBatch(UID, [_order(client_id, order_id)])
    ((code, message),) = balance.Balance2.CreateOrUpdateOrdersBatch(UID, [_order(other, order_id)])
    assert code == -1 and ET.fromstring(message).findtext("code") == "CLIENT_ID_MISMATCH"


def test_unknown_product_and_bad_keys_are_per_order_errors(balance):
    client_id = make_client(balance)
    answer = balance.Balance2.CreateOrUpdateOrdersBatch(
        UID,
        [
            _order(client_id, new_order_id(), product_id=1),
            {"service_id": SERVICE_ID, "service_order_id": 1},
        ],
    )
    assert [ET.fromstring(m).findtext("code") for _, m in answer] == [
        "PRODUCT_NOT_FOUND",
        "INVALID_PARAM",
    ]


def test_orders_argument_must_be_an_array(balance):
    with pytest.raises(xmlrpc.client.Fault) as caught:
        balance.Balance2.CreateOrUpdateOrdersBatch(UID, {"ServiceID": 1})
    assert fault_code(caught.value) == "INVALID_PARAM"


def test_get_orders_info_shape(balance):
    client_id = make_client(balance)
    order_id = new_order_id()
    balance.Balance2.CreateOrUpdateOrdersBatch(UID, [_order(client_id, order_id)])
    answer = balance.Balance2.GetOrdersInfo(
        [
            {"ServiceID": SERVICE_ID, "ServiceOrderID": order_id},
            {"ServiceID": SERVICE_ID, "ServiceOrderID": 999_999_999},
        ]
    )
    assert len(answer) == 1
    info = answer[0]
    assert (info["ServiceID"], info["ServiceOrderID"], info["ClientID"]) == (
        SERVICE_ID,
        order_id,
        client_id,
    )
    assert info["consume_qty"] == "0"
    assert info["consume_sum"] == "0.00"
    assert info["completion_qty"] == "0"


def test_service_order_id_may_be_a_digit_string(balance):
    client_id = make_client(balance)
    order_id = new_order_id()
    answer = balance.Balance2.CreateOrUpdateOrdersBatch(UID, [_order(client_id, str(order_id))])
    assert answer == [[0, "Success"]]
    (info,) = balance.Balance2.GetOrdersInfo(
        [{"ServiceID": SERVICE_ID, "ServiceOrderID": order_id}]
    )
    assert info["ServiceOrderID"] == order_id
