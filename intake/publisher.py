"""Payment events to Kafka, answered only once the broker confirmed them.

One idempotent producer per process (acks=all, the contract's partitioner: a key lands on
the partition a Java producer would choose, the one the ledger reads that client's Balance
outcomes from). A background thread serves delivery reports; `publish` waits for the
reports of its own records, bounded, and raises `NotDurable` unless every one succeeded.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from billy_core.kafka import config as kafka_config
from billy_core.payment_events import PaymentEvent, encode
from billy_core.settings import Settings

__all__ = ["NotDurable", "Publisher"]


class NotDurable(Exception):
    """Kafka did not confirm every record in time (the message says why)."""


class _Pending:
    def __init__(self, count: int) -> None:
        self.left = count
        self.errors: list[str] = []
        self.done = threading.Event()
        self._lock = threading.Lock()

    def report(self, err: KafkaError | None, _msg: Message) -> None:
        with self._lock:
            if err is not None:
                self.errors.append(str(err))
            self.left -= 1
            if self.left <= 0:
                self.done.set()


class Publisher:
    """Thread-safe; `close` flushes and stops the report thread."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self._topic = topic
        self._timeout_s = settings.intake_kafka_timeout_s
        self._producer = Producer(
            {
                **kafka_config.plain_producer(settings, "billy-intake"),
                # A record not confirmed within the answer's bound is reported as failed
                # (Balance is answered with a failure and delivers it again).
                "delivery.timeout.ms": int(settings.intake_kafka_timeout_s * 1000),
                "linger.ms": 2,
            }
        )
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="billy-intake-kafka", daemon=True)
        self._poller.start()

    def publish(self, events: Sequence[PaymentEvent]) -> None:
        """Every event durably in Kafka, or NotDurable. May block up to the timeout."""
        if not events:
            return
        pending = _Pending(len(events))
        try:
            for event in events:
                self._producer.produce(
                    self._topic, encode(event), key=event.key.encode(), on_delivery=pending.report
                )
        except (BufferError, KafkaException, ValueError) as exc:
            raise NotDurable(f"not queued: {exc}") from None
        if not pending.done.wait(self._timeout_s + 1.0):
            raise NotDurable(f"no delivery report within {self._timeout_s:.0f} s")
        if pending.errors:
            raise NotDurable(f"delivery failed: {pending.errors[0]}")

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    def close(self) -> None:
        self._producer.flush(self._timeout_s)
        self._stop.set()
        self._poller.join(timeout=2)
