"""The printed table and the JSON file."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

from bench.roles import REPO

OUT_DIR = REPO / ".state" / "bench"
# Every run of commands at a fixed rate a bench.run result may hold (bench.scenarios.latency).
LATENCY_RUNS = ("latency_spread", "latency_hot", "idle_wait", "idle_linger")


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "mem_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg": os.getloadavg(),
    }


def git() -> dict:
    def run(*args):
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return done.stdout.strip()

    return {
        "commit": run("rev-parse", "HEAD"),
        "dirty": bool(run("status", "--porcelain", "--", "billy_core", "consumers")),
        "compiled_modules": _compiled_modules(),
    }


def _compiled_modules() -> int | None:
    """How many modules of the hot path run compiled (billy_core.compiled); None for a
    commit from before there was one (bench/compare.sh runs this bench/ on older commits).
    Asked of this tree's files: in a worktree, a module the tree lacks would be imported
    from the editable install's tree instead."""
    if not (REPO / "billy_core" / "compiled.py").exists():
        return None
    from billy_core import compiled

    return len(compiled.built(REPO))


def median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 1) if values else None


def write_json(data: dict) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / time.strftime("bench-%Y%m%d-%H%M%S.json")
    text = json.dumps(data, indent=2, default=str)
    path.write_text(text)
    (OUT_DIR / "latest.json").write_text(text)
    return path


def _cpu_us(runs: list[dict], group: str) -> float | None:
    """Median CPU microseconds per command spent by `group` (ledger, postgres, ...)."""
    return median(1e6 * r["cpu_s"][group] / r["commands"] for r in runs if r.get("cpu_s"))


def table(data: dict) -> str:
    lines: list[str] = []
    add = lines.append
    tp = data.get("throughput")
    if tp:
        b, p = tp["batched"], tp["plain"]
        add(
            f"Throughput, end to end: {tp['commands']} commands pre-loaded, {tp['clients']}"
            f" clients, {tp['rounds']} alternating rounds (commands/s)"
        )
        modules = data.get("git", {}).get("compiled_modules")
        if modules is not None:
            add(f"  hot path: {f'{modules} modules compiled' if modules else 'interpreted'}")
        add(
            f"  {'ledger':30} {'median':>8} {'runs':>26} {'ledger-only':>11}"
            f" {'CPU us/cmd: ledger pg relay kafka':>34} {'busy':>5}"
        )
        for name, runs in (("batched (as configured)", b), ("plain (BATCH_SIZE_MAX=1)", p)):
            if not runs:
                continue
            per = ", ".join(
                f"{r['commands_per_s']:.0f}" if r["commands_per_s"] else "-" for r in runs
            )
            cpu = "  ".join(
                f"{_cpu_us(runs, g):.0f}" for g in ("ledger", "postgres", "relay", "kafka")
            )
            busy = median(r["cpu_s"]["machine_busy_pct"] for r in runs)
            add(
                f"  {name:30} {median(r['commands_per_s'] for r in runs)!s:>8} {per:>26}"
                f" {median(r['ledger_commands_per_s'] for r in runs)!s:>11} {cpu:>34}"
                f" {busy!s:>4}%"
            )
        if tp["ratios"]:
            add(
                f"  batched / plain: {tp['ratio_median']}x (median of per-round ratios:"
                f" {', '.join(str(x) for x in tp['ratios'])})"
            )
        reached = (tp["batched_median_cmd_s"] or 0) >= 10_000
        add(f"  target >= 10,000 commands/s end to end: {'reached' if reached else 'NOT reached'}")
    for key, title in (("latency_spread", "clients spread"), ("latency_hot", "one hot wallet")):
        lat = data.get(key)
        if not lat:
            continue
        e = lat["e2e_ms"]
        add(
            f"Latency, {title} ({lat['clients']} client(s)): target {lat['target_rate']:.0f}/s,"
            f" offered {lat['offered_rate']}/s, results {lat['reached_rate']}/s,"
            f" all answered: {lat['complete']}"
            + (", each sent as send(wait=True) sends it" if lat.get("sent_with_wait") else "")
        )
        add(
            f"  command -> result readable: p50 {e['p50']} ms, p95 {e['p95']} ms,"
            f" p99 {e['p99']} ms, max {e['max']} ms"
        )
        add(
            f"  of which send -> ledger batch p50 {lat['send_to_ledger_batch_ms']['p50']} ms,"
            f" ledger batch -> readable p50 {lat['ledger_batch_to_read_ms']['p50']} ms;"
            f" machine busy {lat['cpu_s']['machine_busy_pct']}%"
        )
    waited, lingered = data.get("idle_wait"), data.get("idle_linger")
    if waited and lingered:
        w, n = waited["e2e_ms"], lingered["e2e_ms"]
        add(
            f"One command on an idle billy ({waited['target_rate']:.0f}/s, command -> result"
            f" readable): sent as send(wait=True) sends it p50 {w['p50']} ms, p99 {w['p99']} ms;"
            f" with the SDK's default linger p50 {n['p50']} ms, p99 {n['p99']} ms"
        )
    mem = data.get("memory_mib", {}).get("ledger_peak_rss_by_scenario")
    if mem:
        add("Ledger peak RSS (VmHWM, MiB): " + ", ".join(f"{k} {v}" for k, v in mem.items()))
    prof = data.get("py_spy")
    if prof:
        add(f"Profiled run (py-spy, not in the medians): {prof['run_commands_per_s']} cmd/s")
        for role, summary in prof.items():
            if not isinstance(summary, dict):
                continue
            top = "; ".join(f"{pct}% {name}" for pct, name in summary["self_pct"][:8])
            add(
                f"Profile {role} (self share of thread time on billy's work,"
                f" {summary['samples']} samples): {top}"
            )
    for d in data.get("disturbed", []):
        add(f"Disturbed and repeated: {d['what']} (attempt {d['attempt']}): {d['error'][:160]}")
    notes = [
        n
        for r in (
            *data.get("throughput", {}).get("batched", []),
            *data.get("throughput", {}).get("plain", []),
        )
        for n in r.get("notes", [])
    ]
    notes += [
        f"{k}: {data[k]['foreign']} foreign results"
        for k in LATENCY_RUNS
        if data.get(k, {}).get("foreign")
    ]
    for n in notes:
        add(f"Note: {n[:200]}")
    return "\n".join(lines)
