"""Start the Balance emulator as a real subprocess, for tests (any tier).

    from tests.emulator_process import start_emulator

    with start_emulator(tmp_path / "balance.sqlite3", notify_url=intake_url) as emulator:
        balance = emulator.proxy(timeout_s=5)        # Balance2.* with a read timeout
        balance.Balance2.CreateClient(1, {"NAME": "Acme", "EMAIL": "a@acme.ru"})
        emulator.control.TestBalance.PayInvoice(invoice_id, "100.00")
        emulator.restart()                           # same port, same state file

The emulator runs `python -m balance_emulator` with PYTHONPATH at the repository root (it
needs nothing from the venv), on a free port of 127.0.0.1, its log appended to
`<state_path>.log`. The notify secret goes through the environment, never the command line.

Proxies made here use `NoRetryTransport`: the standard library's xmlrpc transport silently
sends a request again when the connection drops, which would turn the emulator's "timeout
after the work" into two executions of the call.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import cast

REPO = Path(__file__).resolve().parent.parent
DEFAULT_NOTIFY_SECRET = "emulator-test-secret"
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


class _TimeoutTransport(xmlrpc.client.Transport):
    def __init__(self, timeout_s: float | None) -> None:
        super().__init__()
        self.timeout_s = timeout_s

    def make_connection(self, host: object) -> object:  # type: ignore[override]
        connection = super().make_connection(host)  # type: ignore[arg-type]
        connection.timeout = self.timeout_s
        return connection


class NoRetryTransport(_TimeoutTransport):
    """xmlrpc.client's transport with a socket timeout and without its hidden retry.

    Every call gets its own connection, closed afterwards: so one proxy may be shared by
    threads, and no kept-alive connection goes stale when the emulator restarts (the
    standard transport's answer to that is the retry removed here).
    """

    def request(  # type: ignore[override]
        self, host: object, handler: str, request_body: bytes, verbose: bool = False
    ) -> object:
        one_shot = _TimeoutTransport(self.timeout_s)
        try:
            return one_shot.single_request(host, handler, request_body, verbose)  # type: ignore[arg-type]
        finally:
            one_shot.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def balance_proxy(url: str, timeout_s: float | None = 30.0) -> xmlrpc.client.ServerProxy:
    return xmlrpc.client.ServerProxy(url, allow_none=True, transport=NoRetryTransport(timeout_s))


class EmulatorProcess:
    """One emulator subprocess. `.url`, `.control`, `.proxy()`, `.stop()`, `.kill()`,
    `.restart()`; a context manager that stops it on exit."""

    def __init__(
        self,
        state_path: Path,
        *,
        port: int | None = None,
        notify_url: str | None = None,
        notify_form: str = "json",
        notify_secret: str | None = DEFAULT_NOTIFY_SECRET,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.state_path = Path(state_path)
        self.port = port or free_port()
        self.notify_url = notify_url
        self.notify_form = notify_form
        self.notify_secret = notify_secret
        self.extra_args = list(extra_args)
        self.log_path = Path(f"{self.state_path}.log")
        self.url = f"http://127.0.0.1:{self.port}/xmlrpc"
        self.control = balance_proxy(self.url, timeout_s=60.0)
        self.process: subprocess.Popen[bytes] | None = None

    # ---- lifecycle --------------------------------------------------------------

    def start(self) -> EmulatorProcess:
        if self.process is not None and self.process.poll() is None:
            return self
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "balance_emulator",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--state",
            str(self.state_path),
            "--notify-form",
            self.notify_form,
            *self.extra_args,
        ]
        if self.notify_url:
            command += ["--notify-url", self.notify_url]
        env = {k: v for k, v in os.environ.items() if not k.startswith("BALANCE_")}
        env["PYTHONPATH"] = str(REPO)
        if self.notify_secret:
            env["BALANCE_NOTIFY_SECRET"] = self.notify_secret
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own module
                command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        probe = balance_proxy(self.url, timeout_s=1.0)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"balance emulator exited with {self.process.returncode} at start:\n"
                    + self.log_tail()
                )
            try:
                answer = cast(dict[str, object], probe.TestBalance.Ping())
                if answer.get("pid") == self.process.pid:
                    return
                raise RuntimeError(
                    f"port {self.port} answers, but from pid {answer.get('pid')}, "
                    f"not from the emulator just started ({self.process.pid})"
                )
            except (OSError, xmlrpc.client.ProtocolError):
                pass
            if time.monotonic() >= deadline:
                self.kill()
                raise RuntimeError(
                    f"balance emulator not ready within {READY_TIMEOUT_S}s:\n" + self.log_tail()
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_S."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: nothing committed is lost (SQLite WAL), nothing else is finished."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.kill()
        self.process.wait(STOP_TIMEOUT_S)

    def restart(self, *, kill: bool = False) -> EmulatorProcess:
        """Stop (or kill) and start again: same port, same state file."""
        if kill:
            self.kill()
        else:
            self.stop()
        return self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # ---- helpers ----------------------------------------------------------------

    def proxy(self, timeout_s: float | None = 30.0) -> xmlrpc.client.ServerProxy:
        """A proxy with a read timeout (safe to share between threads, see NoRetryTransport)."""
        return balance_proxy(self.url, timeout_s)

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_emulator(
    state_path: Path,
    notify_url: str | None = None,
    notify_form: str = "json",
    notify_secret: str | None = DEFAULT_NOTIFY_SECRET,
    *,
    port: int | None = None,
    extra_args: Sequence[str] = (),
) -> EmulatorProcess:
    """Start an emulator and wait until it answers; use as a context manager or call
    `.stop()`. Raises RuntimeError (with the log's tail) when it does not come up."""
    return EmulatorProcess(
        state_path,
        port=port,
        notify_url=notify_url,
        notify_form=notify_form,
        notify_secret=notify_secret,
        extra_args=extra_args,
    ).start()
