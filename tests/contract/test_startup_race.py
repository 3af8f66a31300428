"""Roles started together on a fresh database all come up (issue 10, item 5): ledger, relay,
sweeper and api as four `python -m billy.cli <role>` processes started at the same moment,
racing on the migrations and the topics. All stay up, and a command gets its result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.contract.conftest import REPO, TOKENS, Billy, _free_port
from tests.contract.speak import results, send_command

pytestmark = pytest.mark.integration

ROLES = ("ledger", "relay", "sweeper", "api")


def test_roles_started_together_on_a_fresh_database_all_come_up(
    stack: dict[str, str], fresh_database: str, tmp_path: Path
) -> None:
    prefix = f"s{uuid.uuid4().hex[:10]}"
    port = _free_port()
    env = {
        **os.environ,
        "BILLY_KAFKA_BOOTSTRAP": stack["kafka"],
        "BILLY_DATABASE_URL": fresh_database,
        "BILLY_TOPIC_PREFIX": prefix,
        "BILLY_LEDGER_GROUP": f"{prefix}-ledger",
        "BILLY_TENANTS": "autoru,realty",
        "BILLY_TOPIC_PARTITIONS_MAX": "3",
        "BILLY_BATCH_WAIT_MS": "10",
        "BILLY_API_PORT": str(port),
        "BILLY_API_TOKENS": json.dumps({token: tenant for tenant, token in TOKENS.items()}),
    }
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs = {role: tmp_path / f"{role}.log" for role in ROLES}
    try:
        for role in ROLES:  # at once: no role waits for another
            with open(logs[role], "wb") as out:
                procs[role] = subprocess.Popen(
                    [sys.executable, "-m", "billy.cli", "--log-level", "WARNING", role],
                    cwd=REPO,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
        api = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            exited = {r: p.returncode for r, p in procs.items() if p.poll() is not None}
            assert not exited, {r: logs[r].read_text()[-2000:] for r in exited}
            try:
                if httpx.get(f"{api}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "api never healthy"
            time.sleep(0.5)
        billy = Billy(prefix, stack["kafka"], fresh_database, api, procs["api"], logs["api"])
        # The ledger and the relay work (a Charge needs no Balance gateway: none runs here).
        charge = {"product_id": "p", "amount_minor": 1, "currency": "RUB"}
        cid = send_command(billy, "autoru", "race-1", "Charge", charge)
        result = results(billy, "autoru.results", {cid: 1})[cid][0]
        assert (result["status"], result["code"]) == ("REJECTED", "unknown_client")
        exited = {r: p.returncode for r, p in procs.items() if p.poll() is not None}
        assert not exited, {r: logs[r].read_text()[-2000:] for r in exited}
        for role in ROLES:
            assert "Traceback" not in logs[role].read_text(errors="replace"), role
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
