"""The fault profile of TESTING.md against real processes, broker and PostgreSQL.

billy's roles run as separate processes under a small supervisor; a seeded workload runs
while ledgers and the relay are SIGKILLed, a ledger is paused past its session timeout (a
zombie), a second ledger joins and leaves (rebalances), PostgreSQL stops immediately and the
broker is SIGKILLed and restarted. Then the checker reads everything back and every invariant
must show zero violations. `BILLY_FAULT_PROFILE=long` runs the long profile.

A SIGKILL keeps the OS page cache, so this is not a power-loss test; a one-broker cluster
cannot test replication.
"""

from __future__ import annotations

import json
import os
import threading
import time

import psycopg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from billy_core.kafka import config as kafka_config
from billy_core.kafka.admin import ensure_topics
from billy_core.kafka.topics import TopicNames
from billy_core.settings import Settings
from tests.fault import checker
from tests.fault.processes import REPO, Supervisor, stack
from tests.fault.workload import TENANTS, Workload

pytestmark = [pytest.mark.fault, pytest.mark.integration]

PROFILES = {
    # commands, faults (in the order they are applied), sending rate per second
    "smoke": dict(
        commands=5_000,
        rate=70,
        clients_per_tenant=40,
        faults=[
            "ledger_kill",
            "rebalance_join",
            "relay_kill",
            "zombie_pause",
            "ledger_kill",
            "pg_restart",
            "ledger_kill",
            "broker_restart",
            "ledger_kill",
            "rebalance_leave",
        ],
    ),
    "long": dict(
        commands=100_000,
        rate=400,
        clients_per_tenant=500,
        faults=(
            ["rebalance_join"]
            + [
                f
                for cycle in range(5)
                for f in (
                    "ledger_kill",
                    "relay_kill",
                    "ledger_kill",
                    "pg_restart",
                    "ledger_kill",
                    *(["zombie_pause"] if cycle % 2 == 0 else []),
                    "broker_restart",
                    "ledger_kill",
                    "ledger_kill",
                    "rebalance_leave",
                    "ledger_kill",
                    "rebalance_join",
                )
            ]
            + ["rebalance_leave"]
        ),
    ),
}
SESSION_TIMEOUT_S = 10  # billy_core.kafka.config.ledger_consumer
REPORT_DIR = REPO / ".state" / "fault-reports"


def _count_processed(settings: Settings) -> int:
    with psycopg.connect(settings.database_url) as conn:
        return conn.execute("SELECT count(*) FROM processed_commands").fetchone()[0]


def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.5)


def _end_offsets(settings: Settings, topics: list[str]) -> dict[tuple[str, int], int]:
    consumer = Consumer(kafka_config.reader(settings, "fault-main-start"))
    try:
        md = consumer.list_topics(timeout=30).topics
        return {
            (t, p): consumer.get_watermark_offsets(TopicPartition(t, p), 30)[1]
            for t in topics
            for p in md[t].partitions
        }
    finally:
        consumer.close()


class Faults:
    def __init__(self, supervisor: Supervisor) -> None:
        self.sup = supervisor
        self.done: list[tuple[float, str]] = []
        self.ledger_b = False
        self.turn = 0

    def apply(self, fault: str, t0: float) -> None:
        sup = self.sup
        if fault == "ledger_kill":
            self.turn += 1
            victim = "ledger-b" if self.ledger_b and self.turn % 2 == 0 else "ledger-a"
            sup.kill(victim)
        elif fault == "relay_kill":
            sup.kill("relay")
        elif fault == "rebalance_join":
            sup.start("ledger-b", "ledger")
            self.ledger_b = True
        elif fault == "rebalance_leave":
            sup.stop("ledger-b")
            self.ledger_b = False
        elif fault == "zombie_pause":
            sup.pause("ledger-a")
            time.sleep(SESSION_TIMEOUT_S + 6)
            sup.resume("ledger-a")
        elif fault == "pg_restart":
            stack("pg-kill")
            time.sleep(1)
            stack("pg-up")
        elif fault == "broker_restart":
            stack("kafka-kill")
            stack("kafka-up")  # waits until the broker serves again
        self.done.append((round(time.monotonic() - t0, 1), fault))


def test_fault_profile(stack, database_url):
    profile_name = os.environ.get("BILLY_FAULT_PROFILE", "smoke")
    profile = PROFILES[profile_name]
    prefix = f"f{os.urandom(4).hex()}"
    env = {
        "BILLY_KAFKA_BOOTSTRAP": stack["kafka"],
        "BILLY_DATABASE_URL": database_url,
        "BILLY_TOPIC_PREFIX": prefix,
        "BILLY_TENANTS": ",".join(TENANTS),
        "BILLY_LEDGER_GROUP": f"{prefix}-ledger",
        "BILLY_TOPIC_PARTITIONS_MAX": "6",
        "BILLY_HOLD_SWEEP_INTERVAL_S": "1",
        "BILLY_BALANCE_GATEWAY": "false",  # no Balance in this profile (test_fault_gateway has it)
    }
    settings = Settings(
        **{k[6:].lower(): v for k, v in env.items() if k != "BILLY_TENANTS"}, tenants=TENANTS
    )
    topics = TopicNames(prefix)
    ensure_topics(settings)
    log_dir = REPORT_DIR / prefix
    log_dir.mkdir(parents=True, exist_ok=True)
    sup = Supervisor(env, log_dir)
    faults = Faults(sup)
    producer = Producer(
        {
            **kafka_config.plain_producer(settings, "fault-workload"),
            # the workload outlives a broker restart; nothing may be dropped
            "delivery.timeout.ms": 600_000,
            "message.timeout.ms": 600_000,
        }
    )
    workload = Workload(seed=20261126, clients_per_tenant=profile["clients_per_tenant"])
    sent = {"records": 0, "poison": 0}

    def produce(batch) -> None:
        for s in batch:
            topic = topics.admin_commands if s.admin else topics.commands(s.tenant)
            while True:
                try:
                    producer.produce(topic, key=s.key, value=s.value)
                    break
                except BufferError:
                    producer.poll(0.1)
            sent["records"] += 1
            sent["poison"] += s.poison is not None
        producer.poll(0)

    try:
        for role in ("ledger-a", "relay", "sweeper"):
            sup.start(role, role.split("-")[0])
        registrations = workload.registrations()
        produce(registrations)
        producer.flush(60)
        _wait(lambda: _count_processed(settings) >= len(registrations), 120, "registrations")
        fundings = workload.fundings()
        produce(fundings)
        producer.flush(60)
        _wait(lambda: _count_processed(settings) >= 2 * len(registrations), 120, "fundings")
        main_start = _end_offsets(settings, [topics.commands(t) for t in TENANTS])

        remaining = profile["commands"] - len(registrations) - len(fundings)
        duration_s = remaining / profile["rate"]

        def send_main() -> None:
            started = time.monotonic()
            for i in range(remaining):
                produce([workload.next()])
                lag = started + i / profile["rate"] - time.monotonic()
                if lag > 0:
                    time.sleep(lag)
            producer.flush(600)

        sender = threading.Thread(target=send_main, daemon=True)
        t0 = time.monotonic()
        sender.start()
        gap = duration_s / (len(profile["faults"]) + 1)
        for i, fault in enumerate(profile["faults"]):
            time.sleep(max(0.0, t0 + (i + 1) * gap - time.monotonic()))
            faults.apply(fault, t0)
        last_fault = time.monotonic()
        sender.join(900)
        assert not sender.is_alive(), "the workload did not finish sending"

        quiet_after_s = None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            quiet, state = checker.is_quiet(settings, topics, TENANTS)
            if quiet:
                quiet_after_s = round(time.monotonic() - last_fault, 1)
                break
            time.sleep(1)
        time.sleep(3)  # let the sweeper's last expiries (if any) land, then stop everything
        _wait(lambda: checker.is_quiet(settings, topics, TENANTS)[0], 120, "quiet after expiries")
    finally:
        sup.close()

    report = checker.check(settings, topics, TENANTS, main_start)
    zombie_conflicts = sup.log_text("ledger-a").count("offset conflict")
    summary = {
        "profile": profile_name,
        "records sent": sent["records"],
        "poison sent": sent["poison"],
        "faults": faults.done,
        "fault counts": {
            f: sum(1 for _, x in faults.done if x == f) for f in sorted(set(profile["faults"]))
        },
        "process starts": {n: r.starts for n, r in sup.roles.items()},
        "unplanned exits": {n: r.unplanned_exits for n, r in sup.roles.items()},
        "offset conflicts logged by ledger-a": zombie_conflicts,
        "quiet after last fault (s)": quiet_after_s,
        "counts": dict(sorted(report.counts.items())),
        "violations": dict(report.violations),
    }
    (REPORT_DIR / f"{profile_name}-latest.json").write_text(json.dumps(summary, indent=2))
    assert report.total_violations == 0, json.dumps(summary, indent=2)
    assert quiet_after_s is not None and quiet_after_s <= 60, summary
    # A ledger restarts only when killed: never because of a poison record.
    assert not sup.roles["ledger-a"].unplanned_exits, summary
