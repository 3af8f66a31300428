"""What the ledger core decides: a status and code, the double entries, the log lines.

Plain values shared by the core (which makes them) and the invariant checks (which verify
them); kept apart from both so neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from billy_core.results import Code, Status

__all__ = ["AppliedKind", "AppliedLine", "Decision", "Transfer"]


@dataclass(frozen=True, slots=True)
class Transfer:
    """One double entry: `amount_minor` (> 0) leaves `source` and reaches `target`.

    An account's balance is what it received minus what it sent.
    """

    source: str
    target: str
    amount_minor: int
    currency: str


class AppliedKind:
    CHARGE: Final = "CHARGE"
    REFUND: Final = "REFUND"


@dataclass(frozen=True, slots=True)
class AppliedLine:
    """A row of the applied-services log (`billy.applied-services`)."""

    kind: str  # AppliedKind.CHARGE | AppliedKind.REFUND
    product_id: str
    amount_minor: int
    currency: str
    refund_of: str | None  # the refunded Charge/ConfirmHold command_id, for REFUND


@dataclass(frozen=True, slots=True)
class Decision:
    status: Status
    code: Code
    message: str
    transfers: tuple[Transfer, ...] = ()
    applied: tuple[AppliedLine, ...] = ()
    details: dict[str, str] = field(default_factory=dict)
    # Only Balance can finish the command: the shell records an intent for the Balance
    # gateway and publishes no result yet (status APPLIED, code ok: what billy did so far).
    pending: bool = False
