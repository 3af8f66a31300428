"""What the Balance adapter returns and takes, in billy's words: ids are ints, money is int
minor units with a currency, quantities are exact Decimals, dates are dates."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from enum import IntEnum, StrEnum


@dataclass(frozen=True, slots=True)
class BalanceClientInfo:
    """A Balance client as `find_clients` and `get_clients` see it."""

    client_id: int
    name: str
    email: str | None
    phone: str | None


@dataclass(frozen=True, slots=True)
class IndividualPayer:
    """A payer who is a person (Balance person type `ph`)."""

    last_name: str
    first_name: str
    middle_name: str | None
    phone: str
    email: str


@dataclass(frozen=True, slots=True)
class LegalEntityPayer:
    """A payer that is a company (Balance person type `ur`); Balance checks the INN."""

    name: str
    long_name: str
    phone: str
    email: str
    legal_address: str
    post_address: str
    post_code: str
    inn: str
    kpp: str | None = None
    bik: str | None = None
    account: str | None = None


Payer = IndividualPayer | LegalEntityPayer


class PayerKind(StrEnum):
    INDIVIDUAL = "ph"
    LEGAL_ENTITY = "ur"


@dataclass(frozen=True, slots=True)
class PayerInfo:
    """A payer (person) of a client as Balance keeps it."""

    person_id: int
    client_id: int
    kind: PayerKind
    name: str
    email: str | None
    inn: str | None


class PaymentType(IntEnum):
    """A contract's payment type, with Balance's numbers."""

    PREPAY = 2
    POSTPAY = 3


@dataclass(frozen=True, slots=True)
class ContractRef:
    contract_id: int
    external_id: str


@dataclass(frozen=True, slots=True)
class ContractInfo:
    """A client's contract as `client_contracts` returns it; `currency` in billy's spelling."""

    contract_id: int
    external_id: str
    payment_type: PaymentType
    currency: str
    person_id: int | None
    services: tuple[int, ...]
    is_active: bool
    is_signed: bool
    start_date: dt.date | None
    finish_date: dt.date | None


@dataclass(frozen=True, slots=True)
class RequestRef:
    """A payment request: its id and the payment page the client is sent to."""

    request_id: int
    user_path: str
    admin_path: str | None


@dataclass(frozen=True, slots=True)
class CreditLimit:
    contract_id: int
    limit_total_minor: int
    limit_spent_minor: int

    @property
    def available_minor(self) -> int:
        """What may still be moved onto the order (never below zero)."""
        return max(self.limit_total_minor - self.limit_spent_minor, 0)


@dataclass(frozen=True, slots=True)
class CreditLimits:
    """A client's postpay credit limits for one product, in minor units of `currency`."""

    currency: str
    limits: tuple[CreditLimit, ...]
    product_price: Decimal | None

    def for_contract(self, contract_id: int) -> CreditLimit | None:
        return next((limit for limit in self.limits if limit.contract_id == contract_id), None)


@dataclass(frozen=True, slots=True)
class OrderInfo:
    """An order's cumulative figures: what `GetOrdersInfo` says is true right now.

    Quantities are in the product's units (exact Decimals). The sums are money in minor
    units of `currency` (None when Balance did not send them): `consume_sum_minor` is what
    was put on the order (paid or credited), `completion_sum_minor` what was reported spent.
    """

    service_order_id: int
    consume_qty: Decimal
    consume_sum_minor: int | None
    completion_qty: Decimal
    completion_sum_minor: int | None
    currency: str


@dataclass(frozen=True, slots=True)
class ConsumptionReport:
    """One order's cumulative consumed money up to `at` (UpdateCampaigns takes totals)."""

    service_order_id: int
    at: dt.datetime
    consumed_minor: int
    stop: bool = False


@dataclass(frozen=True, slots=True)
class ActRow:
    service_order_id: int
    product_id: int | None
    quantity: Decimal
    amount_minor: int
    amount_nds_minor: int


@dataclass(frozen=True, slots=True)
class Act:
    """A monthly act Balance made from the reported consumption, dated the month's last day."""

    act_id: int
    external_id: str
    date: dt.date
    contract_id: int | None
    amount_minor: int
    amount_nds_minor: int
    paid_amount_minor: int
    currency: str
    rows: tuple[ActRow, ...]


@dataclass(frozen=True, slots=True)
class RequestRow:
    service_order_id: int
    quantity: Decimal
    amount_minor: int


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """A payment request as Balance lists it: what an unclear `create_request` made."""

    request_id: int
    created_at: dt.datetime | None
    total_minor: int
    user_path: str | None
    rows: tuple[RequestRow, ...]
    invoice_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class InvoiceInfo:
    """An invoice as Balance lists it: what an unclear `create_invoice` made."""

    invoice_id: int
    external_id: str
    request_id: int
    person_id: int
    contract_id: int | None
    paysys_id: int
    credit: bool
    total_minor: int
    receipt_minor: int
    currency: str
    status: str
    created_at: dt.datetime | None
