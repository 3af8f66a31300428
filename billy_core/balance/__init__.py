"""The Balance adapter: the only code in billy that knows XML-RPC or Balance's field names.

    from billy_core.balance import BalanceClient
    balance = BalanceClient.from_settings(settings)
    client_id = balance.create_client("Ivan", "ivan@example.com")

Modules: `client` (the methods, in billy's words), `models` (what they take and return),
`errors` (the exception tree, drawn there), `money` (decimal strings <-> minor units: the
rounding rule is there: exact or refused), `transport` (HTTP, timeouts, classification),
`breaker` (the circuit breaker), `faults`, `answers` and `readers` (reading Balance's
replies).
"""

from billy_core.balance.breaker import BreakerState, CircuitBreaker
from billy_core.balance.client import BalanceClient
from billy_core.balance.errors import (
    BalanceBadAnswer,
    BalanceCircuitOpen,
    BalanceError,
    BalanceFault,
    BalanceOutcomeUnknown,
    BalanceUnavailable,
    BalanceValueError,
    FaultCode,
    retry_is_safe,
)
from billy_core.balance.models import (
    Act,
    ActRow,
    BalanceClientInfo,
    ConsumptionReport,
    ContractInfo,
    ContractRef,
    CreditLimit,
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
    RequestRow,
)
from billy_core.balance.transport import CallObserver, CallOutcome, XmlRpcTransport

__all__ = [
    "Act",
    "ActRow",
    "BalanceBadAnswer",
    "BalanceCircuitOpen",
    "BalanceClient",
    "BalanceClientInfo",
    "BalanceError",
    "BalanceFault",
    "BalanceOutcomeUnknown",
    "BalanceUnavailable",
    "BalanceValueError",
    "BreakerState",
    "CallObserver",
    "CallOutcome",
    "CircuitBreaker",
    "ConsumptionReport",
    "ContractInfo",
    "ContractRef",
    "CreditLimit",
    "CreditLimits",
    "FaultCode",
    "IndividualPayer",
    "InvoiceInfo",
    "LegalEntityPayer",
    "OrderInfo",
    "Payer",
    "PayerInfo",
    "PayerKind",
    "PaymentType",
    "RequestInfo",
    "RequestRef",
    "RequestRow",
    "XmlRpcTransport",
    "retry_is_safe",
]
