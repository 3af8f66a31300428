"""Liveness and readiness per role, and the dependency probes behind them.

One `Health` per process (`HEALTH`): the roles running here say they started, beat once per
loop (`beat`: the loop is alive) and report progress (`progressed`: work committed, or none
waiting; also the metric `billy_progress_timestamp_seconds{role}`). A `Monitor` thread probes
the dependencies the roles need every `PROBE_INTERVAL_S` and logs exactly one line when one
goes down and one when it is back (with how long it was down).

    liveness   every role's loop beat within LIVENESS_STALE_S      (else: restart me)
    readiness  per role, what it needs:                              (else: do not rely on me)
               ledger, gateway  kafka, postgresql, progress within PROGRESS_STALE_S
               relay            kafka, postgresql, oldest outbox row younger than OUTBOX_AGE_MAX_S
               sweeper          kafka, postgresql
               api              postgresql

Progress is "work committed or nothing waiting", so a quiet role is ready and a role that
has lag but commits nothing (stuck, or every partition backing off) is not. A dependency
outage makes readiness false but never liveness: restarting would not bring it back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from billy_core import metrics

log = logging.getLogger("billy.health")

PROBE_INTERVAL_S = 5.0
PROBE_TIMEOUT_S = 3.0
LIVENESS_STALE_S = 300.0  # a loop blocked this long (a retry waits at most 10 s a try) is hung
PROGRESS_STALE_S = 60.0
OUTBOX_AGE_MAX_S = 60.0

NEEDS: dict[str, tuple[str, ...]] = {
    "ledger": ("kafka", "postgresql"),
    "gateway": ("kafka", "postgresql"),
    "relay": ("kafka", "postgresql"),
    "sweeper": ("kafka", "postgresql"),
    "api": ("postgresql",),
    "intake": ("kafka", "postgresql"),
}
_PROGRESS_ROLES = frozenset({"ledger", "gateway"})


@dataclass(slots=True)
class _Role:
    started_at_s: float
    beat_at_s: float
    progress_at_s: float


@dataclass(slots=True)
class _Dependency:
    up: bool | None = None  # None: not probed yet
    since_s: float = 0.0
    error: str = ""


@dataclass(slots=True)
class Health:
    clock: Callable[[], float] = time.time
    roles: dict[str, _Role] = field(default_factory=dict)
    dependencies: dict[str, _Dependency] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start_role(self, role: str) -> None:
        now = self.clock()
        with self.lock:
            self.roles[role] = _Role(now, now, now)
            for dependency in NEEDS.get(role, ()):
                self.dependencies.setdefault(dependency, _Dependency())
        metrics.progress_timestamp.labels(role).set(now)

    def beat(self, role: str) -> None:
        state = self.roles.get(role)
        if state is not None:
            state.beat_at_s = self.clock()

    def progressed(self, role: str) -> None:
        now = self.clock()
        state = self.roles.get(role)
        if state is not None:
            state.beat_at_s = state.progress_at_s = now
        metrics.progress_timestamp.labels(role).set(now)

    def set_dependency(self, name: str, up: bool, error: str = "", where: str = "") -> None:
        """Record a probe's answer; log one line on each change (down, then back)."""
        now = self.clock()
        with self.lock:
            dep = self.dependencies.setdefault(name, _Dependency())
            changed, was, since = dep.up != up, dep.up, dep.since_s
            if changed:
                dep.up, dep.since_s = up, now
            dep.error = "" if up else error
        metrics.dependency_up.labels(name).set(1 if up else 0)
        fields = {"dependency": name, "event": "up" if up else "down"}
        if changed and not up:
            log.error("dependency down: %s (%s): %s", name, where, error, extra=fields)
        elif changed and was is False:
            log.warning("dependency back: %s after %.0f s down", name, now - since, extra=fields)

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        now = self.clock()
        roles = {r: round(now - s.beat_at_s, 1) for r, s in self.roles.items()}
        ok = all(age <= LIVENESS_STALE_S for age in roles.values())
        return ok, {"status": "ok" if ok else "stale", "loop_age_s": roles}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        now = self.clock()
        problems: dict[str, list[str]] = {}
        for role, state in self.roles.items():
            found = []
            for name in NEEDS.get(role, ()):
                dep = self.dependencies.get(name)
                if dep is None or dep.up is not True:
                    found.append(f"{name} down" if dep and dep.up is False else f"{name} unknown")
            if role in _PROGRESS_ROLES and now - state.progress_at_s > PROGRESS_STALE_S:
                found.append(f"no progress for {now - state.progress_at_s:.0f} s")
            if role == "relay":
                age = _gauge_sum(metrics.outbox_oldest_seconds)
                if age > OUTBOX_AGE_MAX_S:
                    found.append(f"oldest outbox row {age:.0f} s old")
            problems[role] = found
        ok = bool(self.roles) and not any(problems.values())
        deps = {n: d.up for n, d in self.dependencies.items()}
        return ok, {
            "status": "ready" if ok else "not ready",
            "roles": problems,
            "dependencies": deps,
            "consumer_lag": round(_gauge_sum(metrics.consumer_lag)),  # records: an integer
        }


def _gauge_sum(gauge: Any) -> float:
    """The sum of a gauge's samples in this process (0 when it has none); prometheus_client
    keeps every sample as a float, whatever it counts."""
    return float(sum(s.value for family in gauge.collect() for s in family.samples))


HEALTH = Health()


class Monitor:
    """Probes kafka and postgresql every PROBE_INTERVAL_S on its own daemon thread."""

    def __init__(
        self,
        health: Health,
        *,
        database_url: str | None,
        kafka_config: dict[str, Any] | None,
        probe_topic: str = "",
        interval_s: float = PROBE_INTERVAL_S,
    ) -> None:
        self.health = health
        self.database_url = database_url
        self.kafka_config = kafka_config
        self.probe_topic = probe_topic
        self.interval_s = interval_s
        self._admin: Any = None

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(stop,), name="billy-health", daemon=True)
        thread.start()
        return thread

    def run(self, stop: threading.Event) -> None:
        while True:
            self.probe_once()
            if stop.wait(self.interval_s):
                return

    def probe_once(self) -> None:
        if self.database_url is not None:
            ok, error = self._probe_postgresql(self.database_url)
            self.health.set_dependency("postgresql", ok, error, "BILLY_DATABASE_URL")
        if self.kafka_config is not None:
            ok, error = self._probe_kafka()
            where = f"BILLY_KAFKA_BOOTSTRAP={self.kafka_config.get('bootstrap.servers')}"
            self.health.set_dependency("kafka", ok, error, where)

    @staticmethod
    def _probe_postgresql(url: str) -> tuple[bool, str]:
        import psycopg

        try:
            with psycopg.connect(url, connect_timeout=int(PROBE_TIMEOUT_S)) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            return False, (str(exc).strip().splitlines() or ["error"])[0][:200]
        return True, ""

    def _probe_kafka(self) -> tuple[bool, str]:
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        from billy_core.kafka.logs import KAFKA_LOG

        assert self.kafka_config is not None
        if self._admin is None:
            self._admin = AdminClient(self.kafka_config, logger=KAFKA_LOG)
        try:
            # A metadata request needs a broker that answers now (not the cached view).
            future = self._admin.describe_cluster(request_timeout=PROBE_TIMEOUT_S)
            future.result(timeout=PROBE_TIMEOUT_S + 1)
        except (KafkaException, TimeoutError) as exc:
            return False, str(exc)[:200] or type(exc).__name__
        return True, ""
