"""Test harness: the real stack, started when missing and reused when running.

Session: the Kafka broker and PostgreSQL from `deploy/stack.sh` (or the servers named by
BILLY_KAFKA_BOOTSTRAP / BILLY_DATABASE_URL). Where a Docker engine answers, PostgreSQL may
come from testcontainers instead (BILLY_TESTCONTAINERS=1); the suite never needs it.
Module: a fresh database (migrated) and a fresh topic prefix, so tests never see each other.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from hypothesis import settings as hypothesis_settings

from billy.roles import role_target
from billy_core import compiled
from billy_core.kafka.topics import TopicNames
from billy_core.settings import Settings
from billy_core.store import migrate

REPO = Path(__file__).resolve().parent.parent

# Hypothesis profiles: "quick" keeps the unit tier well under 30 s and is derandomized (CI: the
# same examples every run, so a rarely reached rule cannot make it flaky); "deep" is
# for the nightly target (`make nightly`). Tests scale their example counts from the profile.
hypothesis_settings.register_profile("quick", max_examples=100, deadline=None, derandomize=True)
hypothesis_settings.register_profile("deep", max_examples=5000, deadline=None)
hypothesis_settings.load_profile(os.environ.get("BILLY_HYPOTHESIS_PROFILE", "quick"))
_SESSION_START = time.time()


def pytest_sessionstart(session):
    # An extension runs instead of a source edited after its build: tests would test old code.
    try:
        compiled.check()
    except compiled.StaleBuild as exc:
        pytest.exit(str(exc), returncode=2)


def pytest_report_header(config):
    return f"billy hot path: {compiled.summary()}"


def _port_open(hostport: str) -> bool:
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def docker_engine_answers() -> bool:
    """Ask the engine itself; a `docker` binary without an engine (as here) is not enough."""
    try:
        import docker

        return bool(docker.from_env(timeout=2).ping())
    except Exception:
        return False


@pytest.fixture(scope="session")
def stack() -> dict[str, str]:
    """Kafka bootstrap and the admin PostgreSQL URL.

    BILLY_KAFKA_BOOTSTRAP and BILLY_DATABASE_URL, when both are set, name running servers.
    Otherwise `deploy/stack.sh up` starts what is missing (and reuses what runs), and its
    `.state/stack.env` says where they are.
    """
    kafka = os.environ.get("BILLY_KAFKA_BOOTSTRAP")
    pg = os.environ.get("BILLY_DATABASE_URL")
    if os.environ.get("BILLY_TESTCONTAINERS") == "1" and docker_engine_answers():
        from testcontainers.postgres import PostgresContainer

        container = PostgresContainer("postgres:15", driver=None).start()
        pg = container.get_connection_url()
    if not (kafka and pg and _port_open(kafka) and _pg_answers(pg)):
        subprocess.run(["bash", str(REPO / "deploy" / "stack.sh"), "up"], check=True, cwd=REPO)
        written = Settings()  # reads the `.state/stack.env` that `up` just wrote
        kafka = kafka or written.kafka_bootstrap
        pg = pg or written.database_url
    return {"kafka": kafka, "pg": pg}


def _pg_answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def _with_db(url: str, dbname: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{dbname}"


@pytest.fixture(scope="module")
def database_url(stack) -> str:
    """A fresh, migrated database for this test module; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(stack["pg"], autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _with_db(stack["pg"], name)
    migrate.upgrade(Settings(database_url=url).sqlalchemy_url)
    yield url
    if os.environ.get("BILLY_KEEP_TEST_DATABASES") == "1":  # e.g. `billy rebuild` on what a
        kept = REPO / ".state" / "kept-databases.txt"  # fault run left behind
        with kept.open("a", encoding="utf-8") as out:
            out.write(f"{url}\n")
        return
    with psycopg.connect(stack["pg"], autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def settings(stack, database_url) -> Settings:
    """Settings for this module: its own database, topic prefix and consumer group."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    return Settings(
        kafka_bootstrap=stack["kafka"],
        database_url=database_url,
        topic_prefix=prefix,
        tenants=("autoru", "realty"),
        ledger_group=f"{prefix}-ledger",
        topic_partitions_max=3,
        batch_wait_ms=10,
        hold_sweep_interval_s=0.5,
        dlq_window_min=50,
        balance_gateway=False,  # no Balance here; tests/integration/test_gateway* turn it on
    )


@pytest.fixture(scope="module")
def topics(settings) -> TopicNames:
    from billy_core.kafka.admin import ensure_topics

    ensure_topics(settings)
    return TopicNames(settings.topic_prefix)


class RunningRoles:
    """billy's roles on threads of the test process, stopped at the end of the module."""

    def __init__(self, settings: Settings, roles: tuple[str, ...]) -> None:
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.threads = []
        for role in roles:
            target = role_target(settings, role)
            thread = threading.Thread(target=self._guard, args=(target,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _guard(self, target) -> None:
        try:
            target(self.stop)
        except BaseException as exc:
            self.errors.append(exc)
            raise

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


@pytest.fixture(scope="module")
def billy(settings, topics):
    """The ledger, relay and hold sweeper running against this module's database and topics."""
    roles = RunningRoles(settings, ("ledger", "relay", "sweeper"))
    yield roles
    roles.close()
    assert not roles.errors, roles.errors


def pytest_terminal_summary(terminalreporter):
    """Print the fault run's figures (written by tests/fault) at the end of the session."""
    import json

    report = REPO / ".state" / "fault-reports"
    for path in sorted(report.glob("*-latest.json")) if report.exists() else []:
        if path.stat().st_mtime < _SESSION_START:  # only this session's runs
            continue
        summary = json.loads(path.read_text())
        terminalreporter.section(f"fault profile {summary['profile']}")
        for key in (
            "records sent",
            "poison sent",
            "fault counts",
            "process starts",
            "unplanned exits",
            "offset conflicts logged by ledger-a",
            "quiet after last fault (s)",
            "counts",
            "violations",
        ):
            terminalreporter.write_line(f"{key}: {summary.get(key)}")
    # The isolation table of tests/integration/test_security.py (attempt, principal, outcome).
    table = REPO / ".state" / "security-reports" / "isolation-latest.md"
    if table.exists() and table.stat().st_mtime >= _SESSION_START:
        terminalreporter.section("security: isolation on the secured broker")
        for line in table.read_text().splitlines():
            terminalreporter.write_line(line)
