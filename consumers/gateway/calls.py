"""One Balance call with the gateway's bounded retries, its result sorted for the flows.

    call(fn, creates=False)  -> the answer, retried while repeating it is harmless
    call(fn, creates=True)   -> the answer; an unclear outcome raises Unclear (find out first)

What comes out besides an answer:

- `Refused`: Balance refused for good (a fault with a known code such as INVALID_INN or
  CONTRACT_RULE_VIOLATION, or a value billy cannot send). Nothing was done; the command is
  answered with Balance's code and message.
- `Unclear`: a call that creates something on every call was sent and no answer came: the
  flow must find out what Balance did before calling again.
- `Later`: Balance stayed unreachable (or answered faults that mean "try again", such as
  INTERNAL_ERROR) through every attempt. Nothing unclear is pending from this call; the
  request is tried again later with the progress it has.

Retries use tenacity with bounded attempts and exponential waits; `sleep` is injectable.
A breaker that is open is waited out (its `retry_after_s`, bounded) as one attempt.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import tenacity

from billy_core.balance import (
    BalanceCircuitOpen,
    BalanceError,
    BalanceFault,
    BalanceOutcomeUnknown,
    BalanceUnavailable,
    BalanceValueError,
    FaultCode,
)

T = TypeVar("T")

# Faults that mean "nothing was done, and it may work next time": Balance's internal errors
# (any code billy does not know) and an order not yet synchronised for a request.
_RETRYABLE_FAULTS = frozenset({FaultCode.UNKNOWN, FaultCode.ORDERS_NOT_SYNCHRONIZED})
_OPEN_BREAKER_WAIT_MAX_S = 5.0


class Refused(Exception):
    """Balance refused for good; `error` is the BalanceFault or BalanceValueError."""

    def __init__(self, error: BalanceError) -> None:
        super().__init__(str(error))
        self.error = error


class Unclear(Exception):
    """A creating call's outcome is unknown: find out before calling again."""


class Later(Exception):
    """Balance is unreachable for now (or an unclear call must settle): try the request again
    after at least `delay_s` (0: the usual backoff)."""

    def __init__(self, message: str, *, delay_s: float = 0.0) -> None:
        super().__init__(message)
        self.delay_s = delay_s


def retry_worthy(error: BaseException, *, creates: bool) -> bool:
    """Whether repeating the same call blindly is harmless and may help."""
    if isinstance(error, BalanceUnavailable):
        return True
    if isinstance(error, BalanceOutcomeUnknown):
        return error.idempotent and not creates
    if isinstance(error, BalanceFault):
        return error.code in _RETRYABLE_FAULTS
    return False


class Caller:
    """Makes calls with the policy above; one per performer, thread-safe."""

    def __init__(
        self,
        attempts_max: int,
        *,
        wait_min_s: float = 0.05,
        wait_max_s: float = 2.0,
        sleep: Callable[[float], None] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.attempts_max = attempts_max
        self.wait_min_s = wait_min_s
        self.wait_max_s = wait_max_s
        self._stop = stop or threading.Event()
        self._sleep: Callable[[float], None] = sleep or self._wait

    def _wait(self, seconds: float) -> None:
        self._stop.wait(seconds)  # returns at once when the role stops

    def call(self, fn: Callable[[], T], *, creates: bool = False) -> T:
        def worthy(error: BaseException) -> bool:
            return retry_worthy(error, creates=creates)

        def wait(state: tenacity.RetryCallState) -> float:
            outcome = state.outcome
            error = outcome.exception() if outcome is not None else None
            if isinstance(error, BalanceCircuitOpen):
                return min(max(error.retry_after_s, self.wait_min_s), _OPEN_BREAKER_WAIT_MAX_S)
            backoff = self.wait_min_s * 2 ** (state.attempt_number - 1)
            return float(min(backoff, self.wait_max_s))

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(worthy),
            stop=tenacity.stop_any(
                tenacity.stop_after_attempt(self.attempts_max),
                tenacity.stop_when_event_set(self._stop),
            ),
            wait=wait,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return retrying(fn)
        except BalanceOutcomeUnknown as exc:
            if creates:
                raise Unclear(str(exc)) from exc
            raise Later(str(exc)) from exc
        except BalanceUnavailable as exc:
            raise Later(str(exc)) from exc
        except BalanceFault as exc:
            if exc.code in _RETRYABLE_FAULTS:
                raise Later(str(exc)) from exc
            raise Refused(exc) from exc
        except BalanceValueError as exc:
            raise Refused(exc) from exc
