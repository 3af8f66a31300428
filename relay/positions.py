"""The relay's position, kept in Kafka itself, in the same transaction as what it published.

Topic `<prefix>.internal.relay-positions` (compacted): key = outbox shard ("<topic>/<partition>"
of the command that produced the rows), value = the last published `seq` as decimal ASCII.
Read with read_committed, the last value per shard is exactly what has been published: a
transaction that died with its relay was aborted (by the next relay's `init_transactions`),
and its positions vanish with its records.

One trap, found by the long fault profile: right after a broker restart, a transaction the
client already saw commit can still lack its commit markers. A read_committed reader then
stops at the last stable offset, before that transaction's positions, and the relay would
publish its rows again. So the reader first waits until every record written before it
started is decided (last stable offset >= the high watermark it sampled), then reads.
"""

from __future__ import annotations

import time

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

# confluent_kafka.admin re-exports OffsetSpec without listing it in __all__ (a stub gap).
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from billy_core.errors import TransientError
from billy_core.kafka import config as kafka_config
from billy_core.kafka.logs import KAFKA_LOG
from billy_core.settings import Settings


def encode(seq: int) -> bytes:
    return str(seq).encode()


def _decode(message: Message) -> int:
    """A position record's seq. Anything else was not written by a relay: stop, naming the
    record, rather than guess a position (a wrong one republishes or skips records)."""
    value = message.value()
    try:
        if value is None:
            raise ValueError("no value")
        return int(value.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError(
            f"{message.topic()}[{message.partition()}]@{message.offset()}: value"
            f" {value!r} is not a decimal outbox seq"
        ) from None


def _wait_until_decided(settings: Settings, topic: str, timeout_s: float) -> None:
    """Block until each partition's last stable offset reaches its high watermark as sampled
    now: every transaction that wrote there before this call is committed or aborted."""
    admin = AdminClient(kafka_config.admin(settings), logger=KAFKA_LOG)
    metadata = admin.list_topics(topic, timeout=timeout_s).topics[topic]
    if metadata.error is not None:
        raise TransientError(f"{topic}: {metadata.error}")
    partitions = [TopicPartition(topic, p) for p in metadata.partitions]

    def offsets(isolation: IsolationLevel) -> dict[int, int]:
        futures = admin.list_offsets(
            # OffsetSpec.latest() is unannotated in confluent_kafka.
            {tp: OffsetSpec.latest() for tp in partitions},  # type: ignore[no-untyped-call]
            isolation_level=isolation,
            request_timeout=timeout_s,
        )
        return {tp.partition: f.result().offset for tp, f in futures.items()}

    # A topic created a moment ago may not have a leader yet: retry until the deadline.
    deadline = time.monotonic() + timeout_s
    high: dict[int, int] | None = None
    while True:
        try:
            if high is None:
                high = offsets(IsolationLevel.READ_UNCOMMITTED)
            stable = offsets(IsolationLevel.READ_COMMITTED)
            undecided = {p: (stable[p], high[p]) for p in high if stable[p] < high[p]}
            if not undecided:
                return
            problem = _undecided(topic, undecided)
        except KafkaException as exc:
            problem = f"offsets unavailable ({exc.args[0]})"
        if time.monotonic() > deadline:
            raise TransientError(f"{topic}: {problem} after {timeout_s:.0f}s")
        time.sleep(0.2)


def _undecided(topic: str, undecided: dict[int, tuple[int, int]]) -> str:
    """What an operator needs when the wait does not end: where the open transaction starts.

    A transaction its producer abandoned is aborted by the broker after
    `transaction.timeout.ms` (30 s) or by the next relay's `init_transactions`, well inside
    the wait. One still open after it is a *hanging* transaction (the broker has data of a
    transaction its coordinator no longer tracks): only an operator can end it, with
    Kafka's own tool; the relay keeps refusing to guess a position meanwhile (RUNBOOK)."""
    where = ", ".join(
        f"partition {p}: stable offset {stable} < high watermark {high}"
        for p, (stable, high) in sorted(undecided.items())
    )
    first, (start, _) = min(undecided.items())
    return (
        f"transactions still undecided ({where}); if this lasts, find and abort the hanging"
        f" transaction: kafka-transactions.sh find-hanging --broker-id <leader>, then"
        f" kafka-transactions.sh abort --topic {topic} --partition {first}"
        f" --start-offset {start} (deploy/RUNBOOK.md, 'Relay stuck')"
    )


def read_all(settings: Settings, topic: str, timeout_s: float = 60.0) -> dict[str, int]:
    """Every shard's last committed position. Blocks until the end of the topic is reached.

    Raises TransientError when the end is not reached within `timeout_s`.
    """
    _wait_until_decided(settings, topic, timeout_s)
    consumer = Consumer(
        {
            **kafka_config.reader(settings, group_id="billy-relay-positions-reader"),
            "enable.partition.eof": True,
        },
        logger=KAFKA_LOG,
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
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    waiting.discard(message.partition())
                    continue
                raise TransientError(str(error))
            # The highest wins, not the last read: a shard's key may have moved partitions
            # (a partitioner change), leaving an older position on the old partition.
            key = message.key()
            if key is None:
                raise ValueError(
                    f"{message.topic()}[{message.partition()}]@{message.offset()}: no key"
                    " (a relay position's key is its outbox shard)"
                )
            shard = key.decode()
            positions[shard] = max(positions.get(shard, -1), _decode(message))
        return positions
    finally:
        consumer.close()
