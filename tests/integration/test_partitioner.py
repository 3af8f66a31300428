"""billy's keyed producers put every key on the partition Kafka's Java client would
(`java_partition`), on the real broker: the config the sweeper and the DLQ use, and the SDK.
librdkafka's default partitioner (CRC32) disagrees on most keys, so this fails without
`partitioner=murmur2_random`."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from billy_core.kafka import config as kafka_config
from billy_core.kafka.partitioner import java_partition
from billy_core.kafka.topics import TopicNames
from billy_core.settings import Settings
from producers.client import BillyClient

pytestmark = pytest.mark.integration

PARTITIONS = 12
TENANT = "autoru"
# ASCII and multi-byte UTF-8 ids of every length mod 4, up to the contract's 64 characters.
KEYS = [f"client-{i}" for i in range(300)] + [
    "д",
    "дилер-1042",
    "ü" * 7,
    "x" * 64,
    "c",
    "ab",
    "abc",
    "kafka",
]


@pytest.fixture(scope="module")
def settings(stack) -> Settings:
    return Settings(kafka_bootstrap=stack["kafka"])  # SASL/TLS from the environment


@pytest.fixture
def names(settings):
    """A fresh prefix whose tenant commands topic has 12 partitions (the contract's default)."""
    admin = AdminClient(kafka_config.admin(settings))
    names = TopicNames(f"t{uuid.uuid4().hex[:12]}")
    topic = names.commands(TENANT)
    for future in admin.create_topics(
        [NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)], operation_timeout=30
    ).values():
        future.result(timeout=30)
    yield names
    for future in admin.delete_topics([topic], operation_timeout=30).values():
        try:
            future.result(timeout=30)
        except Exception:  # noqa: BLE001 - cleanup only
            pass


def _landed(settings, topic: str, count: int, timeout_s: float = 30.0) -> list[tuple[bytes, int]]:
    """(key, partition) of every record of `topic`, read from every partition."""
    consumer = Consumer(
        {**kafka_config.reader(settings, f"test-{uuid.uuid4().hex}"), "enable.partition.eof": True}
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    landed = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(landed) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or (msg.error() and msg.error().code() == KafkaError._PARTITION_EOF):
                continue
            assert msg.error() is None, msg.error()
            landed.append((msg.key(), msg.partition()))
    finally:
        consumer.close()
    assert len(landed) == count, f"read {len(landed)} of {count} records"
    return landed


def test_plain_producer_puts_keys_where_java_would(settings, names):
    topic = names.commands(TENANT)
    producer = Producer(kafka_config.plain_producer(settings, "test-partitioner"))
    reported: list[tuple[bytes, int]] = []

    def delivered(err, msg):
        assert err is None, err
        reported.append((msg.key(), msg.partition()))

    for key in KEYS:
        producer.produce(topic, key=key.encode(), value=b"x", on_delivery=delivered)
    assert producer.flush(30) == 0
    assert len(reported) == len(KEYS)
    for key, partition in reported:
        assert partition == java_partition(key, PARTITIONS), key
    # The records are where the delivery reports say, and every partition got some.
    assert sorted(_landed(settings, topic, len(KEYS))) == sorted(reported)
    assert {p for _, p in reported} == set(range(PARTITIONS))


def test_sdk_sends_each_client_to_its_java_partition(settings, names):
    clients = KEYS[:120] + KEYS[300:]
    with BillyClient(
        settings.kafka_bootstrap,
        TENANT,
        prefix=names.prefix,
        extra_config=kafka_config.client_security(settings),
    ) as billy:
        for client_id in clients:
            billy.charge(client_id, "vas", 100, "RUB")
        billy.flush(timeout_s=30)
    landed = _landed(settings, names.commands(TENANT), len(clients))
    wrong = [(k, p) for k, p in landed if p != java_partition(k, PARTITIONS)]
    assert not wrong, wrong[:5]
