"""`BalanceClient`: Balance's methods in billy's words.

Every method makes exactly one XML-RPC call (none retries: the gateway decides, because
a call that creates something must first find out what an unclear call did), may block
up to the connect timeout plus the read timeout, and may raise anything in the tree of
`billy_core.balance.errors`:

- BalanceFault            Balance refused (code, message, method); nothing was done
- BalanceUnavailable      not reached, nothing was done (BalanceCircuitOpen: not even tried)
- BalanceOutcomeUnknown   sent, no answer (BalanceBadAnswer: an answer billy cannot read)
- BalanceValueError       a value that cannot cross exactly (before sending: nothing sent)

Methods marked "creates on every call" must not be repeated after BalanceOutcomeUnknown
without a look first: `find_clients` for `create_client`, `client_persons` for
`create_person`, `client_contracts` for `create_contract`, `client_requests` and
`client_invoices` for `create_request` and `create_invoice`. The others are safe to repeat
(`retry_is_safe` says so on their errors).

Money in and out is int minor units; the amount a request asks for is sent as the
quantity of billy's money product (price 1.00 per unit of its currency), so the Qty is
the amount in major units.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType

from billy_core.balance import money, readers
from billy_core.balance.answers import AnswerReader, to_moscow_naive
from billy_core.balance.breaker import CircuitBreaker
from billy_core.balance.errors import BalanceValueError
from billy_core.balance.faults import fault_from_text
from billy_core.balance.models import (
    Act,
    BalanceClientInfo,
    ConsumptionReport,
    ContractInfo,
    ContractRef,
    CreditLimits,
    IndividualPayer,
    InvoiceInfo,
    LegalEntityPayer,
    OrderInfo,
    Payer,
    PayerInfo,
    PayerKind,
    PaymentType,
    RequestInfo,
    RequestRef,
)
from billy_core.balance.transport import CallObserver, XmlRpcTransport
from billy_core.settings import Settings

CAMPAIGN_REPORTS_MAX = 1000
"""Most orders one `update_campaigns` call reports (split larger reports)."""


class BalanceClient:
    """Thread-safe: one per process, shared by every caller (one breaker for Balance)."""

    def __init__(
        self,
        transport: XmlRpcTransport,
        *,
        operator_uid: int,
        service_id: int,
        service_token: str,
        product_id: int,
        firm_id: int,
        individual_paysys_id: int,
        legal_entity_paysys_id: int,
    ) -> None:
        self._transport = transport
        # A uid may pass XML-RPC's 32-bit int; Balance takes it as a numeric string too.
        self._uid = str(operator_uid)
        self.service_id = service_id
        self.product_id = product_id
        self.firm_id = firm_id
        self._service_token = service_token
        self._paysys = {
            PayerKind.INDIVIDUAL: individual_paysys_id,
            PayerKind.LEGAL_ENTITY: legal_entity_paysys_id,
        }

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        observer: CallObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> BalanceClient:
        breaker = CircuitBreaker(
            failures_max=settings.balance_breaker_failures_max,
            cooldown_s=settings.balance_breaker_cooldown_s,
            clock=clock,
        )
        transport = XmlRpcTransport(
            settings.balance_url,
            connect_timeout_s=settings.balance_connect_timeout_s,
            timeout_s=settings.balance_timeout_s,
            breaker=breaker,
            observer=observer,
            clock=clock,
        )
        return cls(
            transport,
            operator_uid=settings.balance_operator_uid,
            service_id=settings.balance_service_id,
            service_token=settings.balance_service_token,
            product_id=settings.balance_product_id,
            firm_id=settings.balance_firm_id,
            individual_paysys_id=settings.balance_individual_paysys_id,
            legal_entity_paysys_id=settings.balance_legal_entity_paysys_id,
        )

    @property
    def breaker(self) -> CircuitBreaker:
        return self._transport.breaker

    def paysys_id_for(self, kind: PayerKind) -> int:
        """The configured payment system for invoices to payers of this kind."""
        return self._paysys[kind]

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> BalanceClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- clients ----------------------------------------------------------------------
    def create_client(self, name: str, email: str, phone: str | None = None) -> int:
        """A new Balance client; its id. Creates on every call (look with `find_clients`)."""
        fields: dict[str, object] = {"NAME": name, "EMAIL": email}
        if phone is not None:
            fields["PHONE"] = phone
        return self._create_or_update_client(fields, idempotent=False)

    def update_client(
        self, balance_client_id: int, name: str, email: str, phone: str | None = None
    ) -> None:
        """Change a client's name, email (and phone, when given). Safe to repeat."""
        fields: dict[str, object] = {"CLIENT_ID": balance_client_id, "NAME": name, "EMAIL": email}
        if phone is not None:
            fields["PHONE"] = phone
        self._create_or_update_client(fields, idempotent=True)

    def _create_or_update_client(self, fields: Mapping[str, object], *, idempotent: bool) -> int:
        method = "CreateClient"
        answer = self._call(method, self._uid, dict(fields), idempotent=idempotent)
        read = AnswerReader(method, idempotent=idempotent)
        return read.int_value(read.status_array(answer, 3)[2], "client_id")

    def find_clients(
        self,
        *,
        email: str | None = None,
        name: str | None = None,
        phone: str | None = None,
        balance_client_id: int | None = None,
    ) -> list[BalanceClientInfo]:
        """Clients matching every filter given (email exact, name a substring in Balance).
        At least one filter: Balance refuses an empty one (INVALID_PARAM)."""
        filters: dict[str, object] = {}
        for key, value in (
            ("Email", email),
            ("Name", name),
            ("Phone", phone),
            ("ClientID", balance_client_id),
        ):
            if value is not None:
                filters[key] = value
        method = "FindClient"
        answer = self._call(method, filters, idempotent=True)
        read = AnswerReader(method, idempotent=True)
        clients = read.structs(read.status_array(answer, 3)[2], "clients")
        return [readers.client_info(read, struct) for struct in clients]

    def get_clients(self, balance_client_ids: Iterable[int]) -> list[BalanceClientInfo]:
        """The clients with these ids; ids Balance does not know are left out."""
        method = "GetClientByIdBatch"
        answer = self._call(method, list(balance_client_ids), idempotent=True)
        read = AnswerReader(method, idempotent=True)
        clients = read.structs(read.status_array(answer, 2)[1], "clients")
        return [readers.client_info(read, struct) for struct in clients]

    # --- orders -----------------------------------------------------------------------
    def upsert_order(
        self,
        balance_client_id: int,
        service_order_id: int,
        *,
        text: str | None = None,
        contract_id: int | None = None,
    ) -> None:
        """Create or update billy's order (service id, product from settings). Keyed by
        (service, service_order_id), so safe to repeat; its product and client never change
        (Balance refuses with INVALID_PARAM / CLIENT_ID_MISMATCH)."""
        order: dict[str, object] = {
            "ServiceID": self.service_id,
            "ServiceOrderID": service_order_id,
            "ClientID": balance_client_id,
            "ProductID": self.product_id,
        }
        if text is not None:
            order["Text"] = text
        if contract_id is not None:
            order["ContractID"] = contract_id
        method = "CreateOrUpdateOrdersBatch"
        answer = self._call(method, self._uid, [order], idempotent=True)
        read = AnswerReader(method, idempotent=True)
        rows = read.items(answer, "answer")
        if len(rows) != 1:
            read.bad(f"expected one [code, message] for one order, got {len(rows)}")
        row = read.items(rows[0], "answer[0]")
        if len(row) != 2:
            read.bad(f"expected [code, message], got {row!r:.200}")
        if row[0] != 0:  # a per-order error is a status, not a fault; it is a refusal all the same
            raise fault_from_text(str(row[1]), method=f"Balance2.{method}")

    def orders_info(self, service_order_ids: Iterable[int]) -> list[OrderInfo]:
        """The orders' cumulative figures (the truth to check a notification against);
        orders Balance does not know are left out."""
        keys = [{"ServiceID": self.service_id, "ServiceOrderID": oid} for oid in service_order_ids]
        method = "GetOrdersInfo"
        answer = self._call(method, keys, idempotent=True)
        read = AnswerReader(method, idempotent=True)
        return [readers.order_info(read, struct) for struct in read.structs(answer, "orders")]

    # --- payers -----------------------------------------------------------------------
    def create_person(
        self, balance_client_id: int, payer: Payer, person_id: int | None = None
    ) -> int:
        """Create a payer (person_id None: creates on every call, look with
        `client_persons`) or update one (safe to repeat); the person id.

        Balance checks the fields: MISSING_MANDATORY_PERSON_FIELD, INVALID_INN,
        WRONG_EMAIL, PERSON_TYPE_MISMATCH (an update cannot change ph <-> ur)."""
        struct: dict[str, object] = {"client_id": balance_client_id, **_payer_fields(payer)}
        if person_id is not None:
            struct["person_id"] = person_id
        method = "CreatePerson"
        idempotent = person_id is not None
        answer = self._call(method, self._uid, struct, idempotent=idempotent)
        return AnswerReader(method, idempotent=idempotent).int_value(answer, "person_id")

    def client_persons(self, balance_client_id: int) -> list[PayerInfo]:
        """The client's payers, oldest first."""
        method = "GetClientPersons"
        answer = self._call(method, balance_client_id, idempotent=True)
        read = AnswerReader(method, idempotent=True)
        return [readers.payer_info(read, struct) for struct in read.structs(answer, "persons")]

    # --- contracts --------------------------------------------------------------------
    def create_contract(
        self,
        balance_client_id: int,
        person_id: int,
        *,
        payment_type: PaymentType,
        currency: str = "RUB",
        start_date: dt.date | None = None,
        payment_term_days: int | None = None,
        credit_limit_minor: int | None = None,
        signed: bool = True,
    ) -> ContractRef:
        """An offer contract for billy's service with this payer. Creates on every call
        (look with `client_contracts`). Postpay needs `payment_term_days`; its credit limit
        is `credit_limit_minor` (Balance refuses a credit limit on prepay: INVALID_PARAM)."""
        struct: dict[str, object] = {
            "client_id": balance_client_id,
            "person_id": person_id,
            "currency": money.currency_to_balance(currency),
            "firm_id": self.firm_id,
            "services": [self.service_id],
            "payment_type": int(payment_type),
            "signed": 1 if signed else 0,
        }
        if start_date is not None:
            struct["start_dt"] = dt.datetime.combine(start_date, dt.time())
        if payment_term_days is not None:
            struct["payment_term"] = payment_term_days
        if credit_limit_minor is not None:
            limit_text = money.to_decimal_text(credit_limit_minor, currency, "credit_limit_minor")
            if credit_limit_minor < 0:
                raise BalanceValueError(
                    f"credit_limit_minor: must not be negative, got {credit_limit_minor}"
                )
            struct["credit_limit_single"] = limit_text
        method = "CreateOffer"
        answer = self._call(method, self._uid, struct, idempotent=False)
        read = AnswerReader(method, idempotent=False)
        ref = read.struct(answer, "answer")
        return ContractRef(
            contract_id=read.int_(ref, "ID"), external_id=read.str_(ref, "EXTERNAL_ID")
        )

    def client_contracts(self, balance_client_id: int) -> list[ContractInfo]:
        """The client's contracts, oldest first."""
        method = "GetClientContracts"
        answer = self._call(method, {"ClientID": balance_client_id}, idempotent=True)
        read = AnswerReader(method, idempotent=True)
        return [readers.contract_info(read, struct) for struct in read.structs(answer, "contracts")]

    def credit_limits(self, balance_client_id: int) -> CreditLimits:
        """The client's postpay credit limits for billy's product, in minor units."""
        method = "GetClientCreditLimits"
        answer = self._call(method, balance_client_id, self.product_id, idempotent=True)
        read = AnswerReader(method, idempotent=True)
        return readers.credit_limits(read, read.struct(answer, "answer"))

    # --- requests and invoices --------------------------------------------------------
    def create_request(
        self, balance_client_id: int, service_order_id: int, amount_minor: int, currency: str
    ) -> RequestRef:
        """A payment request for `amount_minor` on billy's order. Creates on every call
        (look with `client_requests`)."""
        money.positive_amount(amount_minor, "amount_minor")
        quantity = money.to_decimal_text(amount_minor, currency, "amount_minor")
        row = {"ServiceID": self.service_id, "ServiceOrderID": service_order_id, "Qty": quantity}
        method = "CreateRequest2"
        answer = self._call(method, self._uid, balance_client_id, [row], idempotent=False)
        read = AnswerReader(method, idempotent=False)
        return readers.request_ref(read, read.struct(answer, "answer"))

    def create_invoice(
        self,
        request_id: int,
        person_id: int,
        paysys_id: int,
        contract_id: int | None = None,
        credit: bool = False,
    ) -> int:
        """An invoice for a request, billed to a payer; its id. Creates on every call (look
        with `client_invoices`). `credit=True` against a postpay contract puts the money on
        the order at once and spends the credit limit (CONTRACT_RULE_VIOLATION beyond it)."""
        struct: dict[str, object] = {
            "RequestID": request_id,
            "PaysysID": paysys_id,
            "PersonID": person_id,
            "Credit": 1 if credit else 0,
        }
        if contract_id is not None:
            struct["ContractID"] = contract_id
        method = "CreateInvoice"
        answer = self._call(method, self._uid, struct, idempotent=False)
        return AnswerReader(method, idempotent=False).int_value(answer, "invoice_id")

    def client_requests(
        self, balance_client_id: int, service_order_id: int | None = None, currency: str = "RUB"
    ) -> list[RequestInfo]:
        """The client's requests (on one order, when given), oldest first, each with its
        invoices' ids; sums (which carry no currency of their own) read in `currency`.
        (The emulator's GetClientRequests; confirm the name on real Balance.)"""
        filters: dict[str, object] = {"ClientID": balance_client_id}
        if service_order_id is not None:
            filters.update(ServiceID=self.service_id, ServiceOrderID=service_order_id)
        method = "GetClientRequests"
        answer = self._call(method, filters, idempotent=True)
        read = AnswerReader(method, idempotent=True)
        return [
            readers.request_info(read, struct, currency)
            for struct in read.structs(answer, "requests")
        ]

    def client_invoices(
        self,
        balance_client_id: int,
        *,
        request_id: int | None = None,
        contract_id: int | None = None,
        service_order_id: int | None = None,
    ) -> list[InvoiceInfo]:
        """The client's invoices matching every filter given, oldest first. (The emulator's
        GetClientInvoices; confirm the name on real Balance.)"""
        filters: dict[str, object] = {"ClientID": balance_client_id}
        if request_id is not None:
            filters["RequestID"] = request_id
        if contract_id is not None:
            filters["ContractID"] = contract_id
        if service_order_id is not None:
            filters.update(ServiceID=self.service_id, ServiceOrderID=service_order_id)
        method = "GetClientInvoices"
        answer = self._call(method, filters, idempotent=True)
        read = AnswerReader(method, idempotent=True)
        return [readers.invoice_info(read, struct) for struct in read.structs(answer, "invoices")]

    # --- consumption and acts ---------------------------------------------------------
    def update_campaigns(
        self, reports: Sequence[ConsumptionReport], currency: str = "RUB"
    ) -> dict[int, bool]:
        """Report each order's cumulative consumed money up to `at` (totals, not deltas:
        safe to repeat). Per service order id, whether Balance took the report (it refuses
        a time in the future and an unknown order). Balance applies reports later."""
        if not reports:
            return {}
        if len(reports) > CAMPAIGN_REPORTS_MAX:
            raise BalanceValueError(
                f"reports: at most {CAMPAIGN_REPORTS_MAX} per call, got {len(reports)}"
            )
        campaigns = []
        for report in reports:
            total_text = money.to_decimal_text(report.consumed_minor, currency, "consumed_minor")
            if report.consumed_minor < 0:
                raise BalanceValueError(
                    f"consumed_minor: must not be negative, got {report.consumed_minor}"
                )
            campaigns.append(
                {
                    "ServiceID": self.service_id,
                    "ServiceOrderID": report.service_order_id,
                    "dt": to_moscow_naive(report.at, "at"),
                    "stop": 1 if report.stop else 0,
                    "Money": total_text,
                }
            )
        method = "UpdateCampaigns"
        answer = self._call(method, campaigns, idempotent=True)
        taken = readers.campaigns_taken(
            AnswerReader(method, idempotent=True), answer, self.service_id
        )
        for report in reports:  # an order Balance left out of its answer was not taken
            taken.setdefault(report.service_order_id, False)
        return taken

    def client_acts(self, balance_client_id: int, contract_id: int | None = None) -> list[Act]:
        """The client's acts (on one contract, when given), oldest first, in minor units."""
        filters: dict[str, object] = {"ClientID": balance_client_id}
        if contract_id is not None:
            filters["ContractID"] = contract_id
        method = "GetClientActs"
        answer = self._call(method, self._service_token, filters, idempotent=True)
        read = AnswerReader(method, idempotent=True)
        return [readers.act(read, struct) for struct in read.structs(answer, "acts")]

    # --- plumbing ---------------------------------------------------------------------
    def _call(self, method: str, *params: object, idempotent: bool) -> object:
        return self._transport.call(method, *params, idempotent=idempotent)


def _payer_fields(payer: Payer) -> dict[str, object]:
    """A payer as CreatePerson's lower_case fields; None fields are left out."""
    if isinstance(payer, IndividualPayer):
        fields: dict[str, str | None] = {
            "type": PayerKind.INDIVIDUAL.value,
            "lname": payer.last_name,
            "fname": payer.first_name,
            "mname": payer.middle_name,
            "phone": payer.phone,
            "email": payer.email,
        }
    elif isinstance(payer, LegalEntityPayer):
        fields = {
            "type": PayerKind.LEGAL_ENTITY.value,
            "name": payer.name,
            "longname": payer.long_name,
            "phone": payer.phone,
            "email": payer.email,
            "legaladdress": payer.legal_address,
            "postaddress": payer.post_address,
            "postcode": payer.post_code,
            "inn": payer.inn,
            "kpp": payer.kpp,
            "bik": payer.bik,
            "account": payer.account,
        }
    else:  # pragma: no cover - Payer is a closed union
        raise BalanceValueError(f"payer: not a payer: {type(payer).__name__}")
    return {key: value for key, value in fields.items() if value is not None}
