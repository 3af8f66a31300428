"""`billy demo`: billy's roles start in this process, and a small story runs through them.

Two car dealers are registered (in billy and in Balance, through the gateway), funded by the
billing team, charged, held and confirmed, refunded; one tries to overspend and one resends
a command. Then the Balance story: a payer, a prepay contract and a prepay invoice (its
payment link printed), a postpay contract and a top-up from its credit limit, and a charge
from that money. Every result and the final balances are printed, read back the way a
vertical service would (producer SDK, results topic) and from the HTTP read API. The
month's end follows: the prepay invoice is paid in Balance and its notification credits the
wallet, charges are reported to Balance as consumption, Balance closes the month and makes
acts, billy imports them and reconciles them with its ledger.

Balance is an emulator process of the demo's own (`python -m balance_emulator`, a state file
in a temporary directory): closing a month is global in Balance, so the demo never closes one
in the stack's emulator that others use.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from billy_core.kafka.config import client_security
from billy_core.money import Money
from billy_core.settings import Settings

# The demo runs in a world of its own each time (a database, a topic prefix, consumer groups),
# created at start and removed at the end: it never mixes with earlier runs or with a `billy
# run` on the same servers, and leaves no topics, groups or clients behind.
_TIMEOUT_S = 60


def run_demo(settings: Settings, tenant: str) -> int:
    prefix = f"demo{uuid.uuid4().hex[:6]}"
    with own_world(settings, prefix) as world, own_balance(world) as with_balance:
        return _story(with_balance, tenant)


@contextmanager
def own_balance(settings: Settings) -> Iterator[Settings]:
    """A Balance emulator process of the demo's own, notifying the demo's intake (signed),
    and settings that reach it; stopped on exit."""
    import os
    import secrets
    import socket
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from pydantic import SecretStr

    from billy_core.balance.emulator import EmulatorControl

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    port, intake_port, secret = free_port(), free_port(), secrets.token_hex(16)
    url = f"http://127.0.0.1:{port}/xmlrpc"
    with tempfile.TemporaryDirectory(prefix="billy-demo-balance-") as state:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BALANCE_")}
        env["BALANCE_NOTIFY_SECRET"] = secret  # never on the command line
        env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
        log = open(Path(state) / "emulator.log", "ab")  # noqa: SIM115 - closed below
        process = subprocess.Popen(  # noqa: S603 - the repository's own emulator
            [sys.executable, "-m", "balance_emulator", "--port", str(port), "--state",
             str(Path(state) / "balance.sqlite3"), "--notify-form", "json",
             "--notify-url", f"http://127.0.0.1:{intake_port}/balance",
             "--notify-retry-max-s", "2"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    EmulatorControl(url, timeout_s=1).ping()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            "the demo's Balance emulator did not start:"
                            f" {(Path(state) / 'emulator.log').read_text()[-2000:]}"
                        ) from None
                    time.sleep(0.1)
            print(f"billy demo: Balance emulator of its own at {url}")
            yield settings.model_copy(
                update={
                    "balance_url": url,
                    "intake_port": intake_port,
                    "balance_notify_secret": SecretStr(secret),
                    "consumption_settle_s": 1.0,
                    "consumption_interval_s": 2.0,
                }
            )
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()


@contextmanager
def own_world(settings: Settings, prefix: str) -> Iterator[Settings]:
    """Settings pointing at a fresh database and topic prefix; both removed on exit."""
    import psycopg
    from confluent_kafka.admin import AdminClient

    from billy_core.kafka import config as kafka_config
    from billy_core.kafka.logs import KAFKA_LOG

    base, _, _ = settings.database_url.rpartition("/")
    database = f"billy_{prefix}"
    with psycopg.connect(settings.database_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    world = settings.model_copy(
        update={"database_url": f"{base}/{database}", "topic_prefix": prefix}
    )
    try:
        yield world
    finally:
        admin = AdminClient(kafka_config.admin(settings), logger=KAFKA_LOG)
        topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(f"{prefix}.")]
        for future in admin.delete_topics(topics).values() if topics else ():
            future.result(timeout=30)
        groups = [f"{prefix}-ledger", f"{prefix}-demo", f"{prefix}-demo-admin"]
        for future in admin.delete_consumer_groups(groups).values():
            try:
                future.result(timeout=30)
            except Exception:  # a group that never formed is not an error here
                pass
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        print(f"\nbilly demo: removed database {database}, topics {prefix}.* and groups")


def _story(settings: Settings, tenant: str) -> int:
    from billy.roles import prepare, role_target
    from producers import BillyAdminClient, BillyClient, ResultReader

    prefix = settings.topic_prefix
    token = uuid.uuid4().hex
    settings = settings.model_copy(
        update={
            "ledger_group": f"{prefix}-ledger",
            "topic_partitions_max": 3,
            "tenants": tuple(dict.fromkeys((tenant, *settings.tenants))),
            "api_tokens": {token: tenant},
            "api_port": settings.api_port,
        }
    )
    print(f"billy demo: topics {prefix}.*, tenant {tenant}\n")
    prepare(settings)
    stop = threading.Event()
    threads = [
        threading.Thread(target=role_target(settings, role), args=(stop,), daemon=True)
        for role in ("ledger", "gateway", "relay", "sweeper", "api", "intake")
    ]
    for thread in threads:
        thread.start()
    boot = settings.kafka_bootstrap
    sec = client_security(settings)  # the SDK takes SASL/TLS options as extra_config
    billy = BillyClient(boot, tenant, prefix=prefix, extra_config=sec)
    admin = BillyAdminClient(boot, operator="demo-operator", prefix=prefix, extra_config=sec)
    results = ResultReader(boot, tenant, f"{prefix}-demo", prefix=prefix, extra_config=sec)
    admin_results = ResultReader.for_admin(
        boot, f"{prefix}-demo-admin", prefix=prefix, extra_config=sec
    )

    def show(step: str, command_id: str, reader: ResultReader = results) -> None:
        r = reader.wait_for(command_id, timeout_s=_TIMEOUT_S)
        money = Money(r.available_minor, r.currency) if r.currency else "-"
        held = Money(r.held_minor, r.currency) if r.currency else "-"
        flag = " (duplicate: stored result)" if r.duplicate else ""
        print(f"  {step:<46} {r.status:<8} {r.code:<20} available {money}  held {held}{flag}")

    try:
        print("Register two dealers and fund them (billing team's Adjust on the admin topic):")
        for client, name in (("dealer-1", "Auto Center"), ("dealer-2", "Moto Mall")):
            show(
                f"register {client}",
                billy.register_client(client, name, f"{client}@example.ru", wait=True),
            )
        show(
            "adjust dealer-1 +5000.00",
            admin.adjust(tenant, "dealer-1", 500_000, "RUB", "demo top-up", wait=True),
            admin_results,
        )
        show(
            "adjust dealer-2 +300.00",
            admin.adjust(tenant, "dealer-2", 30_000, "RUB", "demo top-up", wait=True),
            admin_results,
        )

        print("\nCharge, hold, confirm part, refund:")
        charge = billy.charge("dealer-1", "listing-top", 99_000, "RUB", wait=True)
        show("dealer-1 charge 990.00 for listing-top", charge)
        expires = datetime.now(UTC) + timedelta(hours=1)
        show(
            "dealer-1 hold 1500.00 for a call package",
            billy.hold("dealer-1", "calls-nov", "calls", 150_000, "RUB", expires, wait=True),
        )
        show(
            "dealer-1 confirm 1200.00 of the hold",
            billy.confirm_hold("dealer-1", "calls-nov", amount_minor=120_000, wait=True),
        )
        show(
            "dealer-1 confirm the same hold again",
            billy.confirm_hold("dealer-1", "calls-nov", wait=True),
        )
        show(
            "dealer-1 refund 490.00 of the charge",
            billy.refund("dealer-1", charge, amount_minor=49_000, wait=True),
        )

        print("\nRejections and resends:")
        show(
            "dealer-2 charge 1000.00 (has 300.00)",
            billy.charge("dealer-2", "listing-top", 100_000, "RUB", wait=True),
        )
        fixed = f"demo-{uuid.uuid4().hex[:8]}"
        show(
            "dealer-2 charge 100.00",
            billy.charge("dealer-2", "boost", 10_000, "RUB", command_id=fixed, wait=True),
        )
        show(
            "the same command resent",
            billy.charge("dealer-2", "boost", 10_000, "RUB", command_id=fixed, wait=True),
        )
        show(
            "same id, another amount",
            billy.charge("dealer-2", "boost", 20_000, "RUB", command_id=fixed, wait=True),
        )
        short = datetime.now(UTC) + timedelta(seconds=2)
        show(
            "dealer-2 hold 50.00 that expires in 2 s",
            billy.hold("dealer-2", "short", "boost", 5_000, "RUB", short, wait=True),
        )
        print("  ... waiting for billy to expire it")
        deadline = time.monotonic() + _TIMEOUT_S
        while time.monotonic() < deadline:
            r = results.poll(1.0)
            if r is not None and r.currency and r.command_id.startswith("billy-expire:"):
                available, held = (
                    Money(r.available_minor, r.currency),
                    Money(r.held_minor, r.currency),
                )
                print(
                    f"  {'hold expired by billy':<46} {r.status:<8} {r.code:<20}"
                    f" available {available}  held {held}"
                )
                break

        invoice_id = _balance_story(billy, show, results)

        import httpx

        base = f"http://{settings.api_host}:{settings.api_port}/v1/{tenant}/clients"
        headers = {"Authorization": f"Bearer {token}"}

        def available_of(client: str) -> int:
            w = httpx.get(f"{base}/{client}/wallet", headers=headers, timeout=10).json()
            return int(w["available_minor"])

        _month_story(settings, billy, show, available_of, invoice_id, tenant)

        print("\nFinal balances from the HTTP read API:")
        b = httpx.get(f"{base}/dealer-3/balance", headers=headers, timeout=10).json()
        print(
            f"  dealer-3 in Balance: client {b['balance_client_id']}, order"
            f" {b['service_order_id']}, {len(b['payers'])} payer(s),"
            f" {len(b['contracts'])} contract(s), {len(b['invoices'])} invoice(s)"
        )
        for client in ("dealer-1", "dealer-2", "dealer-3"):
            w = httpx.get(f"{base}/{client}/wallet", headers=headers, timeout=10).json()
            print(
                f"  {client}: available {Money(w['available_minor'], w['currency'])}, held "
                f"{Money(w['held_minor'], w['currency'])}, version {w['version']}"
            )
        acts = httpx.get(f"{base}/dealer-3/acts", headers=headers, timeout=10).json()["acts"]
        for act in acts:
            print(
                f"  dealer-3 act {act['act_id']} of {act['act_date']}:"
                f" {Money(act['amount_minor'], act['currency'])}"
                f" (VAT {Money(act['amount_nds_minor'], act['currency'])}),"
                f" reconciliation {act['reconciliation_status']}"
            )
        log = httpx.get(f"{base}/dealer-1/applied-services", headers=headers, timeout=10).json()
        print("  dealer-1 applied services:")
        for item in log["items"]:
            print(
                f"    {item['kind']:<7} {item['product_id']:<12} "
                f"{Money(item['amount_minor'], item['currency'])}"
            )
        print(
            f"\nOpenAPI: http://{settings.api_host}:{settings.api_port}/docs (while billy runs:"
            " `make run`)"
        )
        return 0
    finally:
        billy.close()
        admin.close() if hasattr(admin, "close") else None
        results.close()
        admin_results.close()
        stop.set()
        for thread in threads:
            thread.join(timeout=15)


def _balance_story(billy: Any, show: Any, results: Any) -> int | None:
    """register -> payer -> contract -> prepay invoice -> postpay top-up -> charge."""
    from billy_core.commands import (
        RequestInvoice,
        TransferCredit,
        UpsertContract,
        UpsertPayer,
    )

    print("\nBalance (through the gateway): payer, contracts, invoices, credit:")
    client = "dealer-3"
    show(
        f"register {client} (Balance client + order)",
        billy.register_client(client, "Truck Yard", "billing@truckyard.example", wait=True),
    )
    payer = {
        "name": "Truck Yard",
        "longname": "OOO Truck Yard",
        "phone": "+7 495 000-00-00",
        "email": "billing@truckyard.example",
        "legaladdress": "Moscow, Lva Tolstogo 16",
        "postaddress": "Moscow, Lva Tolstogo 16",
        "postcode": "119021",
        "inn": "7736207543",
        "kpp": "773601001",
        "bik": "044525225",
        "account": "40702810938000000001",
    }
    show("payer 'legal' (ur)", billy.send(client, UpsertPayer("legal", "ur", payer), wait=True))
    show(
        "prepay contract 'offer'",
        billy.send(client, UpsertContract("offer", "legal", "prepay", None, "RUB"), wait=True),
    )
    invoice = billy.send(client, RequestInvoice(1_500_000, "RUB", "legal"), wait=True)
    r = results.wait_for(invoice, timeout_s=_TIMEOUT_S)
    print(f"  {'prepay invoice 15000.00':<46} {r.status:<8} {r.code}")
    print(
        f"    invoice {r.details.get('invoice_id')}, pay at {r.details.get('payment_link')}"
        " (the wallet is credited when Balance says it is paid)"
    )
    show(
        "postpay contract, limit 100000.00",
        billy.send(
            client,
            UpsertContract("credit", "legal", "postpay", 10_000_000, "RUB", 30),
            wait=True,
        ),
    )
    show(
        "top-up 20000.00 from the credit limit",
        billy.send(client, TransferCredit(2_000_000, "RUB"), wait=True),
    )
    show(
        "top-up 90000.00 (above the limit left)",
        billy.send(client, TransferCredit(9_000_000, "RUB"), wait=True),
    )
    show(
        "charge 990.00 for listing-top",
        billy.charge(client, "listing-top", 99_000, "RUB", wait=True),
    )
    invoice_id = r.details.get("invoice_id")
    return int(invoice_id) if invoice_id else None


def _month_story(
    settings: Settings,
    billy: Any,
    show: Any,
    available: Any,
    invoice_id: int | None,
    tenant: str,
) -> None:
    """payment -> wallet credited -> charges -> consumption reported -> month close -> acts
    -> reconciliation, each step shown as it happens."""
    import psycopg

    from billy_core.acts import months
    from billy_core.balance.emulator import EmulatorControl
    from jobs.acts import ActsImporter
    from jobs.balance_jobs import balance_client
    from jobs.consumption import ConsumptionReporter

    client = "dealer-3"
    control = EmulatorControl(settings.balance_url)
    print("\nThe month's end: payment, consumption, month close, acts, reconciliation:")
    if invoice_id is not None:
        before = available(client)
        paid = control.pay_invoice(invoice_id)
        print(f"  {'the bank pays invoice ' + str(invoice_id):<46} {paid['Status']}")
        deadline = time.monotonic() + _TIMEOUT_S
        while available(client) < before + 1_500_000 and time.monotonic() < deadline:
            time.sleep(0.3)  # Balance notifies billy's intake; the ledger credits the wallet
        after = available(client)
        credited = "credited" if after >= before + 1_500_000 else "NOT credited in time"
        print(
            f"  {'wallet ' + credited + ' by the notification':<46}"
            f" available {Money(before, 'RUB')} -> {Money(after, 'RUB')}"
        )
    charge = billy.charge(client, "boost", 250_000, "RUB", wait=True)
    show("dealer-3 charge 2500.00 for boost", charge)
    show(
        "dealer-3 refund 500.00 of it", billy.refund(client, charge, amount_minor=50_000, wait=True)
    )
    month = months.month_of(datetime.now(UTC))
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        reporter = ConsumptionReporter(settings, balance_client(settings))
        counted, _ = reporter.report_month(conn, month, timeout_s=_TIMEOUT_S)
        reported = conn.execute(
            "SELECT client_id, total_minor FROM consumption_reports"
            " WHERE tenant = %s AND month = %s AND accepted ORDER BY client_id",
            (tenant, month),
        ).fetchall()
        print(f"  consumption of {month} reported to Balance (UpdateCampaigns), accepted:")
        for reported_client, total in reported:
            print(f"    {reported_client:<12} {Money(total, 'RUB')} (cumulative)")
        act_ids = control.close_month(month)
        print(f"  Balance closes {month}: {len(act_ids)} act(s) made")
        importer = ActsImporter(settings, balance_client(settings))
        imported = importer.import_month(conn, month)
        print(
            f"  billy imports them: {imported.new_acts} new act(s),"
            f" published on {settings.topic_prefix}.acts"
        )
        lines = importer.reconcile_month(conn, month)
    print(f"  reconciliation of {month} (on {settings.topic_prefix}.reconciliation):")
    print(f"    {'client':<12} {'act':>14} {'ledger':>14} {'difference':>12}  status")
    for line in lines:
        print(
            f"    {line.client_id:<12} {str(Money(line.act_minor, line.currency)):>14}"
            f" {str(Money(line.ledger_minor, line.currency)):>14}"
            f" {str(Money(line.difference_minor, line.currency)):>12}  {line.status}"
        )
    del counted
