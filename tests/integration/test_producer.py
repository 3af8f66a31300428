"""The producer SDK against the real broker: every command comes out of the topic as the same
Command, keyed as the contract says; ResultReader reads committed results only, keeps
results of other commands for later, and finds a command's result after a restart without
close() and with two instances in one group. Each test uses a fresh topic prefix (auto topic
creation is off on the broker, so the test creates its topics, one partition each unless it
says otherwise)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from billy_core import commands as c
from billy_core.codec import decode_command, encode_result
from billy_core.kafka import config as kafka_config
from billy_core.kafka.config import client_security
from billy_core.kafka.partitioner import java_partition
from billy_core.kafka.topics import TopicNames
from billy_core.results import Code, Result, Status
from billy_core.settings import Settings
from producers.client import BillyAdminClient, BillyClient
from producers.errors import DeliveryError
from producers.reader import ResultReader

pytestmark = pytest.mark.integration

TENANT = "autoru"


@pytest.fixture(scope="module")
def settings(stack) -> Settings:
    return Settings(kafka_bootstrap=stack["kafka"])  # SASL/TLS from the environment


@pytest.fixture(scope="module")
def admin(settings):
    client = AdminClient(kafka_config.admin(settings))
    try:
        client.list_topics(timeout=10)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"Kafka at {settings.kafka_bootstrap} does not answer ({exc}); run `make up`")
    return client


@pytest.fixture
def partitions() -> int:
    """Partitions of each topic `topics` makes; a test overrides it with parametrize."""
    return 1


@pytest.fixture
def topics(admin, partitions):
    """A fresh prefix with the tenant's commands and results topics and the admin topic."""
    names = TopicNames(f"t{uuid.uuid4().hex[:12]}")
    wanted = [names.commands(TENANT), names.results(TENANT), names.admin_commands]
    for future in admin.create_topics(
        [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in wanted],
        operation_timeout=30,
    ).values():
        future.result(timeout=30)
    yield names
    for future in admin.delete_topics(wanted, operation_timeout=30).values():
        try:
            future.result(timeout=30)
        except Exception:  # noqa: BLE001 - cleanup only
            pass


def _read_all(settings, topic: str, count: int, timeout_s: float = 30.0) -> list:
    consumer = Consumer(kafka_config.reader(settings, f"test-{uuid.uuid4().hex}"))
    consumer.assign([TopicPartition(topic, 0, 0)])
    records = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            records.append(msg)
    finally:
        consumer.close()
    assert len(records) == count, f"read {len(records)} of {count} records from {topic}"
    return records


def test_every_command_round_trips_through_kafka(settings, topics):
    expires_at = datetime(2030, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
    before_ms = time.time_ns() // 1_000_000
    with BillyClient(
        settings.kafka_bootstrap,
        TENANT,
        prefix=topics.prefix,
        extra_config=client_security(settings),
    ) as billy:
        sent = [
            (
                billy.register_client("c-1", "Ivan Petrov", "ivan@example.com", wait=True),
                c.RegisterClient("Ivan Petrov", "ivan@example.com", "RUB"),
            ),
            (
                billy.charge("c-1", "vas-top", 9900, "RUB", command_id="charge-1", wait=True),
                c.Charge("vas-top", 9900, "RUB"),
            ),
            (
                billy.hold("c-1", "h-1", "call", 5000, "RUB", expires_at),
                c.Hold("h-1", "call", 5000, "RUB", 1_893_553_445_678),
            ),
            (billy.confirm_hold("c-1", "h-1", amount_minor=3000), c.ConfirmHold("h-1", 3000)),
            (billy.release_hold("c-1", "h-2"), c.ReleaseHold("h-2")),
            (billy.refund("c-1", "charge-1"), c.Refund("charge-1", None)),
            (billy.send("c-2", c.Charge("vas", 1, "USD")), c.Charge("vas", 1, "USD")),
        ]
        billy.flush(timeout_s=30)
        assert billy.pending() == 0
    after_ms = time.time_ns() // 1_000_000
    assert sent[1][0] == "charge-1"

    records = _read_all(settings, topics.commands(TENANT), len(sent))
    for (command_id, body), record in zip(sent, records, strict=True):
        command = decode_command(record.value())
        assert command.command_id == command_id
        assert command.body == body
        assert record.key() == command.client_id.encode()
        assert before_ms <= command.issued_at_ms <= after_ms
        c.validate(command)
    assert [decode_command(r.value()).client_id for r in records] == ["c-1"] * 6 + ["c-2"]


def test_a_command_sent_on_an_idle_client_does_not_linger(settings, topics):
    """A record sent with nothing in flight and nothing sent for linger.ms goes out at once
    (producers/_idle_flush.py), a new client's first one included (its connection and
    producer id come first). A linger of 20 s makes the difference plain. (When a record
    lingers: tests/unit/test_producer.py.)"""
    with BillyClient(
        settings.kafka_bootstrap,
        TENANT,
        prefix=topics.prefix,
        extra_config={**client_security(settings), "linger.ms": 20_000},
    ) as billy:
        billy.charge("c-1", "vas", 100, "RUB", command_id="idle-1")
        deadline = time.monotonic() + 10
        while billy.pending() and time.monotonic() < deadline:
            billy.poll(0.1)
        assert billy.pending() == 0, "a send on an idle client waited for linger.ms"
    assert len(_read_all(settings, topics.commands(TENANT), 1)) == 1


def test_adjust_goes_to_the_admin_topic_keyed_tenant_slash_client(settings, topics):
    with BillyAdminClient(
        settings.kafka_bootstrap,
        operator="a.petrova",
        prefix=topics.prefix,
        extra_config=client_security(settings),
    ) as team:
        command_id = team.adjust(TENANT, "c-1", -250, "RUB", "double charge", wait=True)
    (record,) = _read_all(settings, topics.admin_commands, 1)
    assert record.key() == b"autoru/c-1"
    command = decode_command(record.value())
    assert command.command_id == command_id and command.client_id == "c-1"
    assert command.body == c.Adjust(-250, "RUB", "double charge", "a.petrova")
    c.validate(command, admin=True)


def test_delivery_to_a_missing_topic_is_raised(settings, topics):
    # Topics of another, never created prefix: the broker has auto creation off.
    client = BillyClient(
        settings.kafka_bootstrap,
        TENANT,
        prefix=topics.prefix + "-missing",
        extra_config={**client_security(settings), "delivery.timeout.ms": 3000},
    )
    with pytest.raises(DeliveryError) as info:
        client.charge("c-1", "vas", 100, "RUB", command_id="lost-1", wait=True, timeout_s=20)
    assert info.value.command_ids == ["lost-1"]


def _result(command_id: str, available_minor: int = 100, client_id: str = "c-1") -> Result:
    return Result(
        command_id=command_id,
        client_id=client_id,
        status=Status.APPLIED,
        code=Code.OK,
        message="",
        currency="RUB",
        available_minor=available_minor,
        held_minor=0,
        wallet_version=1,
        duplicate=False,
        processed_at_ms=1_714_521_600_000,
    )


def _publish_results(settings, topic: str, committed: list[Result], aborted: list[Result]) -> None:
    """Publish the way billy's relay does: in Kafka transactions; some aborted."""
    producer = Producer(kafka_config.transactional_producer(settings, f"test-{uuid.uuid4().hex}"))
    producer.init_transactions(30)
    producer.begin_transaction()
    for r in aborted:
        producer.produce(topic, key=r.client_id.encode(), value=encode_result(r))
    producer.flush(30)
    producer.abort_transaction(30)
    producer.begin_transaction()
    for r in committed:
        producer.produce(topic, key=r.client_id.encode(), value=encode_result(r))
    producer.commit_transaction(30)


def test_reader_waits_keeps_other_results_and_skips_aborted_ones(settings, topics):
    topic = topics.results(TENANT)
    _publish_results(
        settings,
        topic,
        committed=[_result("r-1", 1), _result("r-2", 2), _result("r-3", 3), _result("r-1", 4)],
        aborted=[_result("r-aborted")],
    )
    with ResultReader(
        settings.kafka_bootstrap,
        TENANT,
        f"g-{uuid.uuid4().hex}",
        prefix=topics.prefix,
        idle_timeout_s=1.0,
        extra_config=client_security(settings),
    ) as reader:
        assert reader.wait_for("r-2", timeout_s=30) == _result("r-2", 2)
        assert reader.kept == 1  # r-1 was read on the way and kept
        assert reader.wait_for("r-1", timeout_s=1).available_minor == 1
        assert reader.kept == 0
        # The same command answered twice (a resend): each wait_for returns the next one.
        assert reader.wait_for("r-1", timeout_s=10).available_minor == 4
        assert reader.kept == 1  # r-3
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="r-aborted"):
            reader.wait_for("r-aborted", timeout_s=2)
        assert time.monotonic() - started < 5
        # The group's iteration is independent of wait_for: every committed result, in order.
        assert [r.command_id for r in reader] == ["r-1", "r-2", "r-3", "r-1"]
        reader.commit()


def test_commit_keeps_the_group_position(settings, topics):
    topic = topics.results(TENANT)
    _publish_results(settings, topic, committed=[_result("a"), _result("b")], aborted=[])
    group = f"g-{uuid.uuid4().hex}"
    with ResultReader(
        settings.kafka_bootstrap,
        TENANT,
        group,
        prefix=topics.prefix,
        extra_config=client_security(settings),
    ) as reader:
        reader.commit()  # nothing read yet: a no-op, not an error
        assert reader.wait_for("b", timeout_s=30).command_id == "b"
        reader.commit()  # wait_for moves no group position: still a no-op
        assert reader.poll(30).command_id == "a"
        reader.commit()
    with ResultReader(
        settings.kafka_bootstrap,
        TENANT,
        group,
        prefix=topics.prefix,
        idle_timeout_s=3,
        extra_config=client_security(settings),
    ) as again:
        assert [r.command_id for r in again] == ["b"]


# A service instance that joins the group, reads, says so, and waits to be killed: a crash
# never sends the group a LeaveGroup, so the broker keeps it as a member until its session
# times out (librdkafka's default, 45 s).
_MEMBER = """
import json, os, sys, time
from producers.reader import ResultReader
security = json.loads(os.environ.get("SDK_TEST_SECURITY", "{}"))
reader = ResultReader(sys.argv[1], "autoru", sys.argv[2], prefix=sys.argv[3], extra_config=security)
deadline = time.monotonic() + 30
while not reader._consumer.assignment() and time.monotonic() < deadline:
    reader.poll(0.5)
print("assigned" if reader._consumer.assignment() else "unassigned", flush=True)
time.sleep(120)
"""


def test_wait_for_after_a_restart_without_close(settings, topics):
    topic = topics.results(TENANT)
    group = f"g-{uuid.uuid4().hex}"
    member = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _MEMBER,
            settings.kafka_bootstrap,
            group,
            topics.prefix,
        ],
        env={**os.environ, "SDK_TEST_SECURITY": json.dumps(client_security(settings))},
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert member.stdout.readline().strip() == "assigned"
    finally:
        member.kill()  # the restart: no close(), no LeaveGroup
        member.wait(10)
    # One result published while the service was down, one after it came back.
    _publish_results(settings, topic, committed=[_result("before-restart")], aborted=[])
    started = time.monotonic()
    with ResultReader(
        settings.kafka_bootstrap,
        TENANT,
        group,
        prefix=topics.prefix,
        extra_config=client_security(settings),
    ) as reader:
        assert reader.wait_for("before-restart", timeout_s=20).command_id == "before-restart"
        _publish_results(settings, topic, committed=[_result("after-restart")], aborted=[])
        assert reader.wait_for("after-restart", timeout_s=20).command_id == "after-restart"
    # Well within the dead member's session: the old reader waited for it to expire (45 s).
    assert time.monotonic() - started < 15


def _clients_on_every_partition(partitions: int) -> list[str]:
    """One client id per partition, by the contract's partitioner (where billy's relay puts
    each client's results)."""
    found: dict[int, str] = {}
    for i in range(10_000):
        client_id = f"client-{i}"
        found.setdefault(java_partition(client_id.encode(), partitions), client_id)
        if len(found) == partitions:
            return [found[p] for p in range(partitions)]
    raise AssertionError("no client id for some partition")


@pytest.mark.parametrize("partitions", [6])
def test_wait_for_with_two_instances_in_one_group(settings, topics, partitions):
    topic = topics.results(TENANT)
    group = f"g-{uuid.uuid4().hex}"
    kw = {
        "prefix": topics.prefix,
        "idle_timeout_s": 1.0,
        "extra_config": client_security(settings),
    }
    with (
        ResultReader(settings.kafka_bootstrap, TENANT, group, **kw) as first,
        ResultReader(settings.kafka_bootstrap, TENANT, group, **kw) as second,
    ):
        # Both instances also read the group's stream, so the group splits the partitions.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            first._consumer.assignment() and second._consumer.assignment()
        ):
            first.poll(0.2)
            second.poll(0.2)
        owned = [{tp.partition for tp in r._consumer.assignment()} for r in (first, second)]
        assert owned[0] and owned[1] and not owned[0] & owned[1], owned

        clients = _clients_on_every_partition(partitions)
        results = [_result(f"cmd-{i}", client_id=c) for i, c in enumerate(clients)]
        _publish_results(settings, topic, committed=results, aborted=[])
        # Each instance waits for the commands it sent: every other one, on every partition,
        # so each waits for results on partitions the group gave the other instance.
        for i, result in enumerate(results):
            reader = first if i % 2 == 0 else second
            found = reader.wait_for(result.command_id, timeout_s=15)
            assert found == result
        # The group still delivers each result once, to the instance owning its partition.
        seen = [r.command_id for r in first] + [r.command_id for r in second]
        assert sorted(seen) == sorted(r.command_id for r in results)
