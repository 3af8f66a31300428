"""Where the CPU went during a measurement: the whole machine (/proc/stat) and the processes
that matter (billy's roles, PostgreSQL, the Kafka broker, this benchmark). On a 2-core
machine shared with the broker and the database this tells whether a run was CPU-bound."""

from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _machine() -> tuple[float, float]:
    """(busy, total) CPU seconds of the machine since boot, all cores."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])
    return (total - idle) / _TICK, total / _TICK


def _proc_cpu(pid: int) -> float:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    f = text.rpartition(")")[2].split()
    return (int(f[11]) + int(f[12])) / _TICK


def _group(name: str) -> list[int]:
    """The broker's (`kafka`) or PostgreSQL's processes. Other engineers' private stacks run
    brokers and PostgreSQL servers on this machine too: with BENCH_STATE_DIR (the benchmarked
    stack's state folder, e.g. /work/main/.state), only the broker and the postmaster whose
    command line names that folder count, with the postmaster's children."""
    marker = os.environ.get("BENCH_STATE_DIR", "").encode()
    pids, roots, parents = [], set(), {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            if name == "kafka":
                wanted = comm == "java" and b"kafka" in (entry / "cmdline").read_bytes()
            else:
                wanted = comm in ("postgres", "postmaster")
            if not wanted:
                continue
            pid = int(entry.name)
            pids.append(pid)
            parents[pid] = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            if marker and marker in (entry / "cmdline").read_bytes():
                roots.add(pid)
        except OSError:
            continue
    if not roots:
        return pids  # no marker, or nothing matched it: every such process, as before
    return [p for p in pids if p in roots or parents.get(p) in roots]


class CpuMeter:
    """`start()` then `stop()` → CPU seconds per group and the machine's busy share."""

    def __init__(self, roles: dict[str, list[int]]) -> None:
        self.roles = roles  # role -> its processes (more than one in scale-out runs)

    def _snap(self) -> dict[str, float]:
        snap = {role: sum(_proc_cpu(p) for p in pids) for role, pids in self.roles.items()}
        snap["bench"] = _proc_cpu(os.getpid())
        for group in ("postgres", "kafka"):
            snap[group] = sum(_proc_cpu(p) for p in _group(group))
        snap["machine_busy"], snap["machine_total"] = _machine()
        return snap

    def start(self) -> None:
        self._before = self._snap()

    def stop(self) -> dict[str, float]:
        after = self._snap()
        d = {k: after[k] - self._before[k] for k in after}
        total = d.pop("machine_total")
        busy = d.pop("machine_busy")
        out = {k: round(v, 2) for k, v in d.items()}
        out["machine_busy_pct"] = round(100 * busy / total, 1) if total else None
        out["other"] = round(busy - sum(d.values()), 2)  # other engineers' work, the OS
        return out
