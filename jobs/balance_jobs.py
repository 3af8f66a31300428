"""The sweeper role: hold expiry, and, when billy talks to Balance, consumption reports and
act imports. Each job runs in its own thread; one failing stops them all (and the role)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from billy_core import metrics
from billy_core.settings import Settings

if TYPE_CHECKING:
    from billy_core.balance import BalanceClient

Job = Callable[[threading.Event], None]


def _observe_call(method: str, outcome: str, seconds: float) -> None:
    metrics.balance_calls.labels(method, outcome).inc()
    metrics.balance_call_seconds.labels(method).observe(seconds)


def balance_client(settings: Settings) -> BalanceClient:
    """A Balance client of its own (its own breaker) with calls in the metrics."""
    from billy_core.balance import BalanceClient

    return BalanceClient.from_settings(settings, observer=_observe_call)


def sweeper_jobs(settings: Settings) -> list[Job]:
    from jobs.sweeper import HoldSweeper

    jobs: list[Job] = [HoldSweeper(settings).run]
    if settings.balance_gateway:  # billy without Balance reports nothing and imports nothing
        from jobs.acts import ActsImporter
        from jobs.consumption import ConsumptionReporter

        jobs.append(ConsumptionReporter(settings, balance_client(settings)).run)
        jobs.append(ActsImporter(settings, balance_client(settings)).run)
    return jobs


def run_sweeper(settings: Settings) -> Job:
    jobs = sweeper_jobs(settings)

    def run(stop: threading.Event) -> None:
        failures: list[BaseException] = []

        def guarded(job: Job) -> None:
            try:
                job(stop)
            except BaseException as exc:
                failures.append(exc)
                stop.set()

        threads = [
            threading.Thread(target=guarded, args=(job,), name=f"billy-sweeper-{i}", daemon=True)
            for i, job in enumerate(jobs)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise failures[0]

    return run
