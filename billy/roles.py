"""billy's roles: the one table the CLI, the demo and the tests start them from.

    ledger   consumers.ledger   commands, Balance outcomes -> PostgreSQL ledger and outbox
    gateway  consumers.gateway  Balance requests -> Balance XML-RPC -> outcomes in the outbox
    relay    relay              outbox -> Kafka, exactly once
    sweeper  jobs.sweeper       expired holds -> ExpireHold commands
    api      billy_core.api     the HTTP read API and /metrics
    intake   intake             Balance's notifications (HTTP) -> payment events in Kafka

`prepare` makes the database and topics ready and waits, bounded, for PostgreSQL and Kafka;
`run_roles` runs some roles on threads of one process until a signal or a role's failure.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
from collections.abc import Callable

from billy_core import limits, retry
from billy_core.errors import TransientError
from billy_core.settings import Settings

ROLES = ("ledger", "gateway", "relay", "sweeper", "api", "intake")
RoleTarget = Callable[[threading.Event], None]
log = logging.getLogger("billy")


class StartupError(Exception):
    """A dependency did not answer within the start-up wait; the message names the setting."""


def prepare(settings: Settings, wait_s: float = limits.STARTUP_WAIT_S) -> None:
    """Choose the codec framing, migrate the database (once, under a lock) and create
    missing topics. Waits up to `wait_s` for PostgreSQL and Kafka, then raises
    StartupError naming the setting that points at the silent one."""
    import sqlalchemy.exc
    from confluent_kafka import KafkaException

    from billy_core.codec import configure
    from billy_core.kafka.admin import ensure_topics
    from billy_core.store import migrate

    configure(settings.schema_registry_url)

    def database() -> None:
        try:
            migrate.upgrade(settings.sqlalchemy_url)
        except sqlalchemy.exc.OperationalError as exc:
            raise TransientError(str(exc.orig).strip().splitlines()[0]) from exc

    def topics() -> None:
        try:
            ensure_topics(settings)
        except KafkaException as exc:
            raise TransientError(str(exc.args[0])) from exc

    for step, setting, value in (
        (database, "BILLY_DATABASE_URL", _without_password(settings.database_url)),
        (topics, "BILLY_KAFKA_BOOTSTRAP", settings.kafka_bootstrap),
    ):
        try:
            for attempt in retry.transient("startup", f"reaching {setting}", deadline_s=wait_s):
                with attempt:
                    step()
        except TransientError as exc:
            raise StartupError(
                f"cannot reach {setting}={value} within {wait_s:.0f} s: {exc}"
            ) from None


def check_compiled() -> None:
    """Refuse to start on a stale build of the hot path (`billy_core.compiled.check`); say
    whether it runs compiled."""
    from billy_core import compiled

    try:
        compiled.check()
    except compiled.StaleBuild as exc:
        raise StartupError(str(exc)) from None
    log.info("hot path: %s", compiled.summary())


def role_target(settings: Settings, role: str) -> RoleTarget:
    """The callable `run(stop)` of one role; imports only that role's modules."""
    if role == "ledger":
        from consumers.ledger import build

        return build(settings).run
    if role == "gateway":
        from consumers.gateway import build as build_gateway

        return build_gateway(settings).run
    if role == "relay":
        from relay.publisher import Relay

        return Relay(settings).run
    if role == "sweeper":
        from jobs.balance_jobs import run_sweeper

        return run_sweeper(settings)  # hold expiry, consumption reports, act imports
    if role == "api":
        from billy_core.api.server import serve

        return lambda stop: serve(settings, stop)
    if role == "intake":
        from intake import IntakeServer

        return IntakeServer(settings).run
    raise ValueError(f"unknown role {role!r}; choose from {', '.join(ROLES)}")


def tune_gc() -> None:
    """Make Python's cyclic garbage collector cheap for a long-running role.

    The hot paths allocate a dozen container objects per record and free nearly all of them
    by reference counting; with the default threshold (700) the collector still ran every
    ~60 records and walked the young objects each time, and every few seconds all the
    long-lived ones (schemas, modules, pools): measured 14 µs per command in the ledger and
    7 in the relay (`gc.callbacks`, 30,000 commands). `gc.freeze()` moves everything
    alive after start-up out of the collector's sight, and `limits.GC_THRESHOLDS` lets the
    young generation grow to tens of thousands of objects before a collection; garbage in
    cycles is still collected, later."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*limits.GC_THRESHOLDS)


def run_roles(settings: Settings, roles: list[str]) -> int:
    """Run `roles` until SIGTERM/SIGINT or until one fails (then all stop). Exit code."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    check_compiled()
    prepare(settings)
    _start_health(settings, roles, stop)
    if settings.metrics_port:
        from billy_core.ops import http

        http.serve(settings.api_host, settings.metrics_port)  # /metrics, /livez, /readyz
    failures: list[BaseException] = []
    threads = []
    targets = {role: role_target(settings, role) for role in roles}
    tune_gc()
    for role, target in targets.items():

        def guarded(target: RoleTarget = target, role: str = role) -> None:
            try:
                target(stop)
            except BaseException as exc:  # a role that dies takes the process down
                log.exception("role %s failed", role)
                failures.append(exc)
                stop.set()

        thread = threading.Thread(target=guarded, name=f"billy-{role}", daemon=True)
        thread.start()
        threads.append(thread)
    while not stop.wait(0.5):
        pass
    for thread in threads:
        thread.join(timeout=30)
    return 1 if failures else 0


def _start_health(settings: Settings, roles: list[str], stop: threading.Event) -> None:
    """Counters at zero, the roles known to liveness/readiness, and the dependency probes."""
    from billy_core import metrics
    from billy_core.kafka import config as kafka_config
    from billy_core.ops.health import HEALTH, NEEDS, Monitor

    metrics.export_zero(ROLES, settings.tenants)
    needs = {dependency for role in roles for dependency in NEEDS.get(role, ())}
    for role in roles:
        HEALTH.start_role(role)
    Monitor(
        HEALTH,
        database_url=settings.database_url if "postgresql" in needs else None,
        kafka_config=kafka_config.admin(settings) if "kafka" in needs else None,
    ).start(stop)


def _without_password(url: str) -> str:
    """A database URL fit for a log line: the password replaced."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable URL>"
