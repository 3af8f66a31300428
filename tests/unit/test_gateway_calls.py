"""The gateway's call policy and its internal records, without services."""

from __future__ import annotations

import pytest

from billy_core.balance import (
    BalanceCircuitOpen,
    BalanceFault,
    BalanceOutcomeUnknown,
    BalanceUnavailable,
    FaultCode,
)
from consumers.gateway.calls import Caller, Later, Refused, Unclear
from consumers.gateway.flows import service_order_id
from consumers.gateway.wire import (
    BalanceOutcome,
    BalanceRequest,
    WireError,
    decode_outcome,
    decode_request,
    encode_outcome,
    encode_request,
)


def _fault(code: FaultCode) -> BalanceFault:
    return BalanceFault(code=code, message="no", method="Balance2.X", raw_code=code.value)


class Flaky:
    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def caller(attempts: int = 4) -> Caller:
    return Caller(attempts, sleep=lambda s: None)


def test_not_done_errors_are_retried_until_an_answer():
    fn = Flaky(
        BalanceUnavailable("refused"),
        _fault(FaultCode.UNKNOWN),  # INTERNAL_ERROR: nothing done
        BalanceCircuitOpen("open", retry_after_s=0.1),
    )
    assert caller().call(fn, creates=True) == "done"
    assert fn.calls == 4


def test_an_unclear_create_is_never_repeated_blindly():
    fn = Flaky(BalanceOutcomeUnknown("timeout", idempotent=False))
    with pytest.raises(Unclear):
        caller().call(fn, creates=True)
    assert fn.calls == 1


def test_an_unclear_read_is_repeated():
    fn = Flaky(BalanceOutcomeUnknown("timeout", idempotent=True))
    assert caller().call(fn) == "done"


def test_a_business_fault_is_a_refusal_at_once():
    fn = Flaky(_fault(FaultCode.INVALID_INN))
    with pytest.raises(Refused) as err:
        caller().call(fn)
    assert fn.calls == 1 and err.value.error.code is FaultCode.INVALID_INN


def test_transient_trouble_past_the_attempts_is_later():
    fn = Flaky(*[BalanceUnavailable("down")] * 5)
    with pytest.raises(Later):
        caller(attempts=3).call(fn)
    assert fn.calls == 3


def test_service_order_ids_are_stable_and_fit_xmlrpc():
    a = service_order_id("billy", "autoru", "dealer-1", 0)
    assert a == service_order_id("billy", "autoru", "dealer-1", 0)
    assert a != service_order_id("billy", "autoru", "dealer-1", 1)
    assert 1 <= a <= 2**31 - 1


def test_records_round_trip_and_bad_ones_name_the_field():
    request = BalanceRequest("autoru", "c1", "cmd1", "RequestInvoice", {"amount_minor": 5}, "RUB")
    assert decode_request(encode_request(request)) == request
    outcome = BalanceOutcome(
        "autoru", "c1", "cmd1", "TransferCredit", "APPLIED", "ok", "m", {"a": "1"},
        credit_minor=100, currency="RUB",
    )  # fmt: skip
    assert decode_outcome(encode_outcome(outcome)) == outcome
    with pytest.raises(WireError, match="^v:"):
        decode_request(b'{"v": 99}')
    with pytest.raises(WireError, match="^status:"):
        decode_outcome(encode_outcome(outcome).replace(b"APPLIED", b"MAYBE"))
