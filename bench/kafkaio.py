"""Kafka for the benchmark: a bulk loader that makes M commands visible at one instant (one
Kafka transaction), a paced producer, and a read_committed collector of results with the
time each one became readable here."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from bench.workload import Encoded
from billy_core.kafka import config as kafka_config
from billy_core.settings import Settings


def _produce(producer: Producer, topic: str, e: Encoded, **kwargs) -> None:
    while True:
        try:
            producer.produce(topic, key=e.key, value=e.value, **kwargs)
            return
        except BufferError:
            producer.poll(0.01)


def send_and_flush(settings: Settings, topic: str, commands: Sequence[Encoded]) -> None:
    """Set-up traffic (registrations, fundings): the tenant's ordinary idempotent producer."""
    producer = Producer(kafka_config.plain_producer(settings, "bench-setup"))
    for e in commands:
        _produce(producer, topic, e)
    if producer.flush(120) != 0:
        raise RuntimeError("set-up records not delivered")


def load_in_one_transaction(
    settings: Settings, topic: str, commands: Sequence[Encoded], before_commit=None
) -> dict[str, float]:
    """Write every command inside one open Kafka transaction (read_committed readers, the
    ledger included, see none of them), then commit: all become available at once.

    Returns wall times: `commit_started` (t0 of the measurement), `commit_done`, and how long
    writing took (not measured as billy's time)."""
    producer = Producer(
        {
            **kafka_config.transactional_producer(
                settings, f"{settings.topic_prefix}-bench-loader"
            ),
            "transaction.timeout.ms": 300_000,
            "delivery.timeout.ms": 290_000,
            "linger.ms": 20,
            "queue.buffering.max.messages": max(100_000, len(commands) + 1000),
        }
    )
    producer.init_transactions(60)
    started = time.time()
    producer.begin_transaction()
    for e in commands:
        _produce(producer, topic, e)
    if producer.flush(280) != 0:
        raise RuntimeError("bulk load not delivered")
    if before_commit is not None:
        before_commit()
    written = time.time()
    producer.commit_transaction(120)
    return {"write_s": written - started, "commit_started": written, "commit_done": time.time()}


class _Lingering:
    """The SDK before its idle flush: every record lingers linger.ms."""

    def sent(self, nothing_in_flight: bool) -> None:
        pass


def _idle_flush(producer: Producer, linger_s: float) -> Any:
    """The SDK's idle flush (producers/_idle_flush.py) as the commit under test has it:
    bench/compare.sh also runs commits from before it, whose clients always lingered."""
    try:
        from producers._idle_flush import IdleFlush
    except ImportError:
        return _Lingering()
    return IdleFlush(producer, "bench-paced", linger_s)


class PacedProducer:
    """The tenant's producer (idempotent, acks=all: billy_core.kafka.config.plain_producer),
    sending at a fixed rate. `warm()` first, so its connection, metadata and producer id are
    not charged to the first measured commands."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic = topic
        conf = kafka_config.plain_producer(settings, "bench-paced")
        self.producer = Producer(conf)
        self.failed: list = []
        # As the SDK's clients do (producers/client.py): linger only while records are in
        # flight; a record sent with none goes out at once.
        self.in_flight = 0
        self.lock = threading.Lock()  # reports may be served on the flushing thread
        self.idle_flush = _idle_flush(self.producer, conf["linger.ms"] / 1000)

    def _on_delivery(self, err, _msg) -> None:
        with self.lock:
            self.in_flight -= 1
        if err is not None:
            self.failed.append(err)

    def warm(self, commands: Sequence[Encoded]) -> None:
        for e in commands:
            with self.lock:
                self.in_flight += 1
            _produce(self.producer, self.topic, e, on_delivery=self._on_delivery)
        if self.producer.flush(60) != 0 or self.failed:
            raise RuntimeError("warm-up records not delivered")

    def send(self, commands: Sequence[Encoded], rate: float, wait: bool = False) -> list[float]:
        """Produce at `rate` commands/s; return each command's send time (also its record
        timestamp, in ms). Falls behind only if this producer cannot keep up; the caller
        reports the rate reached. `wait`: flush after each command, as the SDK's
        `send(..., wait=True)` does (producers/client.py): librdkafka then sends at once
        instead of lingering `linger.ms` for more records (a service that waits for its
        command to be durable; meant for low rates, one produce request per command).
        Without it, as the SDK's default: linger only while earlier records are in flight."""
        producer, n = self.producer, len(commands)
        sent = [0.0] * n
        start = time.time()
        i = 0
        while i < n:
            due = min(n, int((time.time() - start) * rate) + 1)
            while i < due:
                producer.poll(0)
                with self.lock:
                    nothing_in_flight = self.in_flight == 0
                    self.in_flight += 1
                ts = time.time()
                _produce(
                    producer,
                    self.topic,
                    commands[i],
                    timestamp=int(ts * 1000),
                    on_delivery=self._on_delivery,
                )
                sent[i] = ts
                i += 1
                self.idle_flush.sent(nothing_in_flight and not wait)
                if wait and producer.flush(60) != 0:
                    raise RuntimeError("paced send: a command not delivered within 60 s")
            pause = start + i / rate - time.time()
            if pause > 0:
                time.sleep(pause)
        if producer.flush(120) != 0 or self.failed:
            raise RuntimeError(f"paced send: {len(self.failed)} delivery failures")
        return sent


class ResultCollector:
    """Reads a results topic read_committed from its current end, on its own thread, and
    keeps (value bytes, receipt wall time) per record; decoding happens after the run."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.consumer = Consumer(
            {
                **kafka_config.reader(settings, f"{settings.topic_prefix}-bench-reader"),
                "fetch.wait.max.ms": 10,
            }
        )
        meta = self.consumer.list_topics(topic, timeout=30).topics[topic]
        if meta.error is not None:
            raise KafkaException(meta.error)
        # Start at the end: every result read from here on belongs to the run.
        tps = []
        for p in meta.partitions:
            high = self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
            tps.append(TopicPartition(topic, p, high))
        self.consumer.assign(tps)
        self.values: list[bytes] = []
        self.received: list[float] = []
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="bench-collector", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            first = self.consumer.poll(0.05)  # returns as soon as one record is there
            if first is None:
                continue
            batch = [first, *self.consumer.consume(5000, 0)]
            now = time.time()
            with self._cond:
                for m in batch:
                    if m.error() is None:
                        self.values.append(m.value())
                        self.received.append(now)
                self._cond.notify_all()

    def wait_for(self, count: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while len(self.values) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.5))
        return True

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.consumer.close()
