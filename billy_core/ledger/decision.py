"""What the ledger core decides: a status and code, the double entries, the log lines.

Plain values shared by the core (which makes them) and the invariant checks (which verify
them); kept apart from both so neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from billy_core.results import Code, Status

__all__ = ["AppliedKind", "AppliedLine", "Decision", "Transfer"]


@dataclass(slots=True, init=False, unsafe_hash=True)
class Transfer:
    """One double entry: `amount_minor` (> 0) leaves `source` and reaches `target`.

    An account's balance is what it received minus what it sent.
    """

    # A hot-path value: explicit __init__, Final fields (billy_core.compiled, "Values").
    source: Final[str]
    target: Final[str]
    amount_minor: Final[int]
    currency: Final[str]

    def __init__(
        self,
        source: str,
        target: str,
        amount_minor: int,
        currency: str,
    ) -> None:
        self.source = source
        self.target = target
        self.amount_minor = amount_minor
        self.currency = currency


class AppliedKind:
    CHARGE: Final = "CHARGE"
    REFUND: Final = "REFUND"


@dataclass(slots=True, init=False, unsafe_hash=True)
class AppliedLine:
    """A row of the applied-services log (`billy.applied-services`)."""

    # A hot-path value: explicit __init__, Final fields (billy_core.compiled, "Values").
    kind: Final[str]  # AppliedKind.CHARGE | AppliedKind.REFUND
    product_id: Final[str]
    amount_minor: Final[int]
    currency: Final[str]
    refund_of: Final[str | None]  # the refunded Charge/ConfirmHold command_id, for REFUND

    def __init__(
        self,
        kind: str,
        product_id: str,
        amount_minor: int,
        currency: str,
        refund_of: str | None,
    ) -> None:
        self.kind = kind
        self.product_id = product_id
        self.amount_minor = amount_minor
        self.currency = currency
        self.refund_of = refund_of


@dataclass(slots=True, init=False, unsafe_hash=True)
class Decision:
    # A hot-path value: explicit __init__, Final fields (billy_core.compiled, "Values").
    status: Final[Status]
    code: Final[Code]
    message: Final[str]
    transfers: Final[tuple[Transfer, ...]]
    applied: Final[tuple[AppliedLine, ...]]
    details: Final[dict[str, str]]
    # Only Balance can finish the command: the shell records an intent for the Balance
    # gateway and publishes no result yet (status APPLIED, code ok: what billy did so far).
    pending: Final[bool]

    def __init__(
        self,
        status: Status,
        code: Code,
        message: str,
        transfers: tuple[Transfer, ...] = (),
        applied: tuple[AppliedLine, ...] = (),
        details: dict[str, str] | None = None,
        pending: bool = False,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.transfers = transfers
        self.applied = applied
        self.details = {} if details is None else details
        self.pending = pending
