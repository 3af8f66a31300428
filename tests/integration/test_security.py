"""Security against a real, secured broker (SASL/SCRAM-SHA-512, StandardAuthorizer, deny by
default; DESIGN.md, Security): every pair of principals, the TLS listener, onboarding and
removal, billy's roles on their own least-privilege principals, and the read API's tokens.

The broker: the session's own when it is secured (the default for a new stack), otherwise a
second broker of its own (`deploy/stack.sh kafka-up` with BILLY_STATE_DIR=.state/secure-test
and free ports chosen once, kept in .state/secure-test/ports.json), started once and left
running like the main stack (deploy/README.md, Security, says how to stop it).

The isolation table (attempt, principal, expected, outcome) is written to
.state/security-reports/isolation-latest.md and printed at the end of the session.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from fastapi.testclient import TestClient

from billy.roles import role_target
from billy_core import reads
from billy_core.api import create_app
from billy_core.codec import encode_result
from billy_core.kafka.topics import TopicNames
from billy_core.results import Code, Result, Status
from billy_core.security import acls, tokens
from billy_core.security import tenants as onboarding
from billy_core.settings import Settings
from producers import BillyAdminClient, BillyClient, ResultReader, sasl_config

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
REPORTS = REPO / ".state" / "security-reports"
SECURE_STATE = REPO / ".state" / "secure-test"
LEGACY_PORTS = {"kafka": 29092, "controller": 29093, "ssl": 29094}
ALPHA, BETA, DELTA = "alpha", "beta", "delta"
AUTH_REFUSED = "SASL_AUTHENTICATION_FAILED"  # wrong password (or a deleted user)
NO_SASL = "disconnected: no SASL handshake"  # a client without credentials
# What probes and seeds write: a valid Result (a reader of a results topic skips it; on a
# commands topic it is undecodable and goes to the DLQ).
PROBE = encode_result(
    Result(
        command_id="probe",
        client_id="probe",
        status=Status.APPLIED,
        code=Code.OK,
        message="",
        currency="RUB",
        available_minor=0,
        held_minor=0,
        wallet_version=1,
        duplicate=False,
        processed_at_ms=1_714_521_600_000,
    )
)


@dataclass(frozen=True)
class Broker:
    bootstrap: str
    ssl_bootstrap: str
    ca_location: str
    admin: tuple[str, str] = field(repr=False)  # the super user (never in a failure report)
    local: tuple[str, str] = field(repr=False)  # the stack's combined local principal


def _secret(state: Path, name: str) -> str:
    return (state / "kafka" / "secrets" / f"{name}.password").read_text().strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def secure_ports() -> dict[str, int]:
    """This checkout's own ports for its secured test broker, chosen free once and kept with
    its state (the controller port is fixed at format time): two checkouts on one machine
    never fight over a port."""
    path = SECURE_STATE / "ports.json"
    if path.exists():
        return {k: int(v) for k, v in json.loads(path.read_text()).items()}
    if (SECURE_STATE / "kafka" / "formatted.controller-port").exists():
        ports = dict(LEGACY_PORTS)  # formatted before ports were chosen per checkout
    else:
        ports = {name: _free_port() for name in ("kafka", "controller", "ssl")}
    SECURE_STATE.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(ports))
    return ports


@pytest.fixture(scope="module")
def broker(stack) -> Broker:
    main = Settings()
    if main.kafka_security_protocol != "PLAINTEXT" and main.kafka_admin_sasl_password:
        assert main.kafka_sasl_username and main.kafka_sasl_password and main.kafka_ssl_bootstrap
        return Broker(
            stack["kafka"],
            main.kafka_ssl_bootstrap,
            str(main.kafka_ssl_ca_location),
            (
                str(main.kafka_admin_sasl_username),
                main.kafka_admin_sasl_password.get_secret_value(),
            ),
            (main.kafka_sasl_username, main.kafka_sasl_password.get_secret_value()),
        )
    ports = secure_ports()
    env = {
        **os.environ,
        "BILLY_STATE_DIR": str(SECURE_STATE),
        "BILLY_KAFKA_SECURITY": "sasl",
        "BILLY_KAFKA_PORT": str(ports["kafka"]),
        "BILLY_KAFKA_CONTROLLER_PORT": str(ports["controller"]),
        "BILLY_KAFKA_SSL_PORT": str(ports["ssl"]),
    }
    subprocess.run(["bash", str(REPO / "deploy" / "stack.sh"), "kafka-up"], check=True, env=env)
    return Broker(
        f"127.0.0.1:{ports['kafka']}",
        f"127.0.0.1:{ports['ssl']}",
        str(SECURE_STATE / "kafka" / "tls" / "ca.pem"),
        ("admin", _secret(SECURE_STATE, "admin")),
        ("billy", _secret(SECURE_STATE, "billy")),
    )


@pytest.fixture(scope="module")
def secure(broker, database_url) -> Settings:
    """This module's deployment on the secured broker: its own prefix, tenants alpha and beta;
    the local principal for billy's own set-up, the super user for onboarding."""
    prefix = f"s{uuid.uuid4().hex[:10]}"
    return Settings(
        kafka_bootstrap=broker.bootstrap,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username=broker.local[0],
        kafka_sasl_password=broker.local[1],
        kafka_admin_sasl_username=broker.admin[0],
        kafka_admin_sasl_password=broker.admin[1],
        kafka_ssl_ca_location=broker.ca_location,
        database_url=database_url,
        topic_prefix=prefix,
        tenants=(ALPHA, BETA),
        ledger_group=f"{prefix}-ledger",
        topic_partitions_max=1,
        batch_wait_ms=10,
        hold_sweep_interval_s=0.5,
        balance_gateway=False,
    )


@pytest.fixture(scope="module")
def engine(secure) -> Iterator[Any]:
    engine = reads.create_engine_for(secure, pool_size=2)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def principals(secure, engine) -> dict[str, tuple[str, str]]:
    """Every principal of the deployment, made the documented way: `billy security init` and
    `billy tenants add` (their library calls). Name -> (user, password)."""
    made = onboarding.init_deployment(secure)
    found = Secrets(
        {name.removeprefix(f"{secure.topic_prefix}-"): (name, pw) for name, pw in made.items()}
    )
    for tenant in (ALPHA, BETA):
        done = onboarding.add(secure, engine, tenant)
        found[f"tenant-{tenant}"] = (done.principal, done.password)
        found[f"token-{tenant}"] = ("", done.token)
    return found


# librdkafka's own lines (an auth failure is logged on every retry) go to logging, not stderr.
PROBE_LOG = logging.getLogger("tests.security.probe")


class Secrets(dict):  # type: ignore[type-arg]
    """Principal -> (user, password); its repr hides the passwords (pytest prints locals)."""

    def __repr__(self) -> str:
        return f"Secrets({sorted(self)})"


def _sasl(broker: Broker, user: str, password: str) -> dict[str, Any]:
    return {
        "logger": PROBE_LOG,
        "bootstrap.servers": broker.bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": user,
        "sasl.password": password,
        "socket.timeout.ms": 10_000,
    }


def _name(err: KafkaError) -> str:
    if err.code() in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED):
        return AUTH_REFUSED
    return str(err.name())


class _Errors:
    """error_cb: the first authentication (or transport) failure of a client."""

    def __init__(self) -> None:
        self.seen: list[KafkaError] = []

    def __call__(self, err: KafkaError) -> None:
        self.seen.append(err)

    def refused(self) -> str | None:
        for err in self.seen:
            if err.code() in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED):
                return AUTH_REFUSED
        for err in self.seen:  # a PLAINTEXT client on a SASL listener: the broker hangs up
            if err.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN):
                return NO_SASL
        return None


def probe_write(conf: dict[str, Any], topic: str, timeout_s: float = 15.0) -> str:
    errors = _Errors()
    conf = {k: v for k, v in conf.items() if k != "probe.group"}
    producer = Producer(
        {
            **conf,
            # Not idempotent: a principal without any WRITE would otherwise fail on the
            # producer id (cluster authorization) before the topic is even asked for.
            "enable.idempotence": False,
            "acks": "all",
            "message.timeout.ms": int(timeout_s * 1000),
            "error_cb": errors,
        }
    )
    reports: list[KafkaError | None] = []
    producer.produce(topic, key=b"probe", value=PROBE, on_delivery=lambda e, m: reports.append(e))
    deadline = time.monotonic() + timeout_s + 5
    while not reports and time.monotonic() < deadline:
        producer.poll(0.2)
        if refused := errors.refused():
            return refused
    if not reports:
        return errors.refused() or "no delivery report"
    return "allowed" if reports[0] is None else _name(reports[0])


def probe_read(conf: dict[str, Any], topic: str, timeout_s: float = 15.0) -> str:
    """Read partition 0 from the beginning without joining a group (assign, no commits):
    allowed when the record seeded there arrives. librdkafka still looks up the coordinator of
    the consumer's group.id, so the probe names a group the principal may use (`probe.group`
    in `conf`): a refusal is then about the topic."""
    errors = _Errors()
    conf = dict(conf)
    group = conf.pop("probe.group", None) or f"probe-{uuid.uuid4().hex}"
    consumer = Consumer(
        {
            **conf,
            "group.id": group,
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "error_cb": errors,
        }
    )
    try:
        # A topic the principal may not even describe: the broker says so in the metadata
        # (librdkafka then never fetches, and reports nothing on poll).
        try:
            meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        except KafkaException as exc:
            consumer.poll(1.0)  # serves error_cb: why the broker would not answer
            return errors.refused() or _name(exc.args[0])
        if meta is not None and meta.error is not None:
            return _name(meta.error)
        if refused := errors.refused():
            return refused
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if refused := errors.refused():
                return refused
            if msg is None:
                continue
            if msg.error() is None:
                return "allowed"
            if msg.error().code() != KafkaError._PARTITION_EOF:
                return _name(msg.error())
        return errors.refused() or "nothing read"
    finally:
        consumer.close()


def probe_join(conf: dict[str, Any], topic: str, group: str, timeout_s: float = 20.0) -> str:
    """Join consumer group `group` subscribed to `topic`: allowed when partitions come."""
    errors = _Errors()
    conf = {k: v for k, v in conf.items() if k != "probe.group"}
    consumer = Consumer(
        {
            **conf,
            "group.id": group,
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "error_cb": errors,
        }
    )
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if refused := errors.refused():
                return refused
            if msg is not None and msg.error() is not None:
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    return _name(msg.error())
            if consumer.assignment():
                return "allowed"
        return errors.refused() or "no assignment"
    finally:
        consumer.close()


def _attempts(t: TopicNames, prefix: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """(attempt, kind, args)."""
    return [
        (f"write {t.commands(ALPHA)}", "write", (t.commands(ALPHA),)),
        (f"write {t.commands(BETA)}", "write", (t.commands(BETA),)),
        (f"write {t.admin_commands}", "write", (t.admin_commands,)),
        (f"write {t.results(ALPHA)} (forge a result)", "write", (t.results(ALPHA),)),
        (f"read {t.commands(ALPHA)}", "read", (t.commands(ALPHA),)),
        (f"read {t.results(ALPHA)}", "read", (t.results(ALPHA),)),
        (f"read {t.results(BETA)}", "read", (t.results(BETA),)),
        (f"read {t.admin_results}", "read", (t.admin_results,)),
        (f"read {t.applied_services}", "read", (t.applied_services,)),
        (
            f"join group {prefix}.{ALPHA}.svc",
            "join",
            (t.results(ALPHA), f"{prefix}.{ALPHA}.svc"),
        ),
        (f"join group {prefix}.{BETA}.svc", "join", (t.results(BETA), f"{prefix}.{BETA}.svc")),
        # Another tenant's group on one's own topic: only the group ACL can refuse it.
        (
            f"join group {prefix}.{BETA}.svc on {t.results(ALPHA)}",
            "join",
            (t.results(ALPHA), f"{prefix}.{BETA}.svc"),
        ),
        (
            f"join group {prefix}.{ALPHA}.svc on {t.results(BETA)}",
            "join",
            (t.results(BETA), f"{prefix}.{ALPHA}.svc"),
        ),
    ]


# What must be allowed; everything else in the table must be refused.
ALLOWED = {
    "tenant-alpha": {
        "write {p}.alpha.commands",
        "read {p}.alpha.results",
        "join group {p}.alpha.svc",
    },
    "tenant-beta": {"write {p}.beta.commands", "read {p}.beta.results", "join group {p}.beta.svc"},
    "billing": {"write {p}.admin.commands", "read {p}.admin.results"},
    "warehouse": {"read {p}.applied-services"},
    "ledger": {"read {p}.alpha.commands"},
    "relay": {"write {p}.alpha.results (forge a result)"},
    "sweeper": {"write {p}.alpha.commands", "write {p}.beta.commands"},
    "gateway": set(),
    "api": set(),
    "no credentials": set(),
    "wrong password": set(),
}


def _seed(secure: Settings, topics: list[str]) -> None:
    """One committed record in partition 0 of each topic, so an allowed read finds one."""
    from billy_core.kafka import config as kafka_config

    producer = Producer(kafka_config.plain_producer(secure, "security-seed"))
    for topic in topics:
        producer.produce(topic, key=b"probe", value=PROBE, partition=0)
    assert producer.flush(30) == 0


def test_isolation_of_every_pair_of_principals(broker, secure, principals):
    prefix = secure.topic_prefix
    t = TopicNames(prefix)
    _seed(
        secure,
        [t.commands(ALPHA), t.results(ALPHA), t.results(BETA), t.admin_results, t.applied_services],
    )
    confs: dict[str, dict[str, Any]] = {
        name: _sasl(broker, *principals[name])
        for name in ALLOWED
        if name not in ("no credentials", "wrong password")
    }
    # The group each principal may use, for the read probes (none for sweeper and api).
    own_group = {
        "tenant-alpha": f"{prefix}.{ALPHA}.probe",
        "tenant-beta": f"{prefix}.{BETA}.probe",
        "billing": f"{prefix}.admin.probe",
        "warehouse": f"{prefix}.internal.warehouse.probe",
        "ledger": secure.ledger_group,
        "relay": "billy-relay-positions-reader",
        "gateway": secure.gateway_group,
    }
    for name, group in own_group.items():
        confs[name]["probe.group"] = group
    confs["no credentials"] = {
        "logger": PROBE_LOG,
        "bootstrap.servers": broker.bootstrap,
        "socket.timeout.ms": 10_000,
    }
    confs["wrong password"] = _sasl(broker, principals["tenant-alpha"][0], "not-the-password")
    attempts = _attempts(t, prefix)
    jobs = [(who, attempt, kind, args) for who in ALLOWED for attempt, kind, args in attempts]
    probes = {"write": probe_write, "read": probe_read, "join": probe_join}

    def run(job: tuple[str, str, str, tuple[str, ...]]) -> tuple[str, str, str, str]:
        who, attempt, kind, args = job
        expected = "allowed" if attempt in _allowed(who, prefix) else "refused"
        return who, attempt, expected, probes[kind](confs[who], *args)

    with ThreadPoolExecutor(max_workers=8) as pool:
        rows = list(pool.map(run, jobs))
    _report(rows, prefix)
    wrong = []
    for who, attempt, expected, outcome in rows:
        if expected == "allowed":
            ok = outcome == "allowed"
        elif who == "no credentials":
            ok = outcome == NO_SASL
        elif who == "wrong password":
            ok = outcome == AUTH_REFUSED
        else:  # the broker's own authorization error, nothing vaguer
            ok = outcome in ("TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED")
        own_topic = who.startswith("tenant-") and attempt.endswith(
            f" on {prefix}.{who[7:]}.results"
        )
        if own_topic:  # its own topic, another tenant's group: refused for the group
            ok = outcome == "GROUP_AUTHORIZATION_FAILED"
        if not ok:
            wrong.append((who, attempt, expected, outcome))
    assert not wrong, wrong
    assert sum(1 for r in rows if r[2] == "allowed") == sum(len(v) for v in ALLOWED.values())


def _allowed(who: str, prefix: str) -> set[str]:
    return {a.format(p=prefix) for a in ALLOWED[who]}


def _report(rows: list[tuple[str, str, str, str]], prefix: str) -> None:
    REPORTS.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# Isolation on the secured broker (deployment prefix {prefix})",
        "",
        "| attempt | principal | expected | outcome |",
        "| --- | --- | --- | --- |",
    ]
    for who, attempt, expected, outcome in rows:
        lines.append(f"| {attempt.replace(prefix, 'P')} | {who} | {expected} | {outcome} |")
    (REPORTS / "isolation-latest.md").write_text("\n".join(lines) + "\n")
    (REPORTS / "isolation-latest.json").write_text(json.dumps(rows, indent=1))


def test_tls_listener_with_the_stacks_ca(broker, secure, principals):
    """SASL_SSL: the broker's certificate checks out against the stack's CA (and its name,
    127.0.0.1); a client that does not trust that CA is refused in the TLS handshake."""
    user, password = principals["tenant-alpha"]
    t = TopicNames(secure.topic_prefix)
    tls = {
        **sasl_config(user, password, ca_location=broker.ca_location),
        "logger": PROBE_LOG,
        "bootstrap.servers": broker.ssl_bootstrap,
        "socket.timeout.ms": 10_000,
    }
    assert probe_write(tls, t.commands(ALPHA)) == "allowed"
    assert probe_write(tls, t.commands(BETA)) == "TOPIC_AUTHORIZATION_FAILED"
    untrusted = {k: v for k, v in tls.items() if k != "ssl.ca.location"}
    errors = _Errors()
    producer = Producer(
        {**untrusted, "logger": PROBE_LOG, "error_cb": errors, "message.timeout.ms": 5000}
    )
    producer.produce(t.commands(ALPHA), value=PROBE)
    producer.flush(8)
    assert any(e.code() in (KafkaError._SSL, KafkaError._TRANSPORT) for e in errors.seen), [
        str(e) for e in errors.seen
    ]


def _roles(settings: Settings, names: tuple[str, ...], creds: dict[str, tuple[str, str]]):
    """Each role on its own principal, on threads of this process."""
    stop = threading.Event()
    failures: list[BaseException] = []
    threads = []
    for role in names:
        user, password = creds[role]
        own = Settings(
            **{
                **settings.model_dump(),
                "kafka_sasl_username": user,
                "kafka_sasl_password": password,
            }
        )
        target = role_target(own, role)

        def guarded(target=target) -> None:
            try:
                target(stop)
            except BaseException as exc:
                failures.append(exc)

        thread = threading.Thread(target=guarded, daemon=True)
        thread.start()
        threads.append(thread)
    return stop, threads, failures


def test_roles_run_on_their_own_least_privilege_principals(broker, secure, engine, principals):
    """ledger, relay and sweeper each as its own principal; the billing team funds a wallet
    through the admin topic and a tenant onboarded now charges it, each with its own
    credentials. (A fresh tenant: the isolation probes left records in alpha's topics.)"""
    done = onboarding.add(secure, engine, DELTA)
    deployment = Settings(**{**secure.model_dump(), "tenants": (ALPHA, BETA, DELTA)})
    stop, threads, failures = _roles(deployment, ("ledger", "relay", "sweeper"), principals)
    alpha = sasl_config(done.principal, done.password, protocol="SASL_PLAINTEXT")
    billing = sasl_config(*principals["billing"], protocol="SASL_PLAINTEXT")
    prefix = secure.topic_prefix
    try:
        with (
            BillyClient(broker.bootstrap, DELTA, prefix=prefix, extra_config=alpha) as svc,
            BillyAdminClient(
                broker.bootstrap, operator="a.petrova", prefix=prefix, extra_config=billing
            ) as team,
            ResultReader(
                broker.bootstrap, DELTA, f"{prefix}.{DELTA}.svc", prefix=prefix, extra_config=alpha
            ) as results,
            ResultReader.for_admin(
                broker.bootstrap, f"{prefix}.admin.team", prefix=prefix, extra_config=billing
            ) as admin_results,
        ):
            reg = svc.register_client("c-1", "Ivan Petrov", "ivan@example.com", wait=True)
            assert results.wait_for(reg, timeout_s=60).code == "ok"
            adj = team.adjust(DELTA, "c-1", 10_000, "RUB", "opening balance", wait=True)
            assert admin_results.wait_for(adj, timeout_s=60).code == "ok"
            charge = svc.charge("c-1", "vas", 2_500, "RUB", wait=True)
            result = results.wait_for(charge, timeout_s=60)
            assert (result.code, result.available_minor) == ("ok", 7_500)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert not failures, failures


def test_read_tokens_hashed_rotated_and_revoked(secure, engine, principals, broker):
    app = TestClient(create_app(secure, engine))
    token = principals["token-alpha"][1]
    path = f"/v1/{ALPHA}/clients/nobody/wallet"
    assert app.get(path, headers={"Authorization": f"Bearer {token}"}).status_code == 404
    assert app.get(path, headers={"Authorization": f"Bearer {token}x"}).status_code == 401
    other = f"/v1/{BETA}/clients/nobody/wallet"
    assert app.get(other, headers={"Authorization": f"Bearer {token}"}).status_code == 404
    with engine.connect() as conn:  # only hashes are stored
        stored = conn.exec_driver_sql("SELECT secret_sha256 FROM api_tokens").all()
    assert stored and all(token.split(".")[2].encode() not in bytes(r[0]) for r in stored)

    new = onboarding.rotate_token(engine, ALPHA, overlap_s=2)
    for t in (token, new):  # both work during the window
        assert app.get(path, headers={"Authorization": f"Bearer {t}"}).status_code == 404
    time.sleep(2.5)
    assert app.get(path, headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert app.get(path, headers={"Authorization": f"Bearer {new}"}).status_code == 404
    with engine.connect() as conn:
        assert tokens.tenant_of(conn, new) == ALPHA


def test_tenant_removal_revokes_everything(broker, secure, engine, principals):
    gone_tenant = "gamma"
    done = onboarding.add(secure, engine, gone_tenant)
    t = TopicNames(secure.topic_prefix)
    conf = _sasl(broker, done.principal, done.password)
    assert probe_write(conf, t.commands(gone_tenant)) == "allowed"
    listed = {r.tenant: r for r in onboarding.listing(secure, engine)}
    assert listed[gone_tenant].tokens_live == 1
    gone = onboarding.remove(secure, engine, gone_tenant)
    assert gone["credentials"] == 1 and gone["tokens"] == 1 and gone["acls"] >= 3
    assert probe_write(conf, t.commands(gone_tenant)) == AUTH_REFUSED
    app = TestClient(create_app(secure, engine))
    auth = {"Authorization": f"Bearer {done.token}"}
    assert app.get(f"/v1/{gone_tenant}/clients/c/wallet", headers=auth).status_code == 401
    assert acls.tenant_principal(secure.topic_prefix, gone_tenant) == done.principal
