"""DESIGN.md "Acts": billy reports consumption, imports the acts after month close and
reconciles them. From outside: billy runs as its own process with every role (the sweeper
reports consumption by itself), Balance is an emulator process of this module's own (closing
a month is global in Balance), and the act and reconciliation records are read from their
topics and decoded with the published schemas (tests/contract/wire.py). No billy import."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest

from tests.contract import wire
from tests.contract.conftest import REPO, Billy, start_billy, stop_billy
from tests.contract.speak import fund, register, results, send_command
from tests.emulator_process import start_emulator

pytestmark = pytest.mark.integration

SERVICE_ID = 1000  # billy's default BILLY_BALANCE_SERVICE_ID
MONTH = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)).strftime("%Y-%m")  # Moscow's month


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):  # type: ignore[no-untyped-def]
    with start_emulator(tmp_path_factory.mktemp("balance") / "balance.sqlite3") as process:
        yield process


@pytest.fixture(scope="module")
def env_extra(emulator) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {
        "BILLY_BALANCE_URL": emulator.url,
        "BILLY_CONSUMPTION_INTERVAL_S": "1",
        "BILLY_CONSUMPTION_SETTLE_S": "1",
    }


@pytest.fixture(scope="module")
def billy(stack, fresh_database, tmp_path_factory, env_extra) -> Iterator[Billy]:  # type: ignore[no-untyped-def]
    prefix = f"a{uuid.uuid4().hex[:10]}"
    log = tmp_path_factory.mktemp("billy") / "billy.log"
    running = start_billy(stack, fresh_database, prefix, log, extra_env=env_extra)
    yield running
    stop_billy(running)


def _consumed(emulator, order_id: int) -> int:  # type: ignore[no-untyped-def]
    (info,) = emulator.control.Balance2.GetOrdersInfo(
        [{"ServiceID": SERVICE_ID, "ServiceOrderID": order_id}]
    )
    return int(Decimal(info["completion_sum"]) * 100)


def test_acts_and_reconciliation_on_their_topics(billy: Billy, emulator, env_extra) -> None:  # type: ignore[no-untyped-def]
    clients = {"act-1": [120_000, 3_500], "act-2": [99_900]}
    orders = {}
    for client, charges in clients.items():
        registered = register(billy, "autoru", client)
        assert registered["details"]["balance_status"] == "registered", registered
        orders[client] = int(registered["details"]["service_order_id"])
        fund(billy, "autoru", client, 1_000_000)
        ids = [
            send_command(
                billy,
                "autoru",
                client,
                "Charge",
                {"product_id": "listing", "amount_minor": amount, "currency": "RUB"},
            )
            for amount in charges
        ]
        got = results(billy, "autoru.results", dict.fromkeys(ids, 1))
        assert {got[i][0]["code"] for i in ids} == {"ok"}
    # The sweeper reports by itself (every second here): Balance's figures become billy's.
    deadline = time.monotonic() + 60
    while any(_consumed(emulator, orders[c]) != sum(a) for c, a in clients.items()):
        assert time.monotonic() < deadline, "consumption was not reported in 60 s"
        time.sleep(0.5)
    assert emulator.control.TestBalance.CloseMonth(MONTH)["Created"]

    done = subprocess.run(
        [sys.executable, "-m", "billy.cli", "reconcile", "--month", MONTH],
        cwd=REPO,
        env={
            **os.environ,
            **env_extra,
            "BILLY_KAFKA_BOOTSTRAP": billy.bootstrap,
            "BILLY_DATABASE_URL": billy.database_url,
            "BILLY_TOPIC_PREFIX": billy.prefix,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"reconcile {MONTH}: 2 client(s), 0 with a difference" in done.stdout

    acts = billy.read("acts", lambda rs: len(rs) >= 2)
    decoded = {m.key().decode(): wire.decode(m.value(), "BalanceAct") for m in acts}
    assert set(decoded) == {"autoru/act-1", "autoru/act-2"}
    for client, charges in clients.items():
        act = decoded[f"autoru/{client}"]
        assert (act["client_id"], act["month"], act["amount_minor"], act["currency"]) == (
            client,
            MONTH,
            sum(charges),
            "RUB",
        )
        assert act["act_date"].startswith(MONTH)
    for m in acts:
        (event_id,) = [v for k, v in m.headers() or [] if k == "billy-event-id"]
        assert event_id == f"act:{wire.decode(m.value(), 'BalanceAct')['act_id']}".encode()
    recs = billy.read("reconciliation", lambda rs: len(rs) >= 2)
    lines = {m.key().decode(): wire.decode(m.value(), "Reconciliation") for m in recs}
    assert {k: (r["act_amount_minor"], r["ledger_amount_minor"], r["difference_minor"],
                r["status"]) for k, r in lines.items()} == {
        f"autoru/{c}": (sum(a), sum(a), 0, "matched") for c, a in clients.items()
    }  # fmt: skip
    # The read API shows each act with its reconciliation status.
    shown = billy.http("/v1/autoru/clients/act-1/acts").json()
    assert [(a["amount_minor"], a["reconciliation_status"]) for a in shown["acts"]] == [
        (sum(clients["act-1"]), "matched")
    ]
