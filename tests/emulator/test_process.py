"""The emulator as a process: restart and SIGKILL keep state, concurrent calls, Stats /
Dump / Reset, clean SIGTERM, and it starts from the bare interpreter (no venv)."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.emulator.conftest import (
    MONEY_PRODUCT,
    SERVICE_ID,
    UID,
    make_client,
    make_order,
    make_person,
    new_order_id,
)
from tests.emulator.test_invoices import BANK_PH, request
from tests.emulator_process import REPO, start_emulator

THREADS = 20


def test_restart_and_kill_keep_state(tmp_path):
    with start_emulator(tmp_path / "state.sqlite3") as emulator:
        balance = emulator.proxy()
        client_id = make_client(balance, "Survivor")
        order_id = make_order(balance, client_id)
        person_id = make_person(balance, client_id)
        emulator.control.TestBalance.SetFaults({"latency_ms": 1, "seed": 3})
        emulator.restart()
        balance = emulator.proxy()
        assert balance.Balance2.GetClientByIdBatch([client_id])[1][0]["NAME"] == "Survivor"
        assert emulator.control.TestBalance.GetFaults()["seed"] == 3  # switches persist
        emulator.control.TestBalance.SetFaults({})
        request_id = request(balance, client_id, order_id, 10)["RequestID"]
        invoice_id = balance.Balance2.CreateInvoice(
            UID, {"RequestID": request_id, "PaysysID": BANK_PH, "PersonID": person_id}
        )
        emulator.restart(kill=True)  # SIGKILL: committed work must still be there
        balance = emulator.proxy()
        emulator.control.TestBalance.PayInvoice(invoice_id)
        (info,) = balance.Balance2.GetOrdersInfo(
            [{"ServiceID": SERVICE_ID, "ServiceOrderID": order_id}]
        )
        assert info["consume_sum"] == "10.00"
        # Ids keep growing after a restart: nothing is handed out twice.
        assert make_client(balance) > client_id


def test_concurrent_calls(tmp_path):
    with start_emulator(tmp_path / "state.sqlite3") as emulator:
        shared_order = new_order_id()
        owner = make_client(emulator.proxy(), "Owner")

        def one_flow(index: int) -> tuple[int, int]:
            balance = emulator.proxy()  # a ServerProxy per thread
            client_id = make_client(balance, f"Concurrent {index}")
            order_id = make_order(balance, client_id)
            person_id = make_person(balance, client_id)
            request_id = request(balance, client_id, order_id, index + 1)["RequestID"]
            invoice_id = balance.Balance2.CreateInvoice(
                UID, {"RequestID": request_id, "PaysysID": BANK_PH, "PersonID": person_id}
            )
            emulator.control.TestBalance.PayInvoice(invoice_id)
            # Everyone upserts the same order at once: it must exist exactly once.
            answer = balance.Balance2.CreateOrUpdateOrdersBatch(
                UID,
                [
                    {
                        "ServiceID": SERVICE_ID,
                        "ServiceOrderID": shared_order,
                        "ClientID": owner,
                        "ProductID": MONEY_PRODUCT,
                    }
                ],
            )
            assert answer == [[0, "Success"]]
            return client_id, order_id

        barrier = threading.Barrier(THREADS)

        def flow(index: int) -> tuple[int, int]:
            barrier.wait(10)
            return one_flow(index)

        with ThreadPoolExecutor(THREADS) as pool:
            results = list(pool.map(flow, range(THREADS)))
        client_ids = [c for c, _ in results]
        assert len(set(client_ids)) == THREADS
        stats = emulator.control.TestBalance.Stats()
        assert stats["clients"] == THREADS + 1
        assert stats["orders"] == THREADS + 1  # one each, plus the shared one once
        assert (stats["persons"], stats["requests"], stats["invoices"]) == (THREADS,) * 3
        infos = emulator.proxy().Balance2.GetOrdersInfo(
            [{"ServiceID": SERVICE_ID, "ServiceOrderID": o} for _, o in results]
        )
        assert sorted(i["consume_sum"] for i in infos) == sorted(
            f"{n}.00" for n in range(1, THREADS + 1)
        )


def test_stats_dump_and_reset(tmp_path):
    with start_emulator(tmp_path / "state.sqlite3") as emulator:
        balance = emulator.proxy()
        client_id = make_client(balance, "Dumped")
        order_id = make_order(balance, client_id)
        person_id = make_person(balance, client_id)
        dump = emulator.control.TestBalance.Dump({"ClientID": client_id})
        (entry,) = dump["clients"]
        assert entry["CLIENT_ID"] == client_id and entry["PERSON_IDS"] == [person_id]
        assert [o["ServiceOrderID"] for o in entry["ORDERS"]] == [order_id]
        assert entry["REQUEST_IDS"] == entry["INVOICE_IDS"] == entry["ACT_IDS"] == []
        stats = emulator.control.TestBalance.Stats()
        assert (stats["clients"], stats["orders"], stats["persons"]) == (1, 1, 1)
        assert stats["calls"]["CreateClient"] == 1
        after = emulator.control.TestBalance.Reset()
        assert (after["clients"], after["orders"], after["persons"]) == (0, 0, 0)
        assert emulator.control.TestBalance.Dump() == {"clients": []}
        products = {p["ID"]: p for p in emulator.control.TestBalance.GetProducts()}
        assert products[MONEY_PRODUCT]["Price"] == "1.00"


def test_sigterm_stops_cleanly(tmp_path):
    emulator = start_emulator(tmp_path / "state.sqlite3")
    emulator.stop()
    assert emulator.process is not None and emulator.process.returncode == 0
    assert "stopped" in emulator.log_tail()


def test_runs_on_the_bare_interpreter_without_the_venv(tmp_path):
    python = shutil.which("python3.11")
    if python is None:
        pytest.skip("python3.11 is not on PATH")
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)}
    done = subprocess.run(  # noqa: S603
        [python, "-m", "balance_emulator", "--version"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert b"balance-emulator" in done.stdout
    # And it does not drag billy in: neither package imports the other.
    check = subprocess.run(  # noqa: S603
        [
            python,
            "-c",
            "import sys, balance_emulator.cli, balance_emulator.app; "
            "assert not any(m.startswith(('billy', 'billy_core')) for m in sys.modules)",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert check.returncode == 0, check.stderr


def test_billy_core_never_imports_the_emulator():
    for path in (REPO / "billy_core").rglob("*.py"):
        assert "balance_emulator" not in path.read_text(), path


def test_readme_names_every_method_and_code(tmp_path):
    from balance_emulator.errors import KNOWN_CODES  # the list only; the server runs apart

    readme = (REPO / "balance_emulator" / "README.md").read_text()
    with start_emulator(tmp_path / "state.sqlite3") as emulator:
        methods = emulator.control.system.listMethods()
    for method in methods:
        bare = method.split(".", 1)[1]
        assert f"`{bare}(" in readme or f"**`{bare}(" in readme, method
    for code in KNOWN_CODES:
        assert f"`{code}`" in readme, code
