"""Small Kafka helpers for tests: send raw or encoded commands, read outputs read_committed."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, Producer

from billy_core.codec import encode_command
from billy_core.commands import Command
from billy_core.kafka import config as kafka_config
from billy_core.settings import Settings


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Sender:
    def __init__(self, settings: Settings) -> None:
        self.producer = Producer(kafka_config.plain_producer(settings, "test-sender"))

    def raw(self, topic: str, key: bytes | None, value: bytes | None, ts_ms: int | None = None):
        kwargs = {"timestamp": ts_ms} if ts_ms is not None else {}
        self.producer.produce(topic, key=key, value=value, **kwargs)

    def command(self, topic: str, command: Command, key: str | None = None, ts_ms=None) -> str:
        self.raw(
            topic,
            (key if key is not None else command.client_id).encode(),
            encode_command(command),
            ts_ms,
        )
        return command.command_id

    def flush(self) -> None:
        assert self.producer.flush(30) == 0, "records not delivered"


def cmd(client_id: str, body, command_id: str | None = None) -> Command:
    return Command(command_id or uuid.uuid4().hex, client_id, now_ms(), body)


class Reader:
    """Reads one or more topics from the beginning, committed records only."""

    def __init__(self, settings: Settings, *topics: str) -> None:
        self.consumer = Consumer(kafka_config.reader(settings, f"test-{uuid.uuid4().hex}"))
        self.consumer.subscribe(list(topics))
        self.records: list = []

    def poll_until(self, predicate, timeout_s: float = 60.0) -> list:
        deadline = time.monotonic() + timeout_s
        while not predicate(self.records):
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met in {timeout_s}s; {len(self.records)} read")
            for m in self.consumer.consume(500, 0.2):
                if m.error() is None:
                    self.records.append(m)
        return self.records

    def drain(self, quiet_s: float = 2.0) -> list:
        """Read until nothing new arrives for `quiet_s`."""
        last = time.monotonic()
        while time.monotonic() - last < quiet_s:
            batch = self.consumer.consume(500, 0.2)
            for m in batch:
                if m.error() is None:
                    self.records.append(m)
                    last = time.monotonic()
        return self.records

    def close(self) -> None:
        self.consumer.close()
