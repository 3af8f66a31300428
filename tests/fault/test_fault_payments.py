"""Fault profile for payments: a misbehaving Balance and its notifications, the intake and the
ledger killed mid-run.

The emulator PROCESS fails 20% of Balance calls (INTERNAL_ERROR: the gateway's calls and the
intake's GetOrdersInfo alike), delivers 30% of notifications twice, holds 20% back until a
newer one of the order went first (reordered) and delays 20%. billy's ledger, relay, gateway
and intake run as OS processes under the supervisor. N clients register, add a payer and ask
for 2N invoices; a fifth of them also get a postpay contract and top-ups from it (the postpay
trap: Balance's notifications INCLUDE that money). Then 1.5N bank payments arrive in the
emulator (`TestBalance.PayInvoice`; a third of them partial) while the intake and the ledger
are SIGKILLed again and again. At the end, from the emulator's state, PostgreSQL and the
results topic (read_committed):

- per client, the money credited as payments equals the payments made in the emulator, to the
  kopeck, and the top-ups are credited once each (credit account) and never as payments;
- each order's money in Balance (GetOrdersInfo) equals payments + top-ups billy credited;
- every payment_received result is unique (no payment credited twice), and their sum per
  client equals the payments; the wallet equals the sum of its entries.

    .venv/bin/pytest -q tests/fault/test_fault_payments.py                    # CI: N=50
    BILLY_FAULT_PROFILE=long .venv/bin/pytest -q tests/fault/test_fault_payments.py  # N=1000
"""

from __future__ import annotations

import json
import os
import random
import socket
import time
import uuid
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Producer

from billy_core.codec import decode_result, encode_command
from billy_core.commands import (
    Command,
    RegisterClient,
    RequestInvoice,
    TransferCredit,
    UpsertContract,
    UpsertPayer,
)
from billy_core.kafka import config as kafka_config
from billy_core.kafka.admin import ensure_topics
from billy_core.kafka.topics import TopicNames
from billy_core.settings import Settings
from tests.emulator_process import start_emulator
from tests.fault.processes import Supervisor
from tests.integration.kafka_io import Reader

pytestmark = [pytest.mark.fault, pytest.mark.timeout(5400)]

REPO = Path(__file__).resolve().parents[2]
REPORT_DIR = REPO / ".state" / "fault-reports"
TENANT = "autoru"
LONG = os.environ.get("BILLY_FAULT_PROFILE") == "long"
N = int(os.environ.get("BILLY_PAYMENTS_FAULT_N", "1000" if LONG else "50"))
KILLS = int(os.environ.get("BILLY_PAYMENTS_FAULT_KILLS", "10" if LONG else "3"))  # each role
SECRET = "fault-payments-secret"
POSTPAY_SHARE = 0.2
TOPUPS_PER_CLIENT = 2
PAYER = {
    "lname": "Petrov",
    "fname": "Ivan",
    "mname": "Ivanovich",
    "phone": "+7 900 000-00-00",
    "email": "ivan@example.ru",
}


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _minor(text: str) -> int:
    return int(Decimal(text) * 100)


def test_payments_under_balance_faults_and_kills(stack, database_url, tmp_path):
    prefix = f"p{uuid.uuid4().hex[:10]}"
    rng = random.Random(20261127)
    port = _free_port()
    with start_emulator(
        tmp_path / "balance.sqlite3",
        notify_url=f"http://127.0.0.1:{port}/balance",
        notify_secret=SECRET,
    ) as emulator:
        control = emulator.control.TestBalance
        # A killed intake refuses connections for a while: retry soon, not after 30 s.
        control.SetNotify({"retry_base_s": "0.2", "retry_max_s": "2", "batch_max": 5})
        control.SetFaults(
            {
                "fail_share": "0.2",
                "seed": 7,
                "notify_duplicate_share": "0.3",
                "notify_reorder_share": "0.2",
                "notify_reorder_hold_s": "1",
                "notify_delay_share": "0.2",
                "notify_delay_ms": 500,
            }
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
            "BILLY_BALANCE_BREAKER_FAILURES_MAX": "50",  # 20% failing must not open it
            "BILLY_BALANCE_BREAKER_COOLDOWN_S": "1",
            "BILLY_GATEWAY_UNCLEAR_SETTLE_S": "5",
            "BILLY_GATEWAY_WORKERS": "8",
            "BILLY_GATEWAY_RETRY_MAX_S": "2",
            "BILLY_INTAKE_PORT": str(port),
            "BILLY_BALANCE_NOTIFY_SECRET": SECRET,
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
        producer = Producer(kafka_config.plain_producer(settings, "fault-payments"))
        started = time.monotonic()
        answers: dict[str, object] = {}

        def send(client: str, command_id: str, body: object) -> str:
            command = Command(command_id, client, _now_ms(), body)  # type: ignore[arg-type]
            producer.produce(
                topics.commands(TENANT), key=client.encode(), value=encode_command(command)
            )
            producer.poll(0)
            return command_id

        def wait(ids: list[str], timeout_s: float) -> None:
            producer.flush(30)

            def done(records: list) -> bool:
                for m in records[len(answers_seen) :]:
                    answers_seen.append(m)
                    r = decode_result(m.value())
                    answers.setdefault(r.command_id, r)
                return all(i in answers for i in ids)

            results.poll_until(done, timeout_s)

        answers_seen: list = []
        try:
            for role in ("ledger", "relay", "gateway", "intake"):
                sup.start(role, role)
            clients = [f"dealer-{i:05d}" for i in range(N)]
            postpay = set(rng.sample(clients, int(N * POSTPAY_SHARE)))
            setup_s = max(180.0, N * 0.8)
            ids = [
                send(c, f"reg-{c}", RegisterClient(f"Dealer {c}", f"{c}@ex.ru")) for c in clients
            ]
            ids += [send(c, f"payer-{c}", UpsertPayer("me", "ph", dict(PAYER))) for c in clients]
            ids += [
                send(c, f"post-{c}", UpsertContract("post", "me", "postpay", 10_000_000, "RUB", 30))
                for c in sorted(postpay)
            ]
            invoices: dict[str, tuple[str, int]] = {}  # command id -> (client, amount)
            for k in range(2):
                for c in clients:
                    amount = rng.randint(1, 5000) * 100 + rng.choice((0, 0, 50, 99))
                    cid = send(c, f"inv-{c}-{k}", RequestInvoice(amount, "RUB", ""))
                    invoices[cid] = (c, amount)
            wait(ids + list(invoices), setup_s)
            bad = [i for i in ids + list(invoices) if getattr(answers[i], "code", "") != "ok"]
            assert not bad, [(i, answers[i]) for i in bad[:10]]
            orders = {c: int(answers[f"reg-{c}"].details["service_order_id"]) for c in clients}
            setup_done = time.monotonic()

            # Payments, top-ups and kills, interleaved.
            open_invoices = [
                (int(answers[cid].details["invoice_id"]), c, amount)
                for cid, (c, amount) in invoices.items()
            ]
            rng.shuffle(open_invoices)
            left = {inv: amount for inv, _, amount in open_invoices}
            paid: dict[str, int] = defaultdict(int)
            topups: list[tuple[str, str, int]] = []
            payments_n = N * 3 // 2
            kill_every = max(1, payments_n // (KILLS + 1))
            kills: Counter[str] = Counter()
            for i in range(payments_n):
                invoice_id, client, _ = open_invoices[i % len(open_invoices)]
                if left[invoice_id] <= 0:
                    invoice_id, client, _ = next(x for x in open_invoices if left[x[0]] > 0)
                partial = i % 3 == 2 and left[invoice_id] >= 2
                amount = left[invoice_id] // 2 if partial else left[invoice_id]
                got = control.PayInvoice(invoice_id, f"{Decimal(amount) / 100:.2f}")
                assert _minor(got["Paid"]) == amount, got
                left[invoice_id] -= amount
                paid[client] += amount
                if rng.random() < 0.4 and len(topups) < len(postpay) * TOPUPS_PER_CLIENT:
                    who = rng.choice(sorted(postpay))  # its notifications race the outcome
                    amount = rng.randint(1, 300) * 100
                    tid = send(who, f"topup-{who}-{len(topups)}", TransferCredit(amount, "RUB"))
                    topups.append((tid, who, amount))
                    producer.flush(10)
                if i % kill_every == kill_every - 1 and sum(kills.values()) < 2 * KILLS:
                    role = "intake" if kills["intake"] <= kills["ledger"] else "ledger"
                    sup.kill(role)  # the supervisor starts it again
                    kills[role] += 1
                time.sleep(0.01)
            while sum(kills.values()) < 2 * KILLS:
                time.sleep(rng.uniform(0.5, 1.5))
                role = "intake" if kills["intake"] <= kills["ledger"] else "ledger"
                sup.kill(role)
                kills[role] += 1
            last_fault = time.monotonic()
            wait([t for t, _, _ in topups], setup_s)

            # Quiet: every notification delivered, then the ledger has applied them all.
            pending = control.WaitNotifications(max(120, N // 2))
            credited_ok = {t for t, _, _ in topups if answers[t].code == "ok"}
            expected_topups: dict[str, int] = defaultdict(int)
            for t, c, amount in topups:
                if t in credited_ok:
                    expected_topups[c] += amount

            def sums() -> dict[str, tuple[int, int, int]]:
                with psycopg.connect(database_url) as conn:
                    rows = conn.execute(
                        "SELECT client_id, coalesce(sum(amount_minor) FILTER (WHERE source ="
                        " %s), 0), coalesce(sum(amount_minor) FILTER (WHERE source = %s), 0)"
                        " FROM transfers GROUP BY client_id",
                        (f"t:{TENANT}:payments", f"t:{TENANT}:credit"),
                    ).fetchall()
                    wallets = dict(
                        conn.execute("SELECT client_id, available_minor FROM wallets").fetchall()
                    )
                return {c: (int(p), int(k), int(wallets.get(c, 0))) for c, p, k in rows}

            deadline = time.monotonic() + max(120.0, N * 0.3)
            while time.monotonic() < deadline:
                now = sums()
                if all(now.get(c, (0, 0, 0))[0] == paid[c] for c in clients):
                    break
                time.sleep(1)
            results.drain(5.0)
            wait([], 5)
            quiet_s = time.monotonic() - last_fault

            violations: list[str] = []
            now = sums()
            for c in clients:
                p, k, available = now.get(c, (0, 0, 0))
                if p != paid[c]:
                    violations.append(f"{c}: payments credited {p}, paid in Balance {paid[c]}")
                if k != expected_topups[c]:
                    violations.append(f"{c}: top-ups credited {k}, applied {expected_topups[c]}")
                if available != p + k:
                    violations.append(f"{c}: wallet {available} != entries {p + k}")
            faults_seen = control.Stats()["faults_injected"]
            control.SetFaults({})  # the checker's own reads must not be failed
            truth = emulator.proxy(60).Balance2.GetOrdersInfo(
                [{"ServiceID": 1000, "ServiceOrderID": orders[c]} for c in clients]
            )
            on_order = {int(t["ServiceOrderID"]): _minor(t["consume_sum"]) for t in truth}
            for c in clients:
                p, k, _ = now.get(c, (0, 0, 0))
                if on_order.get(orders[c], 0) != p + k:
                    violations.append(
                        f"{c}: Balance has {on_order.get(orders[c], 0)} on the order, billy"
                        f" credited {p + k}"
                    )
            payment_results: Counter[str] = Counter()
            by_client: dict[str, int] = defaultdict(int)
            for m in results.records:
                r = decode_result(m.value())
                if r.code == "payment_received":
                    payment_results[r.command_id] += 1
                    if payment_results[r.command_id] == 1:
                        by_client[r.client_id] += int(r.details["amount_minor"])
            twice = [cid for cid, n in payment_results.items() if n > 1]
            violations += [f"{cid}: payment result published {payment_results[cid]} times"
                           for cid in twice]  # fmt: skip
            for c in clients:
                if by_client[c] != paid[c]:
                    violations.append(f"{c}: payment results sum {by_client[c]} != {paid[c]}")
            with psycopg.connect(database_url) as conn:
                stale = conn.execute("SELECT count(*) FROM payments").fetchone()[0]
                waiting = conn.execute("SELECT count(*) FROM balance_pending").fetchone()[0]
            if waiting:
                violations.append(f"{waiting} ledger intents left")
            stats = control.Stats()
            summary = {
                "profile": f"payments N={N} ({'long' if LONG else 'ci'})",
                "clients": N,
                "invoices": len(invoices),
                "payments": payments_n,
                "postpay clients": len(postpay),
                "top-ups": len(topups),
                "top-ups applied": len(credited_ok),
                "payment credits (rows)": stale,
                "payment results": sum(payment_results.values()),
                "money paid (minor)": sum(paid.values()),
                "notifications pending at the end": pending,
                "notify": stats["notify"],
                "fault counts": {
                    **{f"{r} SIGKILLs": n for r, n in kills.items()},
                    **faults_seen,
                },  # fmt: skip
                "process starts": {n: r.starts for n, r in sup.roles.items()},
                "unplanned exits": {n: r.unplanned_exits for n, r in sup.roles.items()},
                "balance calls": stats["calls"],
                "setup seconds": round(setup_done - started, 1),
                "run seconds": round(time.monotonic() - started, 1),
                "quiet after last fault (s)": round(quiet_s, 1),
                "counts": {"violations": len(violations)},
                "violations": violations[:50],
            }
            REPORT_DIR.mkdir(parents=True, exist_ok=True)
            text = json.dumps(summary, indent=2, default=str)
            (REPORT_DIR / "payments-latest.json").write_text(text)
            (log_dir / "summary.json").write_text(text)
            print(text)
            assert not violations, violations[:20]
            assert sum(kills.values()) == 2 * KILLS
            assert stats["notify"]["duplicates_sent"] > 0  # the duplicates did happen
        finally:
            results.close()
            sup.close()
