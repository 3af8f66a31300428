"""Balance's answer structs -> billy's models, one function per kind of answer.

Each reads through an `AnswerReader`, so a missing or malformed field raises
BalanceBadAnswer naming the method and the field, and money that is not exact raises
BalanceValueError. The key casing is Balance's and differs per method (BALANCE.md).
"""

from __future__ import annotations

from collections.abc import Mapping

from billy_core.balance.answers import AnswerReader
from billy_core.balance.models import (
    Act,
    ActRow,
    BalanceClientInfo,
    ContractInfo,
    CreditLimit,
    CreditLimits,
    InvoiceInfo,
    OrderInfo,
    PayerInfo,
    PayerKind,
    PaymentType,
    RequestInfo,
    RequestRef,
    RequestRow,
)

Struct = Mapping[str, object]

# Where an answer names no currency, its money is in roubles: Balance's only currency for
# billy today (orders info, acts and request sums carry none in some versions).
DEFAULT_CURRENCY = "RUB"


def client_info(read: AnswerReader, struct: Struct) -> BalanceClientInfo:
    """FindClient / GetClientByIdBatch: UPPER_CASE keys."""
    return BalanceClientInfo(
        client_id=read.int_(struct, "CLIENT_ID"),
        name=read.str_(struct, "NAME"),
        email=read.opt_str(struct, "EMAIL"),
        phone=read.opt_str(struct, "PHONE"),
    )


def order_info(read: AnswerReader, struct: Struct) -> OrderInfo:
    """GetOrdersInfo: CamelCase ids, lower_case figures."""
    currency = (
        read.currency(struct, "consume_currency")
        if struct.get("consume_currency")
        else DEFAULT_CURRENCY
    )
    return OrderInfo(
        service_order_id=read.int_(struct, "ServiceOrderID"),
        consume_qty=read.decimal(struct, "consume_qty"),
        consume_sum_minor=read.opt_minor(struct, "consume_sum", currency),
        completion_qty=read.decimal(struct, "completion_qty"),
        completion_sum_minor=read.opt_minor(struct, "completion_sum", currency),
        currency=currency,
    )


def payer_info(read: AnswerReader, struct: Struct) -> PayerInfo:
    """GetClientPersons: UPPER_CASE keys, every value a string."""
    kind = read.str_(struct, "TYPE")
    if kind not in (PayerKind.INDIVIDUAL.value, PayerKind.LEGAL_ENTITY.value):
        read.bad(f"TYPE: expected ph or ur, got {kind!r:.20}")
    return PayerInfo(
        person_id=read.int_(struct, "ID"),
        client_id=read.int_(struct, "CLIENT_ID"),
        kind=PayerKind(kind),
        name=read.str_(struct, "NAME"),
        email=read.opt_str(struct, "EMAIL"),
        inn=read.opt_str(struct, "INN"),
    )


def contract_info(read: AnswerReader, struct: Struct) -> ContractInfo:
    """GetClientContracts: UPPER_CASE keys; currency RUR becomes RUB."""
    payment_type = read.int_(struct, "PAYMENT_TYPE")
    if payment_type not in (PaymentType.PREPAY, PaymentType.POSTPAY):
        read.bad(f"PAYMENT_TYPE: expected 2 or 3, got {payment_type}")
    return ContractInfo(
        contract_id=read.int_(struct, "ID"),
        external_id=read.str_(struct, "EXTERNAL_ID"),
        payment_type=PaymentType(payment_type),
        currency=read.currency(struct, "CURRENCY"),
        person_id=read.opt_int(struct, "PERSON_ID"),
        services=tuple(
            read.int_value(service, "SERVICES")
            for service in read.items(struct.get("SERVICES", []), "SERVICES")
        ),
        is_active=read.flag(struct, "IS_ACTIVE"),
        is_signed=read.flag(struct, "IS_SIGNED"),
        start_date=read.date(struct, "DT"),
        finish_date=read.date(struct, "FINISH_DT"),
    )


def credit_limits(read: AnswerReader, struct: Struct) -> CreditLimits:
    """GetClientCreditLimits: {CURRENCY, LIMITS: [{CONTRACT_ID, LIMIT_TOTAL, LIMIT_SPENT}],
    PRODUCT_PRICE}, money as decimal strings."""
    currency = read.currency(struct, "CURRENCY")
    limits = tuple(
        CreditLimit(
            contract_id=read.int_(limit, "CONTRACT_ID"),
            limit_total_minor=read.minor(limit, "LIMIT_TOTAL", currency),
            limit_spent_minor=read.minor(limit, "LIMIT_SPENT", currency),
        )
        for limit in read.structs(read.field(struct, "LIMITS"), "LIMITS")
    )
    return CreditLimits(
        currency=currency, limits=limits, product_price=read.opt_decimal(struct, "PRODUCT_PRICE")
    )


def request_ref(read: AnswerReader, struct: Struct) -> RequestRef:
    """CreateRequest2: {RequestID, UserPath, AdminPath}."""
    return RequestRef(
        request_id=read.int_(struct, "RequestID"),
        user_path=read.str_(struct, "UserPath"),
        admin_path=read.opt_str(struct, "AdminPath"),
    )


def request_info(read: AnswerReader, struct: Struct, currency: str) -> RequestInfo:
    """GetClientRequests: CamelCase keys; sums carry no currency, so `currency` is given."""
    rows = tuple(
        RequestRow(
            service_order_id=read.int_(row, "ServiceOrderID"),
            quantity=read.decimal(row, "Qty"),
            amount_minor=read.minor(row, "Sum", currency),
        )
        for row in read.structs(struct.get("Rows", []), "Rows")
    )
    return RequestInfo(
        request_id=read.int_(struct, "RequestID"),
        created_at=read.moment(struct, "DT"),
        total_minor=read.minor(struct, "TotalSum", currency),
        user_path=read.opt_str(struct, "UserPath"),
        rows=rows,
        invoice_ids=tuple(
            read.int_value(invoice_id, "InvoiceIDs")
            for invoice_id in read.items(struct.get("InvoiceIDs", []), "InvoiceIDs")
        ),
    )


def invoice_info(read: AnswerReader, struct: Struct) -> InvoiceInfo:
    """GetClientInvoices: UPPER_CASE keys."""
    currency = read.currency(struct, "CURRENCY")
    return InvoiceInfo(
        invoice_id=read.int_(struct, "ID"),
        external_id=read.str_(struct, "EXTERNAL_ID"),
        request_id=read.int_(struct, "REQUEST_ID"),
        person_id=read.int_(struct, "PERSON_ID"),
        contract_id=read.opt_int(struct, "CONTRACT_ID"),
        paysys_id=read.int_(struct, "PAYSYS_ID"),
        credit=read.flag(struct, "CREDIT"),
        total_minor=read.minor(struct, "TOTAL_SUM", currency),
        receipt_minor=read.minor(struct, "RECEIPT_SUM", currency),
        currency=currency,
        status=read.str_(struct, "STATUS"),
        created_at=read.moment(struct, "DT"),
    )


def act(read: AnswerReader, struct: Struct) -> Act:
    """GetClientActs: UPPER_CASE keys, rows with SERVICE_ORDER_ID, QTY, AMOUNT."""
    currency = read.currency(struct, "CURRENCY") if struct.get("CURRENCY") else DEFAULT_CURRENCY
    act_date = read.date(struct, "DT")
    if act_date is None:
        read.bad("DT: an act without a date")
    return Act(
        act_id=read.int_(struct, "ID"),
        external_id=read.str_(struct, "EXTERNAL_ID"),
        date=act_date,
        contract_id=read.opt_int(struct, "CONTRACT_ID"),
        amount_minor=read.minor(struct, "AMOUNT", currency),
        amount_nds_minor=read.minor(struct, "AMOUNT_NDS", currency),
        paid_amount_minor=read.minor(struct, "PAID_AMOUNT", currency),
        currency=currency,
        rows=tuple(
            ActRow(
                service_order_id=read.int_(row, "SERVICE_ORDER_ID"),
                product_id=read.opt_int(row, "PRODUCT_ID"),
                quantity=read.decimal(row, "QTY"),
                amount_minor=read.minor(row, "AMOUNT", currency),
                amount_nds_minor=read.minor(row, "AMOUNT_NDS", currency),
            )
            for row in read.structs(struct.get("ROWS", []), "ROWS")
        ),
    )


def campaigns_taken(read: AnswerReader, answer: object, service_id: int) -> dict[int, bool]:
    """UpdateCampaigns: {"<service id>": {"<service order id>": 1 or 0}} -> for billy's
    service, {service order id: taken}."""
    by_service = read.struct(answer, "answer")
    ours = read.struct(by_service.get(str(service_id), {}), f"answer[{service_id}]")
    return {
        read.int_value(order_key, "ServiceOrderID"): flag in (1, "1", True)
        for order_key, flag in ours.items()
    }
