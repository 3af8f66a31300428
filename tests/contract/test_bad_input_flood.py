"""A poison flood on one partition pauses that partition only; one command resumes it and
nothing is lost (issue 10, item 4), from the outside: billy as a process with a small poison
window, spoken to in wire bytes, resumed with `billy resume-partition`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.contract import wire
from tests.contract.conftest import REPO, Billy, start_billy, stop_billy
from tests.contract.speak import register, results, send_command

pytestmark = pytest.mark.integration

PARTITIONS = 3
CHARGE = {"product_id": "vas-top", "amount_minor": 1, "currency": "RUB"}


@pytest.fixture(scope="module")
def small_window_billy(stack, fresh_database, tmp_path_factory) -> Iterator[Billy]:  # type: ignore[no-untyped-def]
    prefix = f"f{uuid.uuid4().hex[:10]}"
    log = tmp_path_factory.mktemp("billy-flood") / "billy.log"
    running = start_billy(
        stack,
        fresh_database,
        prefix,
        log,
        {"BILLY_DLQ_WINDOW_MIN": "20", "BILLY_DLQ_RATIO_MAX": "0.5"},
    )
    yield running
    stop_billy(running)


def _client_on(partition: int, stem: str) -> str:
    return next(
        c
        for c in (f"{stem}-{i}" for i in range(1000))
        if wire.java_partition(c.encode(), PARTITIONS) == partition
    )


def _paused_now(billy: Billy) -> float:
    text = billy.http("/metrics", tenant=None).text
    found = re.search(r'^billy_partitions_paused_now\{role="ledger"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_a_flood_pauses_its_partition_only_and_one_command_resumes_it_losing_nothing(
    small_window_billy: Billy,
) -> None:
    billy = small_window_billy
    flooded = _client_on(0, "flood")
    others = [_client_on(p, "calm") for p in (1, 2)]
    for client in [flooded, *others]:
        register(billy, "autoru", client)
    marker = uuid.uuid4().hex.encode()
    for i in range(60):
        billy.producer.produce(
            billy.topic("autoru.commands"),
            key=flooded.encode(),
            value=b"junk " + marker + b"%d" % i,
        )
    assert billy.producer.flush(30) == 0
    after = send_command(billy, "autoru", flooded, "Charge", CHARGE)
    # Every other partition and tenant keeps flowing while partition 0 is paused.
    calm = [send_command(billy, "autoru", c, "Charge", CHARGE) for c in others]
    calm.append(
        send_command(
            billy,
            "realty",
            flooded,
            "RegisterClient",
            {"name": "N", "email": "n@x.ru", "currency": "RUB"},
        )
    )
    got = results(billy, "autoru.results", {c: 1 for c in calm[:2]})
    assert all(got[c][0]["code"] == "insufficient_funds" for c in calm[:2])
    assert results(billy, "realty.results", {calm[2]: 1})[calm[2]][0]["code"] == "ok"
    deadline = time.monotonic() + 30
    while _paused_now(billy) != 1.0:
        assert time.monotonic() < deadline, "billy_partitions_paused_now never showed the pause"
        time.sleep(0.5)
    answered = billy.read("autoru.results", lambda rs: len(rs) >= 5)
    ids = {wire.decode(m.value(), "Result")["command_id"] for m in answered}
    assert after not in ids  # paused: the record after the flood waits in Kafka

    env = {
        **os.environ,
        "BILLY_KAFKA_BOOTSTRAP": billy.bootstrap,
        "BILLY_DATABASE_URL": billy.database_url,
        "BILLY_TOPIC_PREFIX": billy.prefix,
        "BILLY_LEDGER_GROUP": f"{billy.prefix}-ledger",
        "BILLY_TENANTS": "autoru,realty",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "billy.cli",
            "resume-partition",
            billy.topic("autoru.commands"),
            "0",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    # Nothing lost: all 60 in the DLQ, the record after the flood answered, the gauge back to 0.
    assert results(billy, "autoru.results", {after: 1})[after][0]["code"] == "insufficient_funds"

    def flood(records: list[Any]) -> list[Any]:
        return [m for m in records if (m.value() or b"").startswith(b"junk " + marker)]

    copies = flood(billy.read("dlq", lambda rs: len(flood(rs)) >= 60))
    assert len({m.value() for m in copies}) == 60
    assert _paused_now(billy) == 0.0
    assert billy.proc.poll() is None  # no restart
