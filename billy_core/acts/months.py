"""Balance months as instants, and the reporter's steps through them. Pure.

Balance dates acts by the month in its own time zone (Moscow, UTC+3 all year): the act of
2026-11 covers consumption reported with a `dt` from 2026-11-01 00:00 to 2026-11-30
23:59:59 Moscow time, i.e. from 2026-10-31 21:00 UTC to 2026-11-30 21:00 UTC. billy counts a
charge in the month its ledger transaction applied it (`transfers.created_at`, stored in
UTC) falls in, with those same boundaries, so a month's ledger figure and its act cover the
same instants.

The reporter counts revenue up to a cutoff and reports it dated one second before the
cutoff. Cutoffs are whole seconds and never step over a month boundary: a step that would
cross one stops at it, so every month ends with a report of exactly that month's total,
dated its last second.
"""

from __future__ import annotations

import datetime as dt
import re

from billy_core.balance.answers import MOSCOW

__all__ = [
    "BALANCE_TZ",
    "month_bounds",
    "month_of",
    "next_cutoff",
    "parse_month",
    "previous_month",
    "report_dt",
]

BALANCE_TZ = MOSCOW
_MONTH = re.compile(r"^([0-9]{4})-([0-9]{2})$")


def parse_month(text: str) -> str:
    """'YYYY-MM' checked; ValueError naming the field otherwise."""
    match = _MONTH.match(text) if isinstance(text, str) else None
    if match is None or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 2000:
        raise ValueError(f"month: expected YYYY-MM (2000 or later), got {text!r}")
    return text


def month_of(moment: dt.datetime) -> str:
    """The Balance month ('YYYY-MM') an aware instant falls in."""
    _require_aware(moment)
    local = moment.astimezone(BALANCE_TZ)
    return f"{local.year:04d}-{local.month:02d}"


def month_bounds(month: str) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a Balance month as aware UTC instants."""
    parse_month(month)
    year, number = int(month[:4]), int(month[5:])
    start = dt.datetime(year, number, 1, tzinfo=BALANCE_TZ)
    end = dt.datetime(year + number // 12, number % 12 + 1, 1, tzinfo=BALANCE_TZ)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def previous_month(month: str) -> str:
    start, _ = month_bounds(month)
    return month_of(start - dt.timedelta(seconds=1))


def next_cutoff(counted_until: dt.datetime, now: dt.datetime, settle_s: float) -> dt.datetime:
    """The reporter's next cutoff: `now - settle_s` floored to a whole second, but never past
    the first month boundary after `counted_until`, and never before `counted_until`."""
    _require_aware(counted_until)
    _require_aware(now)
    target = (now - dt.timedelta(seconds=settle_s)).replace(microsecond=0)
    _, boundary = month_bounds(month_of(counted_until))
    return max(counted_until, min(target, boundary))


def report_dt(cutoff: dt.datetime) -> dt.datetime:
    """The `dt` of a report of revenue counted before `cutoff` (a whole second): one second
    earlier, so a report made at a month boundary is dated the month's last second."""
    _require_aware(cutoff)
    if cutoff.microsecond:
        raise ValueError(f"cutoff: must be a whole second, got {cutoff.isoformat()}")
    return cutoff - dt.timedelta(seconds=1)


def _require_aware(moment: dt.datetime) -> None:
    if moment.tzinfo is None:
        raise ValueError(f"expected an aware instant, got naive {moment.isoformat()}")
