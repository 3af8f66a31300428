"""Fixtures for the emulator's own tests: every emulator is a real subprocess on a free
port with a temporary SQLite file, reached over HTTP only."""

from __future__ import annotations

import itertools
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from tests.emulator_process import EmulatorProcess, start_emulator

UID = 1120000  # an operator uid (any positive int)
SERVICE_ID = 7
MONEY_PRODUCT = 503162

_order_ids = itertools.count(1)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """One emulator per test module (tests use fresh clients, so they do not collide)."""
    state: Path = tmp_path_factory.mktemp("balance") / "emulator.sqlite3"
    with start_emulator(state) as process:
        yield process


@pytest.fixture
def balance(emulator: EmulatorProcess) -> xmlrpc.client.ServerProxy:
    emulator.control.TestBalance.SetFaults({})
    return emulator.proxy(timeout_s=10)


def new_order_id() -> int:
    return next(_order_ids)


def fault_code(fault: xmlrpc.client.Fault) -> str:
    """The <code> of a Balance fault document."""
    import xml.etree.ElementTree as ET

    return ET.fromstring(fault.faultString).findtext("code") or ""


def make_client(balance: xmlrpc.client.ServerProxy, name: str = "Acme") -> int:
    answer = cast(
        list[Any], balance.Balance2.CreateClient(UID, {"NAME": name, "EMAIL": "billing@acme.ru"})
    )
    return int(answer[2])


def make_order(
    balance: xmlrpc.client.ServerProxy, client_id: int, product_id: int = MONEY_PRODUCT
) -> int:
    order_id = new_order_id()
    answer = balance.Balance2.CreateOrUpdateOrdersBatch(
        UID,
        [
            {
                "ServiceID": SERVICE_ID,
                "ServiceOrderID": order_id,
                "ClientID": client_id,
                "ProductID": product_id,
            }
        ],
    )
    assert answer == [[0, "Success"]]
    return order_id


PH_PERSON = {
    "type": "ph",
    "lname": "Ivanov",
    "fname": "Ivan",
    "mname": "Ivanovich",
    "phone": "+7 900 000-00-00",
    "email": "ivan@example.ru",
}
UR_PERSON = {
    "type": "ur",
    "name": "Acme LLC",
    "longname": "Limited Liability Company Acme",
    "phone": "+7 495 000-00-00",
    "email": "office@acme.ru",
    "legaladdress": "Moscow, Lva Tolstogo 16",
    "postaddress": "Moscow, Lva Tolstogo 16",
    "postcode": "119021",
    "inn": "7736207543",
    "kpp": "770401001",
    "bik": "044525225",
    "account": "40702810938000000001",
}


def make_person(balance: xmlrpc.client.ServerProxy, client_id: int, kind: str = "ph") -> int:
    fields = PH_PERSON if kind == "ph" else UR_PERSON
    return cast(int, balance.Balance2.CreatePerson(UID, {"client_id": client_id, **fields}))
