"""The emulator as an object: state, fault switches, notifier and the call dispatcher.

`Emulator.handle(method, params)` is everything one XML-RPC request does, independent of
HTTP: it answers a `Reply` (the marshalled XML-RPC response, or "no answer" for an
injected timeout) which the HTTP handler (server.py) writes, holds or drops.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import xmlrpc.client
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from balance_emulator import values
from balance_emulator.control import CONTROL_METHODS
from balance_emulator.errors import BalanceError, invalid_param
from balance_emulator.faults import CallFault, FaultInjector, FaultSwitches, TimeoutMode
from balance_emulator.methods import Call, MethodSpec, load_all
from balance_emulator.notifier import Notifier, NotifyConfig
from balance_emulator.store import Store, get_meta

log = logging.getLogger("balance_emulator")

BALANCE_PREFIXES = ("Balance", "Balance2")
CONTROL_PREFIX = "TestBalance"


@dataclass(frozen=True)
class Reply:
    """What to send back. body None: send nothing (an injected timeout), after holding
    the connection for hang_s seconds (0 = drop it at once)."""

    body: bytes | None
    hang_s: float = 0.0


def _marshal(result: object) -> bytes:
    return xmlrpc.client.dumps(
        cast(tuple[Any, ...], (result,)), methodresponse=True, allow_none=True, encoding="utf-8"
    ).encode("utf-8")


def _marshal_fault(fault: xmlrpc.client.Fault) -> bytes:
    return xmlrpc.client.dumps(fault, allow_none=True, encoding="utf-8").encode("utf-8")


class Emulator:
    def __init__(self, state_path: Path, notify: NotifyConfig, public_url: str) -> None:
        self.store = Store(state_path)
        self.public_url = public_url.rstrip("/")
        with self.store.read() as conn:
            saved = get_meta(conn, "faults")
        self.faults = FaultInjector(FaultSwitches.from_json(saved) if saved else None)
        self.notifier = Notifier(self.store, self.faults, notify)
        self.methods: dict[str, MethodSpec] = load_all()
        self._calls: Counter[str] = Counter()
        self._calls_lock = threading.Lock()
        self.started_at = time.time()

    def start(self) -> None:
        self.notifier.start()

    def close(self) -> None:
        self.notifier.stop()
        self.store.close()

    def new_call(self, conn: sqlite3.Connection, method: str) -> Call:
        return Call(conn=conn, method=method, now=values.now_moscow(), public_url=self.public_url)

    def call_counts(self) -> dict[str, int]:
        with self._calls_lock:
            return dict(self._calls)

    def reset_call_counts(self) -> None:
        with self._calls_lock:
            self._calls.clear()

    def _count_call(self, name: str) -> None:
        with self._calls_lock:
            self._calls[name] += 1

    # ---- dispatch -----------------------------------------------------------------

    def handle(self, method: str, params: tuple[object, ...]) -> Reply:
        prefix, _, bare = method.partition(".")
        if prefix in BALANCE_PREFIXES and bare in self.methods:
            return self._handle_balance(method, self.methods[bare], params)
        if prefix == CONTROL_PREFIX and bare in CONTROL_METHODS:
            return self._handle_control(method, bare, params)
        if method == "system.listMethods":
            return Reply(_marshal(self.list_methods()))
        error = BalanceError("UNKNOWN_METHOD", f"Method {method} is not supported")
        return Reply(_marshal_fault(error.to_fault(method)))

    def list_methods(self) -> list[str]:
        names = [f"{p}.{name}" for p in BALANCE_PREFIXES for name in sorted(self.methods)]
        names += [f"{CONTROL_PREFIX}.{name}" for name in sorted(CONTROL_METHODS)]
        return names

    def _handle_balance(self, method: str, spec: MethodSpec, params: tuple[object, ...]) -> Reply:
        self._count_call(spec.name)
        switches = self.faults.switches
        if switches.latency_ms:
            time.sleep(switches.latency_ms / 1000)
        decision = self.faults.decide_call(spec.name)
        hang_s = switches.hang_s if switches.timeout_mode == TimeoutMode.HANG else 0.0
        if decision is CallFault.FAIL:
            error = BalanceError(
                switches.fail_code, "Emulated failure (fault switch fail_share); nothing was done"
            )
            log.info("%s: injected fault %s", method, switches.fail_code)
            return Reply(_marshal_fault(error.to_fault(method)))
        if decision is CallFault.TIMEOUT_BEFORE:
            log.info("%s: injected timeout before the work", method)
            return Reply(None, hang_s)
        body = self._run_balance(method, spec, params)
        if decision is CallFault.TIMEOUT_AFTER:
            log.info("%s: injected timeout after the work (committed)", method)
            return Reply(None, hang_s)
        return Reply(body)

    def _run_balance(self, method: str, spec: MethodSpec, params: tuple[object, ...]) -> bytes:
        started = time.monotonic()
        outcome = "ok"
        try:
            try:
                spec.signature.bind(*params)
            except TypeError as error:
                raise invalid_param(f"{spec.name}: {error}") from None
            session = self.store.write() if spec.writes else self.store.read()
            with session as conn:
                call = self.new_call(conn, method)
                result = spec.func(call, *params)
            if call.changed_orders:
                self.notifier.wake()
            return _marshal(result)
        except BalanceError as error:
            outcome = error.code
            return _marshal_fault(error.to_fault(method))
        except Exception:
            outcome = "INTERNAL_ERROR"
            log.exception("%s failed", method)
            internal = BalanceError("INTERNAL_ERROR", f"Internal error in {method}")
            return _marshal_fault(internal.to_fault(method))
        finally:
            log.info("%s -> %s in %.1f ms", method, outcome, (time.monotonic() - started) * 1000)

    def _handle_control(self, method: str, name: str, params: tuple[object, ...]) -> Reply:
        func = CONTROL_METHODS[name]
        try:
            result = func(self, *params)
            return Reply(_marshal(result))
        except TypeError as error:
            # Wrong arity; a TypeError from inside a control method is a bug, logged too.
            log.exception("%s failed", method)
            return Reply(_marshal_fault(invalid_param(f"{name}: {error}").to_fault(method)))
        except BalanceError as error:
            return Reply(_marshal_fault(error.to_fault(method)))
        except Exception:
            log.exception("%s failed", method)
            internal = BalanceError("INTERNAL_ERROR", f"Internal error in {method}")
            return Reply(_marshal_fault(internal.to_fault(method)))
