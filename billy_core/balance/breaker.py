"""A circuit breaker for Balance calls, with the clock passed in.

    CLOSED --(failures_max consecutive failures)--> OPEN
    OPEN --(cooldown_s passed; the next call becomes the one trial)--> HALF_OPEN
    HALF_OPEN --(trial succeeds)--> CLOSED      HALF_OPEN --(trial fails)--> OPEN

A failure is a transport failure (Balance not reached, or no answer read). A fault is a
success here: Balance answered, it is alive. While OPEN, and while a HALF_OPEN trial is
in flight, calls are refused with `BalanceCircuitOpen` at once, without touching the
network.

Why not pybreaker (the well-kept library, checked first): its `call` holds one lock for the
whole guarded call, so every Balance call of the process would wait for the one before it
(up to the read timeout), and it reads the wall clock itself, so tests would have to sleep
or patch `datetime`. This one holds its lock only to change state, and takes a clock.
Thread-safe; never blocks beyond that lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import StrEnum

from billy_core.balance.errors import BalanceCircuitOpen


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Counts consecutive failures; opens after `failures_max`, tries again after `cooldown_s`.

    Use: `acquire()` before a call (raises BalanceCircuitOpen), then exactly one of
    `record_success()`, `record_failure()` or `release()` (no verdict: the call ended in an
    error that says nothing about Balance, such as a bug on billy's side).
    """

    def __init__(
        self,
        *,
        failures_max: int,
        cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
        name: str = "balance",
    ) -> None:
        if failures_max < 1:
            raise ValueError(f"failures_max: must be at least 1, got {failures_max}")
        if cooldown_s <= 0:
            raise ValueError(f"cooldown_s: must be positive, got {cooldown_s}")
        self._failures_max = failures_max
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._name = name
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False

    @property
    def state(self) -> BreakerState:
        """The state as the next call would see it (OPEN turns HALF_OPEN once cooled down)."""
        with self._lock:
            if self._state is BreakerState.OPEN and self._cooled_down():
                return BreakerState.HALF_OPEN
            return self._state

    @property
    def consecutive_failures(self) -> int:
        with self._lock:
            return self._failures

    def acquire(self) -> None:
        """Let a call through, or raise BalanceCircuitOpen (with `retry_after_s`)."""
        with self._lock:
            if self._state is BreakerState.CLOSED:
                return
            if self._state is BreakerState.OPEN:
                if not self._cooled_down():
                    remaining_s = self._opened_at + self._cooldown_s - self._clock()
                    raise BalanceCircuitOpen(
                        f"{self._name}: circuit open after {self._failures} consecutive "
                        f"failures; next trial in {remaining_s:.1f}s",
                        retry_after_s=max(remaining_s, 0.0),
                    )
                self._state = BreakerState.HALF_OPEN
            # HALF_OPEN: one trial at a time, so a still-dead Balance costs one timeout only.
            if self._trial_in_flight:
                raise BalanceCircuitOpen(
                    f"{self._name}: circuit half-open, a trial call is in flight",
                    retry_after_s=0.0,
                )
            self._trial_in_flight = True

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._state = BreakerState.CLOSED
            self._trial_in_flight = False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            was_trial = self._state is BreakerState.HALF_OPEN
            self._trial_in_flight = False
            if was_trial or self._failures >= self._failures_max:
                if self._state is not BreakerState.OPEN:
                    self._opened_at = self._clock()
                self._state = BreakerState.OPEN

    def release(self) -> None:
        """End a call without a verdict: counts nothing, frees the half-open trial slot."""
        with self._lock:
            self._trial_in_flight = False

    def _cooled_down(self) -> bool:
        return self._clock() - self._opened_at >= self._cooldown_s
