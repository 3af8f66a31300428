"""Fault profile for the Balance gateway: a misbehaving Balance and a gateway killed mid-run.

The emulator PROCESS answers 20% of calls with a fault (INTERNAL_ERROR) and times out 10%
AFTER doing the work (the caller sees no answer, Balance's state has changed). billy's
ledger, relay and gateway run as OS processes under the supervisor; the gateway is
SIGKILLed several times while N registrations, N payer upserts and N invoice commands
(and 5% resends of them) are applied. Then, from the emulator's own state
(`TestBalance.Stats` / `Dump`) and the results topic:

- exactly one Balance client and one order per billy client, one person per payer, one
  request and one invoice per invoice command;
- every command record answered exactly once (resends included), every answer APPLIED ok.

    BILLY_GATEWAY_FAULT_N=1000 .venv/bin/pytest -q tests/fault/test_fault_gateway.py   # measured
    .venv/bin/pytest -q tests/fault/test_fault_gateway.py                             # CI: N=150
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Producer

from billy_core.codec import decode_result, encode_command
from billy_core.commands import Command, RegisterClient, RequestInvoice, UpsertPayer
from billy_core.kafka import config as kafka_config
from billy_core.kafka.admin import ensure_topics
from billy_core.kafka.topics import TopicNames
from billy_core.settings import Settings
from tests.emulator_process import start_emulator
from tests.fault.processes import Supervisor
from tests.integration.kafka_io import Reader

pytestmark = [pytest.mark.fault, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]
REPORT_DIR = REPO / ".state" / "fault-reports"
TENANT = "autoru"
N = int(os.environ.get("BILLY_GATEWAY_FAULT_N", "150"))
KILLS = int(os.environ.get("BILLY_GATEWAY_FAULT_KILLS", "4"))
RESEND_SHARE = 0.05
PAYER = {
    "lname": "Petrov",
    "fname": "Ivan",
    "mname": "Ivanovich",
    "phone": "+7 900 000-00-00",
    "email": "ivan@example.ru",
}


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_gateway_under_balance_faults_and_kills(stack, database_url, tmp_path):
    prefix = f"g{uuid.uuid4().hex[:10]}"
    rng = random.Random(20261127)
    with start_emulator(tmp_path / "balance.sqlite3") as emulator:
        emulator.control.TestBalance.SetFaults(
            {"fail_share": "0.2", "timeout_after_share": "0.1", "seed": 11}
        )
        env = {
            "BILLY_KAFKA_BOOTSTRAP": stack["kafka"],
            "BILLY_DATABASE_URL": database_url,
            "BILLY_TOPIC_PREFIX": prefix,
            "BILLY_TENANTS": TENANT,
            "BILLY_LEDGER_GROUP": f"{prefix}-ledger",
            "BILLY_TOPIC_PARTITIONS_MAX": "6",
            "BILLY_BALANCE_GATEWAY": "true",
            "BILLY_BALANCE_URL": emulator.url,
            "BILLY_BALANCE_TIMEOUT_S": "10",
            # A call that timed out may still run in the emulator under load: look after it.
            "BILLY_GATEWAY_UNCLEAR_SETTLE_S": "15",
            "BILLY_BALANCE_BREAKER_COOLDOWN_S": "1",
            "BILLY_GATEWAY_WORKERS": "8",
            "BILLY_GATEWAY_RETRY_MAX_S": "2",
        }
        settings = Settings(
            kafka_bootstrap=stack["kafka"],
            database_url=database_url,
            topic_prefix=prefix,
            tenants=(TENANT,),
            topic_partitions_max=6,
        )
        topics = TopicNames(prefix)
        ensure_topics(settings)
        log_dir = REPORT_DIR / prefix
        log_dir.mkdir(parents=True, exist_ok=True)
        sup = Supervisor(env, log_dir)
        results = Reader(settings, topics.results(TENANT))
        producer = Producer(kafka_config.plain_producer(settings, "fault-gateway"))
        sent: Counter[str] = Counter()
        started = time.monotonic()
        try:
            for role in ("ledger", "relay", "gateway"):
                sup.start(role, role)

            def send(client: str, command_id: str, body: object) -> None:
                command = Command(command_id, client, _now_ms(), body)  # type: ignore[arg-type]
                value = encode_command(command)
                copies = 2 if rng.random() < RESEND_SHARE else 1
                for _ in range(copies):
                    producer.produce(topics.commands(TENANT), key=client.encode(), value=value)
                    sent[command_id] += 1
                producer.poll(0)

            clients = [f"dealer-{i:05d}" for i in range(N)]
            waves = [
                lambda c: send(c, f"reg-{c}", RegisterClient(f"Dealer {c}", f"{c}@example.ru")),
                lambda c: send(c, f"payer-{c}", UpsertPayer(None, "ph", dict(PAYER))),
                lambda c: send(c, f"inv-{c}", RequestInvoice(10_000 + int(c[-5:]), "RUB", "")),
            ]
            kills_done = 0
            for wave in waves:
                for client in clients:
                    wave(client)
                producer.flush(30)
                time.sleep(1.5)
                if kills_done < KILLS:
                    sup.kill("gateway")  # the supervisor starts it again
                    kills_done += 1
            # The rest of the kills while the gateway works through the backlog.
            while kills_done < KILLS:
                time.sleep(rng.uniform(2, 5))
                sup.kill("gateway")
                kills_done += 1
            last_fault = time.monotonic()

            wanted = sum(sent.values())

            def answered(records: list) -> bool:
                return len(records) >= wanted

            deadline_s = max(120.0, N * 0.6)
            try:
                results.poll_until(answered, deadline_s)
            except TimeoutError:
                pass
            results.drain(5.0)
            quiet_s = time.monotonic() - last_fault

            got: Counter[str] = Counter()
            violations: list[str] = []
            firsts: dict[str, tuple[str, str]] = {}
            for m in results.records:
                r = decode_result(m.value())
                got[r.command_id] += 1
                if r.command_id not in firsts:
                    firsts[r.command_id] = (r.status, r.code)
                elif not r.duplicate:
                    violations.append(f"{r.command_id}: a second answer not marked duplicate")
            for command_id, count in sent.items():
                if got[command_id] != count:
                    violations.append(
                        f"{command_id}: {got[command_id]} answers for {count} records"
                    )
            for command_id, (status, code) in firsts.items():
                if (status, code) != ("APPLIED", "ok"):
                    violations.append(f"{command_id}: {status} {code}")

            stats = emulator.control.TestBalance.Stats()
            dump = emulator.control.TestBalance.Dump({})["clients"]
            by_name = Counter(c["NAME"] for c in dump)
            for client in clients:
                if by_name[f"Dealer {client}"] != 1:
                    violations.append(f"{client}: {by_name[f'Dealer {client}']} Balance clients")
            for c in dump:
                counts = (
                    len(c["ORDERS"]),
                    len(c["PERSON_IDS"]),
                    len(c["REQUEST_IDS"]),
                    len(c["INVOICE_IDS"]),
                )
                if counts != (1, 1, 1, 1):
                    violations.append(f"{c['NAME']}: orders, persons, requests, invoices {counts}")
            totals = {k: stats[k] for k in ("clients", "orders", "persons", "requests", "invoices")}
            if totals != dict.fromkeys(totals, N):
                violations.append(f"emulator totals {totals}, expected {N} each")
            with psycopg.connect(database_url) as conn:
                pending = conn.execute(
                    "SELECT count(*) FROM balance_requests WHERE state = 'pending'"
                ).fetchone()[0]
                waiting = conn.execute("SELECT count(*) FROM balance_pending").fetchone()[0]
            if pending or waiting:
                violations.append(f"{pending} gateway requests, {waiting} ledger intents left")

            gateway = sup.roles["gateway"]
            summary = {
                "profile": f"gateway N={N}",
                "records sent": wanted,
                "resends": wanted - len(sent),
                "answers read": len(results.records),
                "fault counts": {"gateway SIGKILLs": kills_done, **stats["faults_injected"]},
                "process starts": {n: r.starts for n, r in sup.roles.items()},
                "unplanned exits": {n: r.unplanned_exits for n, r in sup.roles.items()},
                "balance calls": stats["calls"],
                "emulator totals": totals,
                "run seconds": round(time.monotonic() - started, 1),
                "quiet after last fault (s)": round(quiet_s, 1),
                "counts": {"violations": len(violations)},
                "violations": violations[:50],
                "gateway starts": gateway.starts,
            }
            REPORT_DIR.mkdir(parents=True, exist_ok=True)
            text = json.dumps(summary, indent=2)
            (REPORT_DIR / "gateway-latest.json").write_text(text)
            (log_dir / "summary.json").write_text(text)
            print(text)
            assert not violations, violations[:20]
            assert kills_done == KILLS
        finally:
            results.close()
            sup.close()
