"""The one retry policy: bounded exponential backoff for transient trouble (tenacity).

Two shapes, one policy:
- `transient(role, ...)`: a tenacity `Retrying` for blocking loops (wait for PostgreSQL at
  assignment, the relay's fetch, the sweeper). Only `TransientError`s and driver errors that
  `billy_core.db.classify` calls transient are retried; anything else propagates at once.
- `backoff_s(attempt)`: the same wait as a number, for loops that must not block (the
  engine pauses one partition and keeps polling the others).

`sleep` and the clock are injectable so tests run without waiting.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

import tenacity

from billy_core import limits, metrics
from billy_core.db import is_transient

log = logging.getLogger("billy.retry")


def backoff_s(attempt: int, max_s: float = limits.RETRY_BACKOFF_MAX_S) -> float:
    """Seconds to wait before attempt `attempt + 1` (attempt >= 1), capped at `max_s`.

    The wait of tenacity's `wait_exponential(multiplier=MIN, min=MIN, max=MAX)` (MIN, MAX:
    limits.RETRY_BACKOFF_MIN_S/_MAX_S), computed the same way without a retry state.
    """
    lo, hi = limits.RETRY_BACKOFF_MIN_S, limits.RETRY_BACKOFF_MAX_S
    exponent = max(1, attempt) - 1
    if exponent > math.log(hi, 2) - math.log(lo, 2):
        wait = hi  # past the cap: skip the power, which overflows for a huge attempt count
    else:
        wait = max(lo, min(lo * 2**exponent, hi))
    return min(max_s, wait)


def transient(
    role: str,
    what: str,
    *,
    deadline_s: float | None = None,
    max_wait_s: float = limits.RETRY_BACKOFF_MAX_S,
    stop_event: threading.Event | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tenacity.Retrying:
    """Retry transient trouble while `what` fails: until `deadline_s` (None: no deadline) or
    until `stop_event` is set (then the last error propagates)."""

    def before_sleep(state: tenacity.RetryCallState) -> None:
        metrics.db_retries.labels(role).inc()
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        log.warning("%s: %s failed (%s); retrying", role, what, error)

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_transient),
        wait=tenacity.wait_exponential(
            multiplier=limits.RETRY_BACKOFF_MIN_S, min=limits.RETRY_BACKOFF_MIN_S, max=max_wait_s
        ),
        stop=_stop(deadline_s, stop_event),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )


def _stop(deadline_s: float | None, event: threading.Event | None) -> tenacity.stop.stop_base:
    stops: list[tenacity.stop.stop_base] = []
    if deadline_s is not None:
        stops.append(tenacity.stop_after_delay(deadline_s))
    if event is not None:
        stops.append(tenacity.stop_when_event_set(event))
    return tenacity.stop_any(*stops) if stops else tenacity.stop_never
