"""One client's month: Balance's acts against billy's ledger. Pure.

difference = act amount - ledger amount (minor units). Zero: `matched`. Not zero: `differs`
(Balance billed more when positive, less when negative), or `no_act` when Balance made no
act for a month in which the ledger took revenue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Outcome", "Status", "reconcile"]


class Status(StrEnum):
    MATCHED = "matched"
    DIFFERS = "differs"
    NO_ACT = "no_act"


@dataclass(frozen=True, slots=True)
class Outcome:
    act_minor: int
    ledger_minor: int
    difference_minor: int
    act_count: int
    status: Status


def reconcile(act_amounts_minor: Sequence[int], ledger_minor: int) -> Outcome:
    """The acts of one client and month (there may be several, one per contract, or none)
    against the ledger's revenue of that month."""
    act_minor = sum(act_amounts_minor)
    difference = act_minor - ledger_minor
    if difference == 0:
        status = Status.MATCHED
    elif not act_amounts_minor:
        status = Status.NO_ACT
    else:
        status = Status.DIFFERS
    return Outcome(act_minor, ledger_minor, difference, len(act_amounts_minor), status)
