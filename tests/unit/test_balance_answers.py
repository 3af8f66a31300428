"""Reading Balance's answers, and what the client refuses before anything is sent."""

from __future__ import annotations

import datetime as dt
import socket

import pytest

from billy_core.balance import (
    BalanceBadAnswer,
    BalanceClient,
    BalanceFault,
    BalanceValueError,
    CircuitBreaker,
    ConsumptionReport,
    FaultCode,
    PaymentType,
    XmlRpcTransport,
)
from billy_core.balance.answers import MOSCOW, AnswerReader, to_moscow_naive

read = AnswerReader("GetThing", idempotent=False)


def test_a_missing_field_is_a_bad_answer_naming_method_and_field() -> None:
    with pytest.raises(BalanceBadAnswer, match=r"Balance2\.GetThing: no ID in the answer") as e:
        read.int_({"NAME": "x"}, "ID")
    assert e.value.method == "Balance2.GetThing" and e.value.idempotent is False


@pytest.mark.parametrize("value", [True, "12a", "١٢", 1.5, None, "-3"])
def test_ids_are_ints_or_ascii_digit_strings(value: object) -> None:
    with pytest.raises(BalanceBadAnswer, match="ID: expected an integer"):
        read.int_value(value, "ID")


def test_ids() -> None:
    assert read.int_value("20000001", "ID") == 20000001
    assert read.int_value(7, "ID") == 7
    assert read.opt_int({"X": 0}, "X") is None and read.opt_int({}, "X") is None


def test_shapes() -> None:
    with pytest.raises(BalanceBadAnswer, match="expected a struct"):
        read.struct([1], "answer")
    with pytest.raises(BalanceBadAnswer, match="expected an array"):
        read.items({"a": 1}, "answer")
    with pytest.raises(BalanceBadAnswer, match="expected 0 or 1"):
        read.flag({"F": 2}, "F")
    assert read.flag({"F": "1"}, "F") is True and read.flag({"F": 0}, "F") is False


def test_status_arrays() -> None:
    assert read.status_array([0, "SUCCESS", 5], 3) == [0, "SUCCESS", 5]
    with pytest.raises(BalanceBadAnswer, match="status array of 3"):
        read.status_array([0, "SUCCESS"], 3)
    with pytest.raises(BalanceBadAnswer, match="expected a status array"):
        read.status_array(["0", "x"], 2)
    with pytest.raises(BalanceFault) as refused:
        read.status_array([-1, "<error><msg>m</msg><code>INVALID_PARAM</code></error>"], 3)
    assert refused.value.code is FaultCode.INVALID_PARAM
    assert refused.value.method == "Balance2.GetThing"


def test_money_fields_are_exact_or_refused() -> None:
    assert read.minor({"SUM": "6000.00"}, "SUM", "RUB") == 600000
    with pytest.raises(BalanceValueError, match=r"Balance2\.GetThing: SUM: .*past the RUB"):
        read.minor({"SUM": "0.001"}, "SUM", "RUB")
    assert read.opt_minor({"SUM": ""}, "SUM", "RUB") is None
    assert read.currency({"CURRENCY": "RUR"}, "CURRENCY") == "RUB"


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2026, 11, 30, 0, 0),
        "2026-11-30",
        "2026-11-30 00:00:00",
        "20261130T00:00:00",
        "2026-11-29T21:00:00+00:00",
    ],
)
def test_moments_are_moscow_time(value: object) -> None:
    moment = read.moment({"DT": value}, "DT")
    assert moment == dt.datetime(2026, 11, 30, tzinfo=MOSCOW)
    assert read.date({"DT": value}, "DT") == dt.date(2026, 11, 30)


def test_bad_moments() -> None:
    assert read.moment({"DT": None}, "DT") is None
    with pytest.raises(BalanceBadAnswer, match="DT: not a date"):
        read.moment({"DT": "30.11.2026"}, "DT")
    with pytest.raises(BalanceBadAnswer, match="DT: expected a date"):
        read.moment({"DT": 20261130}, "DT")


def test_times_sent_are_naive_moscow_and_must_be_aware() -> None:
    utc = dt.datetime(2026, 11, 27, 21, 30, 15, 999, tzinfo=dt.UTC)
    assert to_moscow_naive(utc, "at") == dt.datetime(2026, 11, 28, 0, 30, 15)
    with pytest.raises(BalanceValueError, match="at: needs a time zone"):
        to_moscow_naive(dt.datetime(2026, 11, 27), "at")


@pytest.fixture
def offline_client() -> BalanceClient:
    """A client whose Balance is a closed port with a breaker that opens on the first
    failure: a test that reached the network would see BalanceUnavailable, not a
    BalanceValueError, and leave the breaker open."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    breaker = CircuitBreaker(failures_max=1, cooldown_s=60)
    transport = XmlRpcTransport(
        f"http://127.0.0.1:{port}/xmlrpc", connect_timeout_s=1, timeout_s=1, breaker=breaker
    )
    return BalanceClient(
        transport,
        operator_uid=1,
        service_id=7,
        service_token="t",
        product_id=503162,
        firm_id=1,
        individual_paysys_id=1001,
        legal_entity_paysys_id=1003,
    )


@pytest.mark.parametrize(
    ("amount", "currency"),
    [(0, "RUB"), (-5, "RUB"), (10**13 + 1, "RUB"), (100, "RUR"), (100, "XXX")],
)
def test_create_request_refuses_before_sending(
    offline_client: BalanceClient, amount: int, currency: str
) -> None:
    with pytest.raises(BalanceValueError):
        offline_client.create_request(1, 1, amount, currency)
    assert offline_client.breaker.consecutive_failures == 0


def test_consumption_and_contract_values_refused_before_sending(
    offline_client: BalanceClient,
) -> None:
    now = dt.datetime.now(dt.UTC)
    for report in (
        ConsumptionReport(1, now.replace(tzinfo=None), 100),  # naive: whose time?
        ConsumptionReport(1, now, -1),
        ConsumptionReport(1, now, 10**13 + 1),
    ):
        with pytest.raises(BalanceValueError):
            offline_client.update_campaigns([report])
    with pytest.raises(BalanceValueError):
        offline_client.update_campaigns([ConsumptionReport(1, now, 1)] * 1001)
    assert offline_client.update_campaigns([]) == {}
    with pytest.raises(BalanceValueError):
        offline_client.create_contract(
            1, 2, payment_type=PaymentType.POSTPAY, payment_term_days=10, credit_limit_minor=-1
        )
    assert offline_client.breaker.consecutive_failures == 0
