"""Response models of the read API (pydantic 2). Money is an integer of minor units with its
ISO 4217 currency, never a float; times are ISO 8601 in UTC, with the exact integer
milliseconds beside them where billy stores them so. Names and emails are never here."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AppliedService",
    "AppliedServicesPage",
    "BalanceContract",
    "BalanceInvoice",
    "BalancePayer",
    "BalanceView",
    "ClientActs",
    "Health",
    "Hold",
    "Holds",
    "Problem",
    "Wallet",
]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Wallet(_Out):
    tenant: str
    client_id: str
    currency: str = Field(description="ISO 4217; a wallet has one currency")
    available_minor: int = Field(description="Spendable money, minor units (kopecks)")
    held_minor: int = Field(description="Money in open holds, minor units")
    version: int = Field(description="Grows by one with every change of the wallet")
    updated_at: datetime


class Hold(_Out):
    hold_id: str
    product_id: str
    amount_minor: int
    currency: str
    expires_at: datetime
    expires_at_ms: int = Field(description="expires_at as milliseconds since the epoch")
    created_at: datetime


class Holds(_Out):
    tenant: str
    client_id: str
    holds: list[Hold] = Field(description="Open holds, soonest expiry first")


class AppliedService(_Out):
    command_id: str
    kind: Literal["CHARGE", "REFUND"]
    product_id: str
    amount_minor: int = Field(description="Always positive; a REFUND gives money back")
    currency: str
    refund_of: str | None = Field(description="For a REFUND: the command_id it refunds")
    applied_at: datetime
    applied_at_ms: int = Field(description="applied_at as milliseconds since the epoch")


class AppliedServicesPage(_Out):
    tenant: str
    client_id: str
    items: list[AppliedService] = Field(description="Oldest first")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page"
    )


class BalancePayer(_Out):
    payer_id: str = Field(description="billy's payer id (UpsertPayer)")
    balance_person_id: int
    kind: Literal["ph", "ur"] = Field(description="ph: an individual, ur: a legal entity")


class BalanceContract(_Out):
    contract_id: str = Field(description="billy's contract id (UpsertContract)")
    balance_contract_id: int
    external_id: str
    payer_id: str
    payment_type: Literal["prepay", "postpay"]
    credit_limit_minor: int | None
    currency: str
    payment_term_days: int | None


class BalanceInvoice(_Out):
    command_id: str = Field(description="The RequestInvoice or TransferCredit that made it")
    invoice_id: int
    request_id: int
    kind: Literal["prepay", "credit"]
    amount_minor: int
    currency: str
    payer_id: str
    contract_id: str | None
    payment_link: str | None = Field(description="Balance's payment page (prepay)")
    status: str = Field(
        description="unpaid, paid (a payment of exactly its amount arrived) or credited"
    )
    created_at: datetime


class BalanceView(_Out):
    """What Balance holds for the client, as billy applied it (results already published)."""

    tenant: str
    client_id: str
    status: Literal["registered", "failed", "pending"] = Field(
        description="pending: Balance has not answered the registration yet"
    )
    balance_client_id: int | None
    service_order_id: int | None
    payers: list[BalancePayer]
    contracts: list[BalanceContract]
    invoices: list[BalanceInvoice] = Field(description="Oldest first, at most 1000")


class Act(_Out):
    """A monthly act Balance made from billy's consumption reports, as imported."""

    act_id: int
    external_id: str
    month: str = Field(description="YYYY-MM, in Balance's time zone (Moscow)")
    act_date: date = Field(description="The month's last day")
    contract_id: int | None
    amount_minor: int = Field(description="VAT included")
    amount_nds_minor: int
    paid_amount_minor: int
    currency: str
    imported_at: datetime
    reconciliation_status: Literal["matched", "differs", "no_act", "not_reconciled"] = Field(
        description="Its month's reconciliation against billy's ledger"
    )


class ReconciledMonth(_Out):
    month: str
    currency: str
    act_minor: int = Field(description="Sum of the month's acts (0 when there is none)")
    ledger_minor: int = Field(description="billy's revenue from the client in the month")
    difference_minor: int = Field(description="act_minor - ledger_minor")
    act_count: int
    status: Literal["matched", "differs", "no_act"]
    revision: int
    checked_at: datetime


class ClientActs(_Out):
    tenant: str
    client_id: str
    acts: list[Act] = Field(description="Newest month first")
    reconciliations: list[ReconciledMonth] = Field(description="Newest month first")


class Adjustment(_Out):
    command_id: str
    amount_minor: int = Field(description="Signed: > 0 credited the wallet, < 0 debited it")
    currency: str
    operator: str = Field(description="Who on the billing team made the correction")
    reason: str
    applied_at: datetime
    applied_at_ms: int = Field(description="applied_at as milliseconds since the epoch")


class Payment(_Out):
    command_id: str = Field(description="The payment's Result id: billy-payment:<order>:<tid>")
    amount_minor: int = Field(description="> 0: credited to the wallet")
    currency: str
    service_order_id: int
    tid: str = Field(description="Balance's notification Tid (digits)")
    order_sum_minor: int = Field(description="The order's total in Balance, as confirmed")
    invoice_id: int | None = Field(description="The invoice paid, when one matched exactly")
    received_at: datetime
    received_at_ms: int


class Payments(_Out):
    tenant: str
    client_id: str
    payments: list[Payment] = Field(description="Oldest first, at most 1000")


class Adjustments(_Out):
    tenant: str
    client_id: str
    items: list[Adjustment] = Field(description="The audit trail, oldest first")


class Health(_Out):
    status: Literal["ok", "unavailable"]


class Problem(_Out):
    detail: str
