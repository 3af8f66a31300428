"""Everything a Balance call can raise, as one exception tree.

    BalanceError                    (billy_core.errors.BillyError)
    ├── BalanceFault                Balance refused: code, message, method; nothing was done
    ├── BalanceUnavailable          (also TransientError) never reached Balance; nothing was done
    │   └── BalanceCircuitOpen      refused here while the breaker is open; nothing was sent
    ├── BalanceOutcomeUnknown       sent, but no answer was read: the work may have been done
    │   └── BalanceBadAnswer        an answer came that this adapter cannot read
    └── BalanceValueError           (also ValueError) a value that cannot cross the boundary

What each means for the caller (the gateway decides about retries, not this package):

- `BalanceFault` is a definite answer. Balance rolls its transaction back on a fault, so a
  fault means "not done"; retrying the same call gets the same fault.
- `BalanceUnavailable` is a definite "not done": the connection failed before the request
  was sent. Any call may be repeated.
- `BalanceOutcomeUnknown` is the dangerous one: the request went out and the answer was lost
  (a read timeout, a reset, a 5xx, an unreadable body). A call that creates something on
  every call (`create_client`, `create_person` without a person id, `create_request`,
  `create_invoice`) must not be repeated before finding out what happened.
- `BalanceValueError` raised before a call means nothing was sent; raised while reading an
  answer it means the call was made (reads only do this) and the answer held a value billy
  cannot represent exactly, such as a sub-kopeck amount.

`retry_is_safe(error)` says whether repeating the same call blindly can do no harm.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from billy_core.errors import BillyError, TransientError


class FaultCode(StrEnum):
    """The fault codes Balance is known to send (BALANCE.md); UNKNOWN for any other."""

    INVALID_PARAM = "INVALID_PARAM"
    NOT_FOUND = "NOT_FOUND"
    CLIENT_NOT_FOUND = "CLIENT_NOT_FOUND"
    PERSON_NOT_FOUND = "PERSON_NOT_FOUND"
    REQUEST_NOT_FOUND = "REQUEST_NOT_FOUND"
    INVOICE_NOT_FOUND = "INVOICE_NOT_FOUND"
    WRONG_EMAIL = "WRONG_EMAIL"
    INVALID_INN = "INVALID_INN"
    MISSING_MANDATORY_PERSON_FIELD = "MISSING_MANDATORY_PERSON_FIELD"
    PERSON_TYPE_MISMATCH = "PERSON_TYPE_MISMATCH"
    CLIENT_ID_MISMATCH = "CLIENT_ID_MISMATCH"
    ORDERS_NOT_SYNCHRONIZED = "ORDERS_NOT_SYNCHRONIZED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    CONTRACT_RULE_VIOLATION = "CONTRACT_RULE_VIOLATION"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def parse(cls, raw: str | None) -> FaultCode:
        try:
            return cls(raw) if raw else cls.UNKNOWN
        except ValueError:
            return cls.UNKNOWN


class BalanceError(BillyError):
    """Base of every error raised by the Balance adapter."""

    def __init__(self, message: str, *, method: str | None = None) -> None:
        super().__init__(message)
        self.method = method
        """The XML-RPC method (`Balance2.CreateClient`), when a call was being made."""


class BalanceFault(BalanceError):
    """Balance refused the call (an XML-RPC fault, or an error row in a status array).

    `code` is the parsed code (UNKNOWN when Balance sent another or none; `raw_code` keeps
    its text); `parent_codes` are Balance's more general codes (CLIENT_NOT_FOUND has
    NOT_FOUND); `context` holds the other tags of the fault (`object-id`, `field`, ...).
    """

    def __init__(
        self,
        *,
        code: FaultCode,
        message: str,
        method: str | None,
        raw_code: str | None = None,
        parent_codes: tuple[str, ...] = (),
        contents: str | None = None,
        context: Mapping[str, str] | None = None,
        fault_string: str = "",
    ) -> None:
        super().__init__(
            f"{method or 'Balance'}: {raw_code or code.value}: {message}", method=method
        )
        self.code = code
        self.raw_code = raw_code
        self.message = message
        self.parent_codes = parent_codes
        self.contents = contents
        self.context: Mapping[str, str] = dict(context or {})
        self.fault_string = fault_string

    def is_a(self, code: FaultCode) -> bool:
        """True when `code` is this fault's code or one of its parent codes."""
        return self.code is code or code.value in self.parent_codes


class BalanceUnavailable(BalanceError, TransientError):
    """Balance was not reached (refused, unresolvable, connect timeout): nothing was sent."""


class BalanceCircuitOpen(BalanceUnavailable):
    """The circuit breaker refused the call after repeated failures; nothing was sent."""

    def __init__(self, message: str, *, retry_after_s: float, method: str | None = None) -> None:
        super().__init__(message, method=method)
        self.retry_after_s = retry_after_s
        """Seconds until the breaker lets a trial call through (0 while another trial runs)."""


class BalanceOutcomeUnknown(BalanceError):
    """The request was sent but no answer was read: Balance may or may not have done the work.

    `idempotent` says whether the method is safe to call again as it was (reads, upserts by
    a key billy chose); for the others, find out what happened first.
    """

    def __init__(self, message: str, *, method: str | None = None, idempotent: bool = False):
        super().__init__(message, method=method)
        self.idempotent = idempotent


class BalanceBadAnswer(BalanceOutcomeUnknown):
    """Balance answered, but not in a shape this adapter can read (HTTP error, bad XML,
    a missing field); what it did is unknown to billy."""


class BalanceValueError(BalanceError, ValueError):
    """A value that cannot cross the boundary exactly (a sub-kopeck amount, an amount out of
    bounds, an unknown currency, an int too large for XML-RPC); the message names the field."""


def retry_is_safe(error: BaseException) -> bool:
    """True when repeating the same call blindly cannot do harm (it was not done, or doing it
    twice is the same as once). A fault is not worth repeating: the answer will not change.
    A circuit-open error is safe, but only after `retry_after_s`."""
    if isinstance(error, BalanceUnavailable):
        return True
    if isinstance(error, BalanceOutcomeUnknown):
        return error.idempotent
    return False
