"""The stream engine's contract, run against every handler (tests/integration/engine/cases.py).

For each handler: a zombie writes nothing; a new owner resumes at the stored position after
reassignment (a restart), whatever Kafka's committed offsets say; poison goes to the DLQ as an
exact copy while the next record applies; a poison flood pauses only its partition; a
PostgreSQL connection loss mid-batch and a broker restart lose and double nothing.
"""

from __future__ import annotations

import base64
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from confluent_kafka import Producer

from billy_core.errors import OffsetConflict
from billy_core.kafka import config as kafka_config
from billy_core.kafka.admin import ensure_topics
from billy_core.kafka.partitioner import java_partition
from billy_core.kafka.topics import TopicNames
from billy_core.settings import Settings
from billy_core.stream import Poison, Record, outbox, positions
from billy_core.stream.apply_step import PartitionWork, apply_batch, apply_batches
from tests.conftest import REPO
from tests.integration.engine.cases import CASES, HandlerCase

pytestmark = pytest.mark.integration


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def case(request: pytest.FixtureRequest) -> HandlerCase:
    return request.param


@pytest.fixture
def world(stack, database_url) -> Iterator[Settings]:
    """Fresh topics and group per test (the module's database is shared, effects are counted
    per test by distinct ids)."""
    prefix = f"e{uuid.uuid4().hex[:10]}"
    settings = Settings(
        kafka_bootstrap=stack["kafka"],
        database_url=database_url,
        topic_prefix=prefix,
        tenants=("autoru",),
        ledger_group=f"{prefix}-ledger",
        topic_partitions_max=3,
        batch_wait_ms=10,
        dlq_window_min=20,
        dlq_ratio_max=0.5,
        retry_backoff_max_s=1.0,
        # The engine's contract, not Balance's: without the gateway, a RegisterClient (the
        # ledger case's good record) is applied at once instead of waiting for Balance.
        balance_gateway=False,
    )
    ensure_topics(settings)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM processed_commands WHERE command_id LIKE 'reg-%%'")
    yield settings


class Running:
    """An engine on a thread; `stop()` joins it and re-raises what killed it."""

    def __init__(self, engine) -> None:  # type: ignore[no-untyped-def]
        self.engine = engine
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.engine.run(self.stop_event)
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the engine did not stop"
        if self.error is not None:
            raise self.error


def _produce(settings: Settings, topic: str, records, partition: int | None = None) -> None:
    producer = Producer(kafka_config.plain_producer(settings, "engine-contract"))
    for key, value in records:
        kwargs = {} if partition is None else {"partition": partition}
        producer.produce(topic, key=key, value=value, **kwargs)
    assert producer.flush(30) == 0


def _wait(predicate, timeout_s: float = 60.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout_s} s")
        time.sleep(0.2)


def _effects(case: HandlerCase, settings: Settings) -> int:
    with psycopg.connect(settings.database_url) as conn:
        return case.effects(conn)


def _stored(settings: Settings, group: str, topic: str) -> dict[int, int]:
    with psycopg.connect(settings.database_url) as conn:
        rows = conn.execute(
            "SELECT partition, next_offset FROM consumer_offsets"
            " WHERE consumer_group = %s AND topic = %s",
            (group, topic),
        ).fetchall()
    return {p: o for p, o in rows}


def _outbox_dlq(settings: Settings, topics: TopicNames) -> list[tuple]:
    """(key, value, headers as stored in a one-record row: [[name, base64 value], ...]) of
    every DLQ copy in the outbox, from one-record rows and packed batches alike."""
    with psycopg.connect(settings.database_url) as conn:
        rows = conn.execute(
            "SELECT topic, key, value, headers, batch FROM outbox WHERE deployment = %s"
            " ORDER BY shard, seq",
            (topics.prefix,),
        ).fetchall()
    copies: list[tuple] = []
    for topic, key, value, headers, batch in rows:
        if batch is None:
            if topic == topics.dlq:
                copies.append((key, value, headers))
            continue
        for t, k, v, _, hs in outbox.unpack(batch):
            if t == topics.dlq:
                stored = [[n, None if x is None else base64.b64encode(x).decode()] for n, x in hs]
                copies.append((k, v, stored))
    return copies


# --- the contract --------------------------------------------------------------------------


def test_a_zombie_writes_nothing(case: HandlerCase, world: Settings) -> None:
    """The old owner of a partition wakes after the new owner moved on: its batch is refused
    by the position compare-and-set and not one effect is written."""
    engine = case.build(world)
    handler, topic = engine.handler, case.input_topic(TopicNames(world.topic_prefix))
    records = [Record(topic, 0, i, 1_000 + i, *case.good(i)) for i in range(3)]
    items = [handler.decode(r) for r in records]
    assert not any(isinstance(i, Poison) for i in items)
    deployment, dlq = world.topic_prefix, TopicNames(world.topic_prefix).dlq
    with psycopg.connect(world.database_url) as new, psycopg.connect(world.database_url) as old:
        assert positions.claim(new, handler.group, topic, 0).next_offset == 0
        apply_batch(new, handler, deployment, dlq, PartitionWork(topic, 0, 0, 1, items[:2], ()))
        before = _effects(case, world)
        with pytest.raises(OffsetConflict):  # the old owner still believes the position is 0
            apply_batch(old, handler, deployment, dlq, PartitionWork(topic, 0, 0, 1, items[:2], ()))
        with pytest.raises(OffsetConflict):  # nor can it write past the new owner
            apply_batch(old, handler, deployment, dlq, PartitionWork(topic, 0, 1, 2, items[2:], ()))
        assert _effects(case, world) == before == 2
        assert positions.claim(new, handler.group, topic, 0).next_offset == 2
    engine.pool.close()


def test_small_batches_of_several_partitions_share_one_transaction(
    case: HandlerCase, world: Settings
) -> None:
    """A merged transaction (`Handler.mergeable`) applies every partition's batch, keeps
    each partition's outputs in its own shard and moves every position, all in one
    transaction (one `now()`); when any position moved meanwhile, none of it is written."""
    engine = case.build(world)
    handler, topic = engine.handler, case.input_topic(TopicNames(world.topic_prefix))
    assert handler.mergeable(topic)
    deployment, dlq = world.topic_prefix, TopicNames(world.topic_prefix).dlq

    def work(partition: int, first: int, expected: int) -> PartitionWork:  # type: ignore[type-arg]
        records = [
            Record(topic, partition, expected + j, 1_000, *case.good(first + j)) for j in range(2)
        ]
        return PartitionWork(
            topic, partition, expected, expected + 1, [handler.decode(r) for r in records], ()
        )

    with psycopg.connect(world.database_url) as conn:
        for p in range(3):
            positions.claim(conn, handler.group, topic, p)
        done = apply_batches(conn, handler, deployment, dlq, [work(p, 10 * p, 0) for p in range(3)])
        assert [c.next_offset for c in done] == [2, 2, 2]
        assert _effects(case, world) == 6
        stamps = conn.execute(
            "SELECT DISTINCT updated_at FROM consumer_offsets WHERE consumer_group = %s"
            " AND topic = %s",
            (handler.group, topic),
        ).fetchall()
        assert len(stamps) == 1  # one transaction moved all three positions
        shards = conn.execute(
            "SELECT DISTINCT shard FROM outbox WHERE deployment = %s", (deployment,)
        ).fetchall()
        assert sorted(s for (s,) in shards) == [f"{topic}/{p}" for p in range(3)]
        # Partition 1 is believed at 0 but stands at 2: the whole merged batch is refused.
        stale = [work(0, 100, 2), work(1, 110, 0), work(2, 120, 2)]
        with pytest.raises(OffsetConflict):
            apply_batches(conn, handler, deployment, dlq, stale)
        assert _effects(case, world) == 6
        assert _stored(world, handler.group, topic) == {0: 2, 1: 2, 2: 2}
    engine.pool.close()


def test_reassignment_resumes_at_the_stored_position(case: HandlerCase, world: Settings) -> None:
    """A restarted engine (a new assignment) seeks to the positions in PostgreSQL, not to
    Kafka's committed offsets: nothing is applied twice and nothing is skipped."""
    topic = case.input_topic(TopicNames(world.topic_prefix))
    first = Running(case.build(world))
    _produce(world, topic, [case.good(i) for i in range(30)])
    _wait(lambda: _effects(case, world) == 30, what="30 effects")
    first.stop()
    # Kafka's group offsets point at the start (the engine never commits them): irrelevant.
    _produce(world, topic, [case.good(i) for i in range(30, 50)])
    second = Running(case.build(world))
    _wait(lambda: _effects(case, world) == 50, what="50 effects")
    time.sleep(1.0)  # anything re-applied would show now
    assert _effects(case, world) == 50
    second.stop()
    stored = _stored(world, first.engine.handler.group, topic)
    assert sum(stored.values()) == 50  # one record per offset, positions at the ends


def test_poison_goes_to_the_dlq_exactly_while_the_next_record_applies(
    case: HandlerCase, world: Settings
) -> None:
    topics = TopicNames(world.topic_prefix)
    topic = case.input_topic(topics)
    key, value = case.poison(0)
    producer = Producer(kafka_config.plain_producer(world, "engine-contract"))
    producer.produce(
        topic, key=key, value=value, headers=[("trace", b"t-1"), ("trace", b"t-2")], partition=0
    )
    producer.produce(topic, key=b"", value=None, partition=0)  # empty key, tombstone: kept as such
    good_key, good_value = case.good(0)
    producer.produce(topic, key=good_key, value=good_value, partition=0)
    assert producer.flush(30) == 0
    running = Running(case.build(world))
    try:
        _wait(lambda: _effects(case, world) == 1, what="the good record applied")
        _wait(lambda: len(_outbox_dlq(world, topics)) == 2, what="two DLQ copies")
    finally:
        running.stop()
    copies = {bytes(k) if k is not None else None: (v, h) for k, v, h in _outbox_dlq(world, topics)}
    value_copy, headers = copies[key]
    assert bytes(value_copy) == value
    names = [n for n, _ in headers]
    assert names[:2] == ["trace", "trace"]  # the original headers first, in order
    assert {
        "billy-dlq-reason",
        "billy-source-topic",
        "billy-source-partition",
        "billy-source-offset",
    } <= set(names)
    tombstone_value, _ = copies[b""]
    assert tombstone_value is None  # a null value stays null; the empty key stays empty


def test_a_poison_flood_pauses_only_its_partition(case: HandlerCase, world: Settings) -> None:
    topic = case.input_topic(TopicNames(world.topic_prefix))
    flood = [case.poison(i) for i in range(60)]
    _produce(world, topic, flood, partition=0)
    group = case.build(world).handler.group
    running = Running(case.build(world))
    try:
        # Good records on the other partitions keep flowing (keys chosen for partitions 1, 2).
        good = [case.good(i) for i in range(200)]
        elsewhere = [g for g in good if java_partition(g[0], 3) != 0][:20]
        _produce(world, topic, elsewhere)
        _wait(lambda: _effects(case, world) == len(elsewhere), what="other partitions applied")
        time.sleep(1.0)
        assert _stored(world, group, topic).get(0, 0) == 0  # the flood stays in Kafka
        assert running.engine._parts[(topic, 0)].flooded
    finally:
        running.stop()


def test_a_postgresql_connection_loss_mid_batch_loses_and_doubles_nothing(
    case: HandlerCase, world: Settings
) -> None:
    """Every connection of the engine is killed (pg_terminate_backend) repeatedly while it
    applies: batches roll back and are read again from the stored positions."""
    topic = case.input_topic(TopicNames(world.topic_prefix))
    running = Running(case.build(world))
    dbname = world.database_url.rsplit("/", 1)[1]
    try:
        for round_ in range(5):
            _produce(world, topic, [case.good(round_ * 100 + i) for i in range(100)])
            time.sleep(0.05)
            with psycopg.connect(world.database_url, autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()",
                    (dbname,),
                )
        _wait(lambda: _effects(case, world) == 500, timeout_s=90, what="500 effects")
        time.sleep(1.0)
        assert _effects(case, world) == 500
    finally:
        running.stop()


@pytest.mark.timeout(600)
def test_a_broker_restart_loses_and_doubles_nothing(case: HandlerCase, world: Settings) -> None:
    """The broker is killed (SIGKILL) and started again while records flow."""
    topic = case.input_topic(TopicNames(world.topic_prefix))
    running = Running(case.build(world))
    try:
        _produce(world, topic, [case.good(i) for i in range(100)])
        _wait(lambda: _effects(case, world) == 100, what="100 effects before")
        subprocess.run(["bash", str(REPO / "deploy" / "stack.sh"), "kafka-kill"], check=True)
        subprocess.run(["bash", str(REPO / "deploy" / "stack.sh"), "kafka-up"], check=True)
        _produce(world, topic, [case.good(i) for i in range(100, 200)])
        _wait(lambda: _effects(case, world) == 200, timeout_s=180, what="200 effects after")
        time.sleep(1.0)
        assert _effects(case, world) == 200
    finally:
        running.stop()


def test_a_record_on_another_partition_than_its_keys_is_counted_and_applied(
    case: HandlerCase, world: Settings
) -> None:
    """Policy (README, schemas/topics/commands.json): applied where it landed, counted in
    billy_misrouted_records_total, logged at most once a minute per partition."""
    from billy_core import metrics

    topic = case.input_topic(TopicNames(world.topic_prefix))
    key, value = case.good(0)
    wrong = (java_partition(key, 3) + 1) % 3
    counter = metrics.misrouted_records.labels(case.name)
    before = counter._value.get()
    _produce(world, topic, [(key, value)], partition=wrong)
    running = Running(case.build(world))
    try:
        _wait(lambda: _effects(case, world) == 1, what="the misrouted record applied")
    finally:
        running.stop()
    assert counter._value.get() == before + 1


def test_a_record_postgresql_refuses_is_dead_lettered_alone_and_the_rest_apply(
    world: Settings,
) -> None:
    """Issue 10, item 2: a batch PostgreSQL refuses for good (a NUL the driver refuses, an
    index row too large: 54000, a CHECK: 23514) does not stop the engine. The batch is applied
    again in pieces; each culprit is dead-lettered alone with reason `database: <sqlstate>`
    (and answered through answer_poison) in a transaction that moves the position past it;
    every other record applies. Runs with the probe handler of cases.py: no ledger record can
    make PostgreSQL refuse a batch any more (they are bounded before)."""
    import secrets

    from tests.integration.engine.cases import PROBE_TABLE, probe_build, probe_record

    topics = TopicNames(world.topic_prefix)
    topic = topics.commands("autoru")
    with psycopg.connect(world.database_url, autocommit=True) as conn:
        conn.execute(PROBE_TABLE)
    good = [probe_record(f"good-{i}", i) for i in range(40)]
    refused = [
        probe_record("nul\x00id", 1),  # the driver: text cannot contain NUL
        probe_record("big-" + secrets.token_hex(4000), 1),  # 54000 index row too large
        probe_record("negative", -1),  # 23514 CHECK
    ]
    records = good[:10] + refused[:1] + good[10:20] + refused[1:2] + good[20:30] + refused[2:]
    records += [(b"probe", b"not json")] + good[30:]
    _produce(world, topic, records, partition=0)
    engine = probe_build(world, topic)
    group = engine.handler.group
    running = Running(engine)
    try:
        _wait(
            lambda: _probe(world, group) == 40 and len(_outbox_dlq(world, topics)) == 4,
            what="40 good records applied and 4 dead letters",
        )
        _wait(
            lambda: _stored(world, group, topic).get(0) == len(records),
            what="the position past the last record",
        )
    finally:
        running.stop()  # re-raises what stopped the engine, if anything did
    reasons = sorted(
        base64.b64decode(dict(h)["billy-dlq-reason"]) for _, _, h in _outbox_dlq(world, topics)
    )
    assert reasons[0].startswith(b"database: 23514 "), reasons
    assert reasons[1].startswith(b"database: 54000 "), reasons
    assert reasons[2].startswith(b"database: client "), reasons
    assert reasons[3].startswith(b"value:"), reasons
    # The handler answered each dead letter (in the committed transaction; a rolled-back
    # attempt may have called it before, which an outbox write would not keep).
    answered = {p.record.offset for p in engine.handler.answered}
    assert answered == {10, 21, 32, 33}, answered
    time.sleep(1.0)  # anything applied twice would show now
    assert _probe(world, group) == 40


def test_a_refused_record_in_a_merged_transaction_is_dead_lettered_alone(
    world: Settings,
) -> None:
    """The same refusals spread over three partitions, each partition's batch small enough
    to be merged with the others (`merge_records_max`): the merged transaction fails, nothing
    of it is written, each partition is applied alone, each culprit dead-lettered alone, and
    every other record applies once."""
    import secrets

    from tests.integration.engine.cases import PROBE_TABLE, probe_build, probe_record

    topics = TopicNames(world.topic_prefix)
    topic = topics.commands("autoru")
    with psycopg.connect(world.database_url, autocommit=True) as conn:
        conn.execute(PROBE_TABLE)
    refused = [
        probe_record("m-nul\x00id", 1),
        probe_record("m-big-" + secrets.token_hex(4000), 1),
        probe_record("m-negative", -1),
    ]
    per_partition = {p: [probe_record(f"m-good-{p}-{i}", i) for i in range(10)] for p in range(3)}
    for p in range(3):
        per_partition[p].insert(5, refused[p])
    # All visible at once, so one poll holds the three partitions' batches.
    producer = Producer(
        {
            **kafka_config.plain_producer(world, "engine-merged"),
            "transactional.id": world.topic_prefix,
        }
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for p, records in per_partition.items():
        for key, value in records:
            producer.produce(topic, key=key, value=value, partition=p)
    producer.commit_transaction(30)
    engine = probe_build(world, topic)
    group = engine.handler.group
    running = Running(engine)
    try:
        _wait(
            lambda: _probe(world, group) == 30 and len(_outbox_dlq(world, topics)) == 3,
            what="30 good records applied and 3 dead letters",
        )
        _wait(
            lambda: _stored(world, group, topic) == {0: 11, 1: 11, 2: 11},
            what="every position past its last record",
        )
    finally:
        running.stop()
    assert {p.record.partition for p in engine.handler.answered} == {0, 1, 2}
    time.sleep(1.0)  # anything applied twice would show now
    assert _probe(world, group) == 30


def _probe(settings: Settings, group: str) -> int:
    from tests.integration.engine.cases import probe_effects

    with psycopg.connect(settings.database_url) as conn:
        return probe_effects(conn, group)
