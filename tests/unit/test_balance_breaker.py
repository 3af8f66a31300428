"""The circuit breaker with a fake clock: open after N failures, one trial after cool-down."""

from __future__ import annotations

import pytest

from billy_core.balance.breaker import BreakerState, CircuitBreaker
from billy_core.balance.errors import BalanceCircuitOpen


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make(clock: FakeClock, failures_max: int = 3, cooldown_s: float = 30.0) -> CircuitBreaker:
    return CircuitBreaker(failures_max=failures_max, cooldown_s=cooldown_s, clock=clock)


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        breaker.acquire()
        breaker.record_failure()


def test_opens_after_consecutive_failures_only(clock: FakeClock) -> None:
    breaker = make(clock)
    fail(breaker, 2)
    breaker.acquire()
    breaker.record_success()  # a success (or a fault) resets the count
    fail(breaker, 2)
    assert breaker.state is BreakerState.CLOSED and breaker.consecutive_failures == 2
    fail(breaker, 1)
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(BalanceCircuitOpen) as refused:
        breaker.acquire()
    assert refused.value.retry_after_s == pytest.approx(30.0)


def test_stays_open_until_the_cooldown_has_passed(clock: FakeClock) -> None:
    breaker = make(clock)
    fail(breaker, 3)
    clock.now += 29.9
    with pytest.raises(BalanceCircuitOpen) as refused:
        breaker.acquire()
    assert refused.value.retry_after_s == pytest.approx(0.1)
    clock.now += 0.1
    assert breaker.state is BreakerState.HALF_OPEN


def test_half_open_lets_one_trial_through_and_a_success_closes(clock: FakeClock) -> None:
    breaker = make(clock)
    fail(breaker, 3)
    clock.now += 30
    breaker.acquire()  # the trial
    with pytest.raises(BalanceCircuitOpen, match="trial call is in flight") as refused:
        breaker.acquire()
    assert refused.value.retry_after_s == 0.0
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.consecutive_failures == 0
    breaker.acquire()
    breaker.acquire()  # closed: any number of calls at once


def test_a_failed_trial_opens_again_for_a_full_cooldown(clock: FakeClock) -> None:
    breaker = make(clock)
    fail(breaker, 3)
    clock.now += 45
    breaker.acquire()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now += 29
    with pytest.raises(BalanceCircuitOpen):
        breaker.acquire()
    clock.now += 1
    breaker.acquire()


def test_release_frees_the_trial_without_a_verdict(clock: FakeClock) -> None:
    breaker = make(clock)
    fail(breaker, 3)
    clock.now += 30
    breaker.acquire()
    breaker.release()
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.acquire()  # another trial may go


def test_late_failures_of_calls_begun_before_opening_do_not_extend_the_cooldown(
    clock: FakeClock,
) -> None:
    breaker = make(clock, failures_max=1)
    breaker.acquire()
    breaker.acquire()
    breaker.record_failure()  # opens at t=1000
    clock.now += 20
    breaker.record_failure()  # the other call, begun while closed
    clock.now += 10
    assert breaker.state is BreakerState.HALF_OPEN


@pytest.mark.parametrize(("failures_max", "cooldown_s"), [(0, 1.0), (1, 0.0), (1, -1.0)])
def test_rejects_nonsense_settings(failures_max: int, cooldown_s: float) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failures_max=failures_max, cooldown_s=cooldown_s)
