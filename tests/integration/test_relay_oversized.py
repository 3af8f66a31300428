"""The relay never stops on one row (issue 10, item 3): an outbox row too large for the broker
is published as a bounded stand-in, counted, and the rows after it are published in order.

Real rows in the outbox, the real broker: one refused by librdkafka at produce (over its
message.max.bytes), one refused by the broker in the delivery report (a topic whose
max.message.bytes is small), each between rows that fit.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid

import psycopg
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from billy_core import metrics
from billy_core.kafka import config as kafka_config
from billy_core.stream import dlq
from billy_core.stream.outbox import encode_headers
from relay.publisher import Relay

pytestmark = pytest.mark.integration


def _row(
    conn: psycopg.Connection, deployment: str, seq: int, topic: str, key: bytes, value: bytes
) -> None:
    conn.execute(
        "INSERT INTO outbox (deployment, shard, seq, topic, key, value, event_id, headers)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (
            deployment,
            "oversized/0",
            seq,
            topic,
            key,
            value,
            f"test:{seq}",
            encode_headers([("billy-source-offset", str(seq).encode()), ("big", b"h" * 10)]),
        ),
    )


def _read_until(settings, topics: list[str], count: int, timeout_s: float = 120) -> list:
    """Committed records keyed c-* of `topics` (assigned, not subscribed: a topic made a
    moment ago may be missing from a subscription's first metadata)."""
    consumer = Consumer(kafka_config.reader(settings, f"test-{uuid.uuid4().hex}"))
    try:
        parts = []
        for topic in topics:
            deadline = time.monotonic() + 30
            while not (meta := consumer.list_topics(topic, timeout=30).topics[topic]).partitions:
                assert time.monotonic() < deadline, f"{topic}: no partitions in the metadata"
                time.sleep(0.2)  # a topic made a moment ago
            parts += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions]
        consumer.assign(parts)
        got: list = []
        deadline = time.monotonic() + timeout_s
        while len(got) < count:
            assert time.monotonic() < deadline, [(m.topic(), m.key()) for m in got]
            for m in consumer.consume(100, 0.5):
                if m.error() is None and (m.key() or b"").startswith(b"c-"):
                    got.append(m)
        return got
    finally:
        consumer.close()


def test_rows_too_large_for_the_broker_become_stand_ins_and_the_relay_goes_on(
    settings, topics
) -> None:
    small = f"{settings.topic_prefix}.small-{uuid.uuid4().hex[:6]}"
    admin = AdminClient(kafka_config.admin(settings))
    admin.create_topics([NewTopic(small, 1, 1, config={"max.message.bytes": "20000"})])[
        small
    ].result(30)
    results = topics.results("autoru")
    huge = b"r" * 1_040_000  # over librdkafka's message.max.bytes (1,000,000): refused at produce
    refused = os.urandom(50_000)  # fits librdkafka, not the topic: refused in the delivery report
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        _row(conn, topics.prefix, 1, results, b"c-1", b"first")
        _row(conn, topics.prefix, 2, results, b"c-2", huge)
        _row(conn, topics.prefix, 3, small, b"c-3", refused)
        _row(conn, topics.prefix, 4, results, b"c-4", b"last")
    counted = metrics.relay_oversized.labels("results")._value.get()
    counted_other = metrics.relay_oversized.labels("other")._value.get()
    stop = threading.Event()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            Relay(settings).run(stop)
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        got = _read_until(settings, [results, small], 4)
        assert thread.is_alive() and not failures, failures
    finally:
        stop.set()
        thread.join(30)
    by_key = {m.key(): m for m in got}
    assert len(got) == 4, [(m.key(), len(m.value() or b"")) for m in got]
    assert by_key[b"c-1"].value() == b"first" and by_key[b"c-4"].value() == b"last"
    for key, original in ((b"c-2", huge), (b"c-3", refused)):
        stand_in = by_key[key]
        headers = dict(stand_in.headers())
        assert stand_in.value() is None
        assert headers[dlq.ORIGINAL_VALUE_SHA256] == hashlib.sha256(original).hexdigest().encode()
        assert int(headers[dlq.ORIGINAL_BYTES]) > len(original)
        assert headers["billy-source-offset"]  # billy's own short headers are kept
        assert "big" not in headers  # the original's other headers are not
        assert headers["billy-event-id"].startswith(b"test:")
    assert metrics.relay_oversized.labels("results")._value.get() == counted + 1
    assert metrics.relay_oversized.labels("other")._value.get() == counted_other + 1
    with psycopg.connect(settings.database_url) as conn:  # published rows are cleaned up
        left = conn.execute(
            "SELECT count(*) FROM outbox WHERE deployment = %s AND shard = 'oversized/0'",
            (topics.prefix,),
        ).fetchone()
    assert left is not None and left[0] == 0
