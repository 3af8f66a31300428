"""billy roles as real OS processes, supervised like a process manager would: a role that
exits is started again. Faults are signals: SIGKILL, SIGSTOP/SIGCONT (a zombie), SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BILLY = [sys.executable, "-m", "billy.cli"]


@dataclass
class Role:
    name: str  # e.g. "ledger-a"
    command: str  # ledger | relay | sweeper
    log_path: Path
    proc: subprocess.Popen | None = None
    wanted: bool = True
    starts: int = 0
    unplanned_exits: list[int] = field(default_factory=list)
    planned_kill: bool = False


class Supervisor:
    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = {**os.environ, **env}
        self.log_dir = log_dir
        self.roles: dict[str, Role] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def start(self, name: str, command: str) -> Role:
        role = Role(name, command, self.log_dir / f"{name}.log")
        with self._lock:
            self.roles[name] = role
            self._spawn(role)
        return role

    def _spawn(self, role: Role) -> None:
        with open(role.log_path, "ab") as log:  # the child keeps its own copy of the fd
            role.proc = subprocess.Popen(
                [*BILLY, role.command],
                env=self.env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        role.starts += 1
        role.planned_kill = False

    def _watch(self) -> None:
        while not self._stop.wait(0.3):
            with self._lock:
                for role in self.roles.values():
                    if not role.wanted or role.proc is None or role.proc.poll() is None:
                        continue
                    if not role.planned_kill:
                        role.unplanned_exits.append(role.proc.returncode)
                    time.sleep(0.5)
                    self._spawn(role)

    def kill(self, name: str) -> None:
        with self._lock:
            role = self.roles[name]
            role.planned_kill = True
            role.proc.send_signal(signal.SIGKILL)

    def pause(self, name: str) -> None:
        self.roles[name].proc.send_signal(signal.SIGSTOP)

    def resume(self, name: str) -> None:
        self.roles[name].proc.send_signal(signal.SIGCONT)

    def stop(self, name: str, timeout_s: float = 30) -> None:
        with self._lock:
            role = self.roles[name]
            role.wanted = False
        role.proc.send_signal(signal.SIGTERM)
        try:
            role.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            role.proc.kill()
            role.proc.wait()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for name in list(self.roles):
            if self.roles[name].wanted:
                self.stop(name)

    def log_text(self, name: str) -> str:
        return self.roles[name].log_path.read_text(errors="replace")


def stack(command: str) -> None:
    """deploy/stack.sh kafka-kill | kafka-up | pg-kill | pg-up ..."""
    subprocess.run(
        ["bash", str(REPO / "deploy" / "stack.sh"), command],
        check=True,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
    )
