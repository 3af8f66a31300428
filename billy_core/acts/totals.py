"""Which cumulative totals need a new report. Pure.

A report carries a client's whole revenue so far (cumulative), so it is needed only when
that total differs from the client's latest report (of any month); a client Balance does not
know yet (no order) is left until it does. A negative total would mean refunds above the
charges they refund: the ledger forbids it, so it is an invariant broken, not a report.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TypeVar

__all__ = ["InvariantBroken", "to_report"]

K = TypeVar("K", bound=Hashable)


class InvariantBroken(RuntimeError):
    """The ledger's revenue from a client is negative."""


def to_report(
    totals: Mapping[K, int], latest: Mapping[K, int], reportable: Mapping[K, object]
) -> list[K]:
    """Keys of `totals` (cumulative revenue per client) whose total is new: not equal to
    their `latest` reported total (0 when never reported), among the `reportable` ones."""
    found = []
    for key, total in totals.items():
        if total < 0:
            raise InvariantBroken(f"revenue of {key!r} is negative: {total}")
        if key in reportable and latest.get(key, 0) != total:
            found.append(key)
    return found
