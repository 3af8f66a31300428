"""The contract tier's world: billy as a black box.

billy runs as its own process (`python -m billy.cli run`, every role), configured only through
its documented environment variables, on a fresh database and topic prefix. The tests talk to
it only through the wire: Avro bytes on Kafka topics and HTTP. Nothing here imports billy.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

REPO = Path(__file__).resolve().parents[2]
TOKENS = {"autoru": "token-autoru-contract", "realty": "token-realty-contract"}


def kafka_security() -> dict[str, str]:
    """The librdkafka options that authenticate a client to the stack's broker, read the way
    an operator would: BILLY_KAFKA_* in the environment, else `.state/stack.env` (in
    BILLY_STATE_DIR when set). {} for a PLAINTEXT broker. No billy import, on purpose."""
    values: dict[str, str] = {}
    path = Path(os.environ.get("BILLY_STATE_DIR") or REPO / ".state") / "stack.env"
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and key.startswith("BILLY_KAFKA_"):
                values[key] = value.strip().strip("'")
    values |= {k: v for k, v in os.environ.items() if k.startswith("BILLY_KAFKA_")}
    protocol = values.get("BILLY_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    if protocol == "PLAINTEXT":
        return {}
    conf = {"security.protocol": protocol}
    if protocol.startswith("SASL_"):
        conf["sasl.mechanism"] = values.get("BILLY_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
        conf["sasl.username"] = values["BILLY_KAFKA_SASL_USERNAME"]
        conf["sasl.password"] = values["BILLY_KAFKA_SASL_PASSWORD"]
    if protocol.endswith("SSL") and values.get("BILLY_KAFKA_SSL_CA_LOCATION"):
        conf["ssl.ca.location"] = values["BILLY_KAFKA_SSL_CA_LOCATION"]
    return conf


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Billy:
    """One running billy deployment and the means to speak to it over the wire."""

    prefix: str
    bootstrap: str
    database_url: str
    api: str
    proc: subprocess.Popen[bytes]
    log: Path
    producer: Producer = field(init=False)

    def __post_init__(self) -> None:
        # A JVM service's producer: Java's default partitioner is murmur2 (librdkafka:
        # murmur2_random), idempotent, acks=all.
        self.producer = Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "partitioner": "murmur2_random",
                "enable.idempotence": True,
                "acks": "all",
                **kafka_security(),
            }
        )

    def topic(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        self.producer.produce(self.topic(topic), key=key, value=value, headers=headers)
        assert self.producer.flush(30) == 0

    def read(
        self, topic: str, until: Callable[[list[Any]], bool], timeout_s: float = 60.0
    ) -> list[Any]:
        """Every committed record of a topic from the beginning, until `until(records)`."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"contract-{uuid.uuid4().hex}",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                **kafka_security(),
            }
        )
        try:
            name = self.topic(topic)
            meta = consumer.list_topics(name, timeout=10).topics[name]
            consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p in meta.partitions])
            records: list[Any] = []
            deadline = time.monotonic() + timeout_s
            while not until(records):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name}: condition not met, {len(records)} records read")
                for m in consumer.consume(500, 0.2):
                    if m.error() is None:
                        records.append(m)
            return records
        finally:
            consumer.close()

    def http(
        self, path: str, tenant: str | None = "autoru", token: str | None = None
    ) -> httpx.Response:
        headers = {}
        if token is not None or tenant is not None:
            headers["Authorization"] = f"Bearer {token if token is not None else TOKENS[tenant]}"
        return httpx.get(f"{self.api}{path}", headers=headers, timeout=10)


def start_billy(
    stack: dict[str, str],
    database_url: str,
    prefix: str,
    log: Path,
    extra_env: dict[str, str] | None = None,
) -> Billy:
    port = _free_port()
    env = {
        **os.environ,
        "BILLY_KAFKA_BOOTSTRAP": stack["kafka"],
        "BILLY_DATABASE_URL": database_url,
        "BILLY_TOPIC_PREFIX": prefix,
        "BILLY_LEDGER_GROUP": f"{prefix}-ledger",
        "BILLY_TENANTS": "autoru,realty",
        "BILLY_TOPIC_PARTITIONS_MAX": "3",
        "BILLY_BATCH_WAIT_MS": "10",
        "BILLY_HOLD_SWEEP_INTERVAL_S": "0.5",
        "BILLY_API_PORT": str(port),
        # `run` includes the intake: a port of its own, so deployments side by side never
        # fight over the default 8081 (a test that notifies billy sets it in extra_env).
        "BILLY_INTAKE_PORT": str(_free_port()),
        "BILLY_API_TOKENS": json.dumps({token: tenant for tenant, token in TOKENS.items()}),
        **(extra_env or {}),
    }
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "billy.cli", "--log-level", "WARNING", "run"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    api = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"billy exited with {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{api}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("billy did not answer /healthz in 120 s")
        time.sleep(0.5)
    return Billy(prefix, stack["kafka"], database_url, api, proc, log)


def stop_billy(billy: Billy) -> None:
    billy.proc.send_signal(signal.SIGTERM)
    try:
        billy.proc.wait(60)
    except subprocess.TimeoutExpired:
        billy.proc.kill()
        billy.proc.wait(10)


@pytest.fixture(scope="module")
def fresh_database(stack: dict[str, str]) -> Iterator[str]:
    name = f"c_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(stack["pg"], autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = stack["pg"].rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(stack["pg"], autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def billy(stack: dict[str, str], fresh_database: str, tmp_path_factory) -> Iterator[Billy]:  # type: ignore[no-untyped-def]
    prefix = f"w{uuid.uuid4().hex[:10]}"
    log = tmp_path_factory.mktemp("billy") / "billy.log"
    running = start_billy(stack, fresh_database, prefix, log)
    yield running
    stop_billy(running)
