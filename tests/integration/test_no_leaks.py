"""No secrets or personal data leak (DESIGN.md, Security): `billy demo` runs for real (every
role, the Balance emulator behind the gateway), and everything it put out is scanned for the
names, emails and payer details it sent, the read-API token and the Kafka and Balance secrets:

- every log record of the run (INFO and up, billy's and librdkafka's, as production logs),
- the Prometheus text of /metrics,
- the key of every record of every topic of the run (read uncommitted: aborted ones too),
- the whole of every record of the compacted wallet topic.

The demo's own stdout is the operator's screen, not a log, and is not scanned.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client import REGISTRY, generate_latest

from billy import demo, roles
from billy_core.kafka import config as kafka_config
from billy_core.settings import STACK_ENV_FILE, Settings
from producers.client import _Sender

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _strings(getattr(value, f.name))


def _personal(command: Any) -> set[str]:
    """Names, emails and payer details in a command's body (ids and codes left out)."""
    kind = type(command.body).__name__
    if kind not in ("RegisterClient", "UpdateClient", "UpsertPayer"):
        return set()
    found = set()
    for text in _strings(command.body):
        # Names, emails, addresses: text with letters (digit-only details such as a postcode
        # could match an offset or a timestamp by chance).
        if len(text) >= 6 and any(ch.isalpha() for ch in text) and text != command.client_id:
            found.add(text)
    return found


def _topic_outputs(settings: Settings, prefix: str) -> dict[str, list[tuple[bytes, bytes]]]:
    """(key, value) of every record of every topic of the run; values kept for the wallet
    topic only (the only one whose values are scanned)."""
    admin = AdminClient(kafka_config.admin(settings))
    meta = admin.list_topics(timeout=30).topics
    consumer = Consumer(
        {
            **kafka_config.reader(settings, f"{prefix}-leak-scan"),
            "isolation.level": "read_uncommitted",
            "enable.partition.eof": True,
        }
    )
    out: dict[str, list[tuple[bytes, bytes]]] = {}
    try:
        for topic, tm in meta.items():
            if not topic.startswith(f"{prefix}."):
                continue
            parts = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in tm.partitions]
            consumer.assign(parts)
            left, records = len(parts), []
            while left:
                msg = consumer.poll(10)
                assert msg is not None, f"{topic}: no end of partition within 10 s"
                if msg.error() is not None:
                    assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                    left -= 1
                    continue
                keep_value = topic == f"{prefix}.wallets"
                records.append((msg.key() or b"", (msg.value() or b"") if keep_value else b""))
            out[topic] = records
    finally:
        consumer.close()
    return out


def test_a_demo_run_leaks_no_names_emails_tokens_or_passwords(stack, monkeypatch, caplog):
    settings = Settings(
        kafka_bootstrap=stack["kafka"], database_url=stack["pg"], api_port=_free_port()
    )
    personal: set[str] = set()
    tokens: set[str] = set()
    outputs: dict[str, Any] = {}

    real_produce = _Sender._produce

    def spy_produce(self: _Sender, topic: str, key: str, command: Any, *a: Any) -> str:
        personal.update(_personal(command))
        return real_produce(self, topic, key, command, *a)

    real_target = roles.role_target

    def spy_target(role_settings: Settings, role: str) -> Any:
        tokens.update(role_settings.api_tokens)
        return real_target(role_settings, role)

    real_world = demo.own_world

    @contextmanager
    def world_then_scan(base: Settings, prefix: str) -> Iterator[Settings]:
        with real_world(base, prefix) as world:
            yield world
            # The story is over; its topics are still there (removed on the way out).
            outputs["topics"] = _topic_outputs(world, prefix)
            outputs["metrics"] = generate_latest(REGISTRY).decode()

    monkeypatch.setattr(_Sender, "_produce", spy_produce)
    monkeypatch.setattr(roles, "role_target", spy_target)
    monkeypatch.setattr(demo, "own_world", world_then_scan)
    caplog.set_level(logging.INFO)

    assert demo.run_demo(settings, "autoru") == 0

    secrets = set(tokens)
    if STACK_ENV_FILE.exists():  # the Balance notification secret is the stack's, not a setting
        for line in STACK_ENV_FILE.read_text().splitlines():
            if line.startswith("BILLY_BALANCE_NOTIFY_SECRET="):
                secrets.add(line.partition("=")[2].strip("'"))
    for value in (
        settings.kafka_sasl_password,
        settings.kafka_admin_sasl_password,
        getattr(settings, "balance_notify_secret", None),
    ):
        if value is not None:
            secrets.add(value.get_secret_value() if hasattr(value, "get_secret_value") else value)
    assert personal >= {"Auto Center", "dealer-1@example.ru", "billing@truckyard.example"}
    assert tokens, "the demo's read token was not seen"
    needles = {n for n in personal | secrets if n}
    logs = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    keys = b"\n".join(k for records in outputs["topics"].values() for k, _ in records)
    wallets = b"\n".join(
        k + b" " + v
        for t, records in outputs["topics"].items()
        if t.endswith(".wallets")
        for k, v in records
    )
    assert any(t.endswith(".wallets") for t in outputs["topics"]) and wallets
    found = [
        (where, needle if needle in personal else "<secret>")
        for needle in sorted(needles)
        for where, text in (
            ("logs", logs.encode()),
            ("metrics", outputs["metrics"].encode()),
            ("kafka keys", keys),
            ("wallet topic", wallets),
        )
        if needle.encode() in text or needle.lower().encode() in text.lower()
    ]
    scanned = {
        "log records": len(caplog.records),
        "metrics bytes": len(outputs["metrics"]),
        "topics": len(outputs["topics"]),
        "records": sum(len(r) for r in outputs["topics"].values()),
        "needles": len(needles),
    }
    print(f"secrets scan: {scanned}, found {found}")
    assert not found, found
