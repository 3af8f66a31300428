"""The Balance adapter against the Balance emulator PROCESS (a real subprocess on a free
port, reached over HTTP): every method's happy path, the Balance errors the adapter turns
into typed faults, timeouts classified as outcome-unknown (and the look-up that tells what
happened), and the breaker opening against a dead Balance and closing when it is back.
No mock anywhere: what the adapter sends is what the emulator parses."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from billy_core.balance import (
    BalanceCircuitOpen,
    BalanceClient,
    BalanceFault,
    BalanceOutcomeUnknown,
    BalanceUnavailable,
    BreakerState,
    CircuitBreaker,
    ConsumptionReport,
    FaultCode,
    IndividualPayer,
    LegalEntityPayer,
    PayerKind,
    PaymentType,
    XmlRpcTransport,
    retry_is_safe,
)
from billy_core.balance.answers import MOSCOW
from tests.emulator_process import EmulatorProcess, start_emulator

pytestmark = pytest.mark.integration

SERVICE_ID = 7
MONEY_PRODUCT = 503162  # the emulator's seeded money product: 1.00 RUB per unit
PH_PAYSYS, UR_PAYSYS = 1001, 1003

IVAN = IndividualPayer(
    last_name="Ivanov",
    first_name="Ivan",
    middle_name="Ivanovich",
    phone="+7 900 000-00-00",
    email="ivan@example.ru",
)
ACME = LegalEntityPayer(
    name="Acme LLC",
    long_name="Limited Liability Company Acme",
    phone="+7 495 000-00-00",
    email="office@acme.ru",
    legal_address="Moscow, Lva Tolstogo 16",
    post_address="Moscow, Lva Tolstogo 16",
    post_code="119021",
    inn="7736207543",
    kpp="770401001",
    bik="044525225",
    account="40702810938000000001",
)

_order_ids = itertools.count(1)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_client(
    url: str,
    *,
    timeout_s: float = 10.0,
    failures_max: int = 1000,
    clock: FakeClock | None = None,
) -> BalanceClient:
    breaker = CircuitBreaker(failures_max=failures_max, cooldown_s=30.0, clock=clock or FakeClock())
    transport = XmlRpcTransport(url, connect_timeout_s=2.0, timeout_s=timeout_s, breaker=breaker)
    return BalanceClient(
        transport,
        operator_uid=1120000,
        service_id=SERVICE_ID,
        service_token="billy-test",
        product_id=MONEY_PRODUCT,
        firm_id=1,
        individual_paysys_id=PH_PAYSYS,
        legal_entity_paysys_id=UR_PAYSYS,
    )


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    state: Path = tmp_path_factory.mktemp("balance") / "emulator.sqlite3"
    with start_emulator(state) as process:
        yield process


@pytest.fixture
def balance(emulator: EmulatorProcess) -> Iterator[BalanceClient]:
    emulator.control.TestBalance.SetFaults({})
    with make_client(emulator.url) as client:
        yield client
    emulator.control.TestBalance.SetFaults({})


def unique_email() -> str:
    return f"c-{uuid.uuid4().hex[:12]}@example.ru"


def new_client(balance: BalanceClient) -> tuple[int, int]:
    """A Balance client with billy's order: (client id, service order id)."""
    client_id = balance.create_client("Acme", unique_email())
    order_id = next(_order_ids)
    balance.upsert_order(client_id, order_id)
    return client_id, order_id


def fault_of(excinfo: pytest.ExceptionInfo[BalanceFault]) -> BalanceFault:
    fault = excinfo.value
    assert not retry_is_safe(fault)
    return fault


# --- clients ------------------------------------------------------------------------------


def test_clients_create_find_update_get(balance: BalanceClient) -> None:
    email = unique_email()
    client_id = balance.create_client("Romashka", email, phone="+7 999 111-22-33")
    [found] = balance.find_clients(email=email)
    assert (found.client_id, found.name, found.email, found.phone) == (
        client_id,
        "Romashka",
        email,
        "+7 999 111-22-33",
    )
    balance.update_client(client_id, "Romashka Ltd", email)
    balance.update_client(client_id, "Romashka Ltd", email)  # safe to repeat
    [again] = balance.get_clients([client_id, 99_999_999])  # unknown ids are left out
    assert again.name == "Romashka Ltd"
    assert [c.client_id for c in balance.find_clients(name="romashka l", email=email)] == [
        client_id
    ]
    assert balance.find_clients(email=unique_email()) == []


def test_client_faults(balance: BalanceClient) -> None:
    with pytest.raises(BalanceFault) as raised:
        balance.find_clients()  # Balance refuses an empty filter
    fault = fault_of(raised)
    assert fault.code is FaultCode.INVALID_PARAM and fault.method == "Balance2.FindClient"
    assert "FindClient needs at least one of" in fault.message

    with pytest.raises(BalanceFault) as raised:
        balance.update_client(99_999_999, "Nobody", unique_email())
    fault = fault_of(raised)
    assert fault.code is FaultCode.CLIENT_NOT_FOUND and fault.is_a(FaultCode.NOT_FOUND)
    assert fault.context == {"object-id": "99999999"}

    with pytest.raises(BalanceFault) as raised:
        balance.create_client("Bad email", "not-an-email")
    assert fault_of(raised).code is FaultCode.WRONG_EMAIL


# --- orders -------------------------------------------------------------------------------


def test_orders_upsert_is_idempotent_and_info_starts_at_zero(balance: BalanceClient) -> None:
    client_id, order_id = new_client(balance)
    balance.upsert_order(client_id, order_id, text="billy wallet")
    balance.upsert_order(client_id, order_id, text="billy wallet")
    [info] = balance.orders_info([order_id, 2_000_000_000])  # unknown orders are left out
    assert info.service_order_id == order_id
    assert (info.consume_sum_minor, info.completion_sum_minor, info.currency) == (0, 0, "RUB")
    assert info.consume_qty == 0 and info.completion_qty == 0


def test_order_errors_in_the_status_array_become_faults(balance: BalanceClient) -> None:
    client_id, order_id = new_client(balance)
    other_client = balance.create_client("Other", unique_email())
    with pytest.raises(BalanceFault) as raised:
        balance.upsert_order(other_client, order_id)  # an order never changes client
    fault = fault_of(raised)
    assert fault.code is FaultCode.CLIENT_ID_MISMATCH
    assert fault.method == "Balance2.CreateOrUpdateOrdersBatch"
    with pytest.raises(BalanceFault) as raised:
        balance.upsert_order(99_999_999, next(_order_ids))
    assert fault_of(raised).code is FaultCode.CLIENT_NOT_FOUND


# --- payers -------------------------------------------------------------------------------


def test_payers_create_update_list(balance: BalanceClient) -> None:
    client_id, _ = new_client(balance)
    ivan = balance.create_person(client_id, IVAN)
    acme = balance.create_person(client_id, ACME)
    renamed = IndividualPayer("Petrov", "Ivan", "Ivanovich", "+7 900 000-00-01", "p@example.ru")
    assert balance.create_person(client_id, renamed, person_id=ivan) == ivan
    payers = balance.client_persons(client_id)
    assert [(p.person_id, p.kind, p.client_id) for p in payers] == [
        (ivan, PayerKind.INDIVIDUAL, client_id),
        (acme, PayerKind.LEGAL_ENTITY, client_id),
    ]
    assert payers[0].name == "Petrov Ivan Ivanovich" and payers[0].email == "p@example.ru"
    assert payers[1].inn == "7736207543"
    assert balance.paysys_id_for(PayerKind.LEGAL_ENTITY) == UR_PAYSYS


def test_payer_faults(balance: BalanceClient) -> None:
    client_id, _ = new_client(balance)
    without_middle_name = IndividualPayer("Ivanov", "Ivan", None, "+7 900", "i@example.ru")
    with pytest.raises(BalanceFault) as raised:
        balance.create_person(client_id, without_middle_name)
    fault = fault_of(raised)
    assert fault.code is FaultCode.MISSING_MANDATORY_PERSON_FIELD
    assert fault.is_a(FaultCode.INVALID_PARAM) and fault.context["field-name"] == "mname"

    bad_inn = LegalEntityPayer(
        ACME.name,
        ACME.long_name,
        ACME.phone,
        ACME.email,
        ACME.legal_address,
        ACME.post_address,
        ACME.post_code,
        inn="7736207544",  # a wrong check digit
        kpp=ACME.kpp,
        bik=ACME.bik,
        account=ACME.account,
    )
    with pytest.raises(BalanceFault) as raised:
        balance.create_person(client_id, bad_inn)
    assert fault_of(raised).code is FaultCode.INVALID_INN

    ivan = balance.create_person(client_id, IVAN)
    with pytest.raises(BalanceFault) as raised:
        balance.create_person(client_id, ACME, person_id=ivan)  # ph cannot become ur
    assert fault_of(raised).code is FaultCode.PERSON_TYPE_MISMATCH

    other_client, _ = new_client(balance)
    with pytest.raises(BalanceFault) as raised:
        balance.create_person(other_client, IVAN, person_id=ivan)
    assert fault_of(raised).code is FaultCode.CLIENT_ID_MISMATCH

    with pytest.raises(BalanceFault) as raised:
        balance.client_persons(99_999_999)
    assert fault_of(raised).code is FaultCode.CLIENT_NOT_FOUND


# --- contracts ----------------------------------------------------------------------------


def test_contracts_and_credit_limits(balance: BalanceClient) -> None:
    client_id, _ = new_client(balance)
    acme = balance.create_person(client_id, ACME)
    prepay = balance.create_contract(client_id, acme, payment_type=PaymentType.PREPAY)
    postpay = balance.create_contract(
        client_id,
        acme,
        payment_type=PaymentType.POSTPAY,
        payment_term_days=15,
        credit_limit_minor=5_000_000,
        start_date=dt.date(2026, 1, 1),
    )
    assert postpay.external_id and postpay.contract_id != prepay.contract_id
    contracts = balance.client_contracts(client_id)
    assert [(c.contract_id, c.payment_type) for c in contracts] == [
        (prepay.contract_id, PaymentType.PREPAY),
        (postpay.contract_id, PaymentType.POSTPAY),
    ]
    second = contracts[1]
    assert second.currency == "RUB"  # Balance's RUR, in billy's spelling
    assert second.services == (SERVICE_ID,) and second.person_id == acme
    assert second.is_active and second.is_signed
    assert second.start_date == dt.date(2026, 1, 1) and second.finish_date is None

    limits = balance.credit_limits(client_id)
    assert limits.currency == "RUB"
    limit = limits.for_contract(postpay.contract_id)
    assert limit is not None
    assert (limit.limit_total_minor, limit.limit_spent_minor, limit.available_minor) == (
        5_000_000,
        0,
        5_000_000,
    )
    assert limits.for_contract(prepay.contract_id) is None  # prepay has no credit


def test_contract_faults(balance: BalanceClient) -> None:
    client_id, _ = new_client(balance)
    acme = balance.create_person(client_id, ACME)
    with pytest.raises(BalanceFault) as raised:
        balance.create_contract(
            client_id, acme, payment_type=PaymentType.PREPAY, credit_limit_minor=100
        )
    fault = fault_of(raised)
    assert fault.code is FaultCode.INVALID_PARAM and fault.method == "Balance2.CreateOffer"
    with pytest.raises(BalanceFault) as raised:
        balance.create_contract(client_id, 99_999_999, payment_type=PaymentType.PREPAY)
    assert fault_of(raised).code is FaultCode.PERSON_NOT_FOUND


# --- requests and invoices ----------------------------------------------------------------


def test_prepay_invoice_then_payment_shows_on_the_order(
    balance: BalanceClient, emulator: EmulatorProcess
) -> None:
    client_id, order_id = new_client(balance)
    ivan = balance.create_person(client_id, IVAN)
    request = balance.create_request(client_id, order_id, 1_234_567, "RUB")
    assert request.user_path.startswith("http") and str(request.request_id) in request.user_path
    invoice_id = balance.create_invoice(request.request_id, ivan, PH_PAYSYS)

    [listed] = balance.client_requests(client_id, service_order_id=order_id)
    assert (listed.request_id, listed.total_minor, listed.invoice_ids) == (
        request.request_id,
        1_234_567,
        (invoice_id,),
    )
    assert [(r.service_order_id, r.amount_minor) for r in listed.rows] == [(order_id, 1_234_567)]
    assert listed.rows[0].quantity == Decimal("12345.67")
    [invoice] = balance.client_invoices(client_id, request_id=request.request_id)
    assert (invoice.invoice_id, invoice.person_id, invoice.paysys_id, invoice.credit) == (
        invoice_id,
        ivan,
        PH_PAYSYS,
        False,
    )
    assert (invoice.total_minor, invoice.receipt_minor, invoice.currency, invoice.status) == (
        1_234_567,
        0,
        "RUB",
        "unpaid",
    )
    assert invoice.created_at is not None and invoice.created_at.tzinfo is not None

    emulator.control.TestBalance.PayInvoice(invoice_id)
    [info] = balance.orders_info([order_id])
    assert info.consume_sum_minor == 1_234_567
    [paid] = balance.client_invoices(client_id, request_id=request.request_id)
    assert paid.receipt_minor == 1_234_567 and paid.status == "paid"


def test_request_and_invoice_faults(balance: BalanceClient) -> None:
    client_id, order_id = new_client(balance)
    with pytest.raises(BalanceFault) as raised:
        balance.create_request(client_id, 2_000_000_000, 100, "RUB")
    assert fault_of(raised).code is FaultCode.ORDERS_NOT_SYNCHRONIZED
    request = balance.create_request(client_id, order_id, 1, "RUB")  # one kopeck
    with pytest.raises(BalanceFault) as raised:
        balance.create_invoice(2_000_000_000, 1, PH_PAYSYS)
    assert fault_of(raised).code is FaultCode.REQUEST_NOT_FOUND
    ivan = balance.create_person(client_id, IVAN)
    with pytest.raises(BalanceFault) as raised:
        balance.create_invoice(request.request_id, ivan, PH_PAYSYS, credit=True)
    assert fault_of(raised).code is FaultCode.CONTRACT_RULE_VIOLATION


def test_postpay_credit_moves_money_at_once_within_the_limit(balance: BalanceClient) -> None:
    client_id, order_id = new_client(balance)
    acme = balance.create_person(client_id, ACME)
    contract = balance.create_contract(
        client_id,
        acme,
        payment_type=PaymentType.POSTPAY,
        payment_term_days=10,
        credit_limit_minor=1_000_000,
    )
    request = balance.create_request(client_id, order_id, 600_000, "RUB")
    balance.create_invoice(
        request.request_id, acme, UR_PAYSYS, contract_id=contract.contract_id, credit=True
    )
    [info] = balance.orders_info([order_id])
    assert info.consume_sum_minor == 600_000
    limit = balance.credit_limits(client_id).for_contract(contract.contract_id)
    assert limit is not None and limit.limit_spent_minor == 600_000
    assert limit.available_minor == 400_000

    beyond = balance.create_request(client_id, order_id, 400_001, "RUB")
    with pytest.raises(BalanceFault) as raised:
        balance.create_invoice(
            beyond.request_id, acme, UR_PAYSYS, contract_id=contract.contract_id, credit=True
        )
    fault = fault_of(raised)
    assert fault.code is FaultCode.CONTRACT_RULE_VIOLATION and "Credit limit" in fault.message
    [unchanged] = balance.orders_info([order_id])
    assert unchanged.consume_sum_minor == 600_000  # a fault did nothing


# --- consumption and acts -----------------------------------------------------------------


def test_consumption_reports_and_acts(balance: BalanceClient, emulator: EmulatorProcess) -> None:
    client_id, order_id = new_client(balance)
    ivan = balance.create_person(client_id, IVAN)
    request = balance.create_request(client_id, order_id, 100_000, "RUB")
    emulator.control.TestBalance.PayInvoice(
        balance.create_invoice(request.request_id, ivan, PH_PAYSYS)
    )
    now = dt.datetime.now(dt.UTC)
    taken = balance.update_campaigns(
        [
            ConsumptionReport(order_id, now - dt.timedelta(minutes=2), 25_050),
            ConsumptionReport(order_id, now - dt.timedelta(minutes=1), 30_001),
        ]
    )
    assert taken == {order_id: True}
    repeated = ConsumptionReport(order_id, now - dt.timedelta(minutes=1), 30_001)
    assert balance.update_campaigns([repeated]) == {order_id: True}  # totals: safe to repeat
    in_the_future = balance.update_campaigns(
        [ConsumptionReport(order_id, now + dt.timedelta(days=1), 99_999)]
    )
    assert in_the_future == {order_id: False}
    [info] = balance.orders_info([order_id])
    assert info.completion_sum_minor == 30_001

    month = now.astimezone(MOSCOW).strftime("%Y-%m")
    emulator.control.TestBalance.CloseMonth(month)
    [act] = balance.client_acts(client_id)
    assert act.amount_minor == 30_001 and act.currency == "RUB"
    assert act.paid_amount_minor == 30_001
    assert 0 < act.amount_nds_minor < act.amount_minor
    assert act.date.strftime("%Y-%m") == month and (act.date + dt.timedelta(days=1)).day == 1
    assert [(r.service_order_id, r.amount_minor) for r in act.rows] == [(order_id, 30_001)]
    assert balance.client_acts(client_id, contract_id=2_000_000_000) == []


# --- unclear outcomes ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["drop", "hang"])
def test_timeout_after_work_is_outcome_unknown_and_the_lookup_finds_the_client(
    emulator: EmulatorProcess, mode: str
) -> None:
    emulator.control.TestBalance.SetFaults(
        {
            "timeout_after_share": 1,
            "timeout_mode": mode,
            "hang_s": 3,
            "only_methods": ["CreateClient"],
            "limit": 1,
        }
    )
    email = unique_email()
    with make_client(emulator.url, timeout_s=0.5) as balance:
        with pytest.raises(BalanceOutcomeUnknown) as raised:
            balance.create_client("Unclear", email)
        assert not isinstance(raised.value, BalanceUnavailable)
        assert raised.value.method == "Balance2.CreateClient"
        assert not retry_is_safe(raised.value)  # creating again would make a second client
        [made] = balance.find_clients(email=email)  # the work was done
        assert made.name == "Unclear"
    emulator.control.TestBalance.SetFaults({})


def test_timeout_after_work_on_create_invoice_is_found_by_listing(
    balance: BalanceClient, emulator: EmulatorProcess
) -> None:
    client_id, order_id = new_client(balance)
    ivan = balance.create_person(client_id, IVAN)
    request = balance.create_request(client_id, order_id, 50_000, "RUB")
    emulator.control.TestBalance.SetFaults(
        {"timeout_after_share": 1, "only_methods": ["CreateInvoice"], "limit": 1}
    )
    with pytest.raises(BalanceOutcomeUnknown):
        balance.create_invoice(request.request_id, ivan, PH_PAYSYS)
    [made] = balance.client_invoices(client_id, request_id=request.request_id)
    assert made.total_minor == 50_000


def test_timeout_before_work_is_also_unknown_and_the_lookup_finds_nothing(
    balance: BalanceClient, emulator: EmulatorProcess
) -> None:
    client_id, order_id = new_client(balance)
    emulator.control.TestBalance.SetFaults(
        {"timeout_before_share": 1, "only_methods": ["CreateRequest2"], "limit": 1}
    )
    with pytest.raises(BalanceOutcomeUnknown):
        balance.create_request(client_id, order_id, 10_000, "RUB")
    assert balance.client_requests(client_id) == []
    balance.create_request(client_id, order_id, 10_000, "RUB")  # now known: safe to ask again
    assert len(balance.client_requests(client_id)) == 1


def test_an_injected_fault_is_a_typed_refusal_and_keeps_the_breaker_closed(
    emulator: EmulatorProcess,
) -> None:
    emulator.control.TestBalance.SetFaults(
        {"fail_share": 1, "fail_code": "PERMISSION_DENIED", "only_methods": ["FindClient"]}
    )
    with make_client(emulator.url, failures_max=2) as balance:
        for _ in range(3):
            with pytest.raises(BalanceFault) as raised:
                balance.find_clients(email=unique_email())
            assert raised.value.code is FaultCode.PERMISSION_DENIED
        assert balance.breaker.state is BreakerState.CLOSED
    emulator.control.TestBalance.SetFaults({})


# --- the breaker against a dead Balance ---------------------------------------------------


def test_breaker_opens_against_a_dead_emulator_and_closes_when_it_is_back(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    with start_emulator(tmp_path / "dead.sqlite3") as emulator:
        with make_client(emulator.url, failures_max=3, clock=clock) as balance:
            balance.create_client("Before", unique_email())
            emulator.kill()
            for _ in range(3):
                with pytest.raises(BalanceUnavailable) as raised:
                    balance.get_clients([1])
                assert type(raised.value) is BalanceUnavailable  # refused: nothing was sent
                assert retry_is_safe(raised.value)
            assert balance.breaker.state is BreakerState.OPEN
            with pytest.raises(BalanceCircuitOpen) as opened:
                balance.create_client("Refused here", unique_email())
            assert opened.value.retry_after_s == pytest.approx(30.0)

            clock.now += 30  # cooled down: one trial, which fails while Balance is still down
            with pytest.raises(BalanceUnavailable):
                balance.get_clients([1])
            assert balance.breaker.state is BreakerState.OPEN

            emulator.start()  # back, same port and state
            clock.now += 30
            assert balance.breaker.state is BreakerState.HALF_OPEN
            assert balance.find_clients(name="Before")  # the trial succeeds
            assert balance.breaker.state is BreakerState.CLOSED
