"""The relay's position read: never before every earlier transaction is decided.

The long fault profile caught a relay republishing rows after a broker restart: the reader
stopped at the last stable offset while the transaction holding the newest position was not
yet marked committed. `read_all` now waits for that decision.
"""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from billy_core.errors import TransientError
from billy_core.kafka import config as kafka_config
from relay import positions

pytestmark = pytest.mark.integration


def _producer(settings, name: str) -> Producer:
    producer = Producer(kafka_config.transactional_producer(settings, f"{name}-{uuid.uuid4()}"))
    producer.init_transactions(30)
    return producer


def test_positions_wait_for_undecided_transactions(settings):
    topic = f"{settings.topic_prefix}.positions-{uuid.uuid4().hex[:6]}"
    admin = AdminClient(kafka_config.admin(settings))
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    first = _producer(settings, "first")
    first.begin_transaction()
    first.produce(topic, key=b"shard-a", value=positions.encode(5))
    first.commit_transaction(30)
    assert positions.read_all(settings, topic, timeout_s=10) == {"shard-a": 5}

    second = _producer(settings, "second")
    second.begin_transaction()
    second.produce(topic, key=b"shard-a", value=positions.encode(9))
    second.flush(10)  # written, not yet decided
    # The operator is told where the open transaction starts and how to end it if it hangs.
    with pytest.raises(
        TransientError,
        match=r"undecided \(partition 0: stable offset 2 < high watermark 3\).*"
        r"abort --topic .* --partition 0 --start-offset 2",
    ):
        positions.read_all(settings, topic, timeout_s=2)
    second.commit_transaction(30)
    assert positions.read_all(settings, topic, timeout_s=10) == {"shard-a": 9}

    third = _producer(settings, "third")
    third.begin_transaction()
    third.produce(topic, key=b"shard-a", value=positions.encode(12))
    third.flush(10)
    third.abort_transaction(30)
    assert positions.read_all(settings, topic, timeout_s=10) == {"shard-a": 9}
