"""The relay's position, kept in Kafka itself, in the same transaction as what it published.

Topic `<prefix>.internal.relay-positions` (compacted): key = outbox shard ("<topic>/<partition>"
of the command that produced the rows), value = the last published `seq` as decimal ASCII.
Read with read_committed, the last value per shard is exactly what has been published: a
transaction that died with its relay was aborted (by the next relay's `init_transactions`),
and its positions vanish with its records.
"""

from __future__ import annotations

import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from billy_core.errors import TransientError
from billy_core.kafka import config as kafka_config
from billy_core.settings import Settings


def encode(seq: int) -> bytes:
    return str(seq).encode()


def read_all(settings: Settings, topic: str, timeout_s: float = 60.0) -> dict[str, int]:
    """Every shard's last committed position. Blocks until the end of the topic is reached.

    Raises TransientError when the end is not reached within `timeout_s`.
    """
    consumer = Consumer(
        {
            **kafka_config.reader(settings, group_id="billy-relay-positions-reader"),
            "enable.partition.eof": True,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
        if metadata.error is not None:
            raise TransientError(f"{topic}: {metadata.error}")
        partitions = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in metadata.partitions]
        consumer.assign(partitions)
        waiting = {tp.partition for tp in partitions}
        positions: dict[str, int] = {}
        deadline = time.monotonic() + timeout_s
        while waiting:
            if time.monotonic() > deadline:
                raise TransientError(f"{topic}: end not reached in {timeout_s:.0f}s")
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error() is not None:
                if message.error().code() == KafkaError._PARTITION_EOF:
                    waiting.discard(message.partition())
                    continue
                raise TransientError(str(message.error()))
            positions[message.key().decode()] = int(message.value())
        return positions
    finally:
        consumer.close()
