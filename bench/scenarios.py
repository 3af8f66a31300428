"""A running billy (ledger and relay processes over a fresh world, clients registered and
funded), and the measurements made against it: throughput and latency."""

from __future__ import annotations

import logging
import os
import statistics
import time
from collections import Counter
from pathlib import Path

import psycopg

from bench import kafkaio, workload
from bench.cpu import CpuMeter
from bench.roles import RoleProcess
from bench.stack import TENANT, Stack, World
from billy_core.codec import decode_result

log = logging.getLogger("bench")


def _wait(predicate, timeout_s: float, what: str, roles=()) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        for r in roles:
            if not r.alive():
                raise RuntimeError(f"{r.role} exited during {what}:\n{r.log_tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done in {timeout_s:.0f}s")
        time.sleep(0.2)


class Billy:
    """billy's ledger and relay as processes over a fresh world; `clients` registered and
    funded before any measurement, and the outbox drained, so a run starts warm and idle."""

    def __init__(
        self,
        stack: Stack,
        label: str,
        clients: list[str],
        env: dict[str, str],
        partitions_max: int,
        log_dir: Path,
    ) -> None:
        self.label = label
        self.clients = clients
        self.world = World(stack, partitions_max)
        self.extra_env = env
        self.log_dir = log_dir / f"{label}-{self.world.prefix}"
        self.ledger: RoleProcess | None = None
        self.relay: RoleProcess | None = None
        self.more: list[RoleProcess] = []  # further ledgers and relays (scale-out runs)
        self.memory: dict[str, dict[str, int]] = {}
        self.setup_s = 0.0
        self.notes: list[str] = []

    @property
    def settings(self):
        return self.world.settings

    def __enter__(self) -> Billy:
        started = time.monotonic()
        try:
            self.world.open()
            env = {**self.world.env(), **self.extra_env}
            # Scale-out runs (bench/README.md): BENCH_LEDGERS ledgers in one group share the
            # partitions; BENCH_RELAYS relays split the outbox shards (relay_instances).
            ledgers = int(os.environ.get("BENCH_LEDGERS", "1"))
            relays = int(os.environ.get("BENCH_RELAYS", "1"))
            relay_env = {**env, "BILLY_RELAY_INSTANCES": str(relays)}
            self.ledger = RoleProcess("ledger", env, self.log_dir / "ledger.log")
            self.relay = RoleProcess(
                "relay", {**relay_env, "BILLY_RELAY_INSTANCE": "0"}, self.log_dir / "relay.log"
            )
            self.more = [
                RoleProcess("ledger", env, self.log_dir / f"ledger-{i}.log")
                for i in range(1, ledgers)
            ] + [
                RoleProcess(
                    "relay",
                    {**relay_env, "BILLY_RELAY_INSTANCE": str(i)},
                    self.log_dir / f"relay-{i}.log",
                )
                for i in range(1, relays)
            ]
            self._fund()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self.setup_s = time.monotonic() - started
        return self

    def _fund(self) -> None:
        topics, n, roles = self.world.topics, len(self.clients), (self.ledger, self.relay)
        kafkaio.send_and_flush(
            self.settings, topics.commands(TENANT), workload.registrations(self.clients)
        )
        roles = (self.ledger, self.relay, *self.more)
        _wait(lambda: self.world.count_processed() >= n, 300, "registrations", roles)
        kafkaio.send_and_flush(
            self.settings, topics.admin_commands, workload.fundings(TENANT, self.clients)
        )
        _wait(lambda: self.world.count_processed() >= 2 * n, 300, "fundings", roles)
        _wait(self.outbox_empty, 300, "relay draining the set-up outbox", roles)

    def outbox_empty(self) -> bool:
        with psycopg.connect(self.world.db_url) as conn:
            return conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0

    def pids(self, role: str) -> list[int]:
        """Every process of a role (the first ledger or relay, then any further ones)."""
        first = self.ledger if role == "ledger" else self.relay
        return [r.pid for r in (first, *self.more) if r is not None and r.role == role]

    def check_alive(self) -> None:
        for r in (self.ledger, self.relay, *self.more):
            if r is not None and not r.alive():
                raise RuntimeError(f"{r.role} exited:\n{r.log_tail()}")

    def __exit__(self, *exc) -> None:
        for r in (self.ledger, self.relay, *self.more):
            if r is None:
                continue
            if r.alive() and r.role not in self.memory:  # the first of each role
                self.memory[r.role] = r.memory_kib()
            r.stop()
        self.world.close()


def _decode(values: list[bytes]):
    return [decode_result(v) for v in values]


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))]


def _outcomes(results) -> dict[str, int]:
    out = Counter(
        f"{r.status.value}:{r.code if isinstance(r.code, str) else r.code.value}" for r in results
    )
    dup = sum(r.duplicate for r in results)
    if dup:
        out["duplicate=true"] = dup
    return dict(out)


def _wait_for_ids(
    collector: kafkaio.ResultCollector, ids: set[str], already: int, timeout_s: float
) -> bool:
    """Wait until a result of every command in `ids` has been read. Counting records alone
    is not enough: results of other commands (see `_note_foreign`) may arrive too."""
    deadline = time.monotonic() + timeout_s
    want = already + len(ids)
    while True:
        if not collector.wait_for(want, max(0.0, deadline - time.monotonic())):
            return False
        seen = {decode_result(v).command_id for v in collector.values[:want]}
        missing = len(ids - seen)
        if not missing:
            return True
        want += missing


def _note_foreign(billy: Billy, results, ids: set[str], t0: float) -> int:
    """Results read during a run whose commands were not sent by it: kept as a note with
    when the ledger processed them, relative to the run's start."""
    unknown = [r for r in results if r.command_id not in ids]
    if unknown:
        ages = sorted(round(r.processed_at_ms / 1000 - t0, 2) for r in unknown)
        note = (
            f"{len(unknown)} results of commands not in this run, processed at"
            f" t0{ages[0]:+}s..{ages[-1]:+}s, e.g. {unknown[0]!r}"
        )
        log.warning(note)
        billy.notes.append(note)
    return len(unknown)


def throughput(billy: Billy, commands: list[workload.Encoded], profile: Path | None = None) -> dict:
    """M commands made available at one instant (one Kafka transaction committed), then the
    time until the last of their M results is readable read_committed."""
    s, topics = billy.settings, billy.world.topics
    collector = kafkaio.ResultCollector(s, topics.results(TENANT))
    try:
        if profile is not None:
            billy.ledger.start_profile(profile.with_suffix(".ledger.txt"))
            billy.relay.start_profile(profile.with_suffix(".relay.txt"))
        m = len(commands)
        meter = CpuMeter({"ledger": billy.pids("ledger"), "relay": billy.pids("relay")})
        # Written inside an open transaction (invisible to the ledger), so the meter starts
        # only at the commit: billy's work is what happens after it.
        load = kafkaio.load_in_one_transaction(
            s, topics.commands(TENANT), commands, before_commit=meter.start
        )
        t0 = load["commit_started"]
        ids = {c.command_id for c in commands}
        complete = _wait_for_ids(collector, ids, 0, timeout_s=max(120.0, m / 100))
        cpu = meter.stop()
        billy.ledger.stop_profile()
        billy.relay.stop_profile()
        billy.check_alive()
    finally:
        collector.close()
    results = _decode(collector.values)
    got = len(results)
    ours = [t for r, t in zip(results, collector.received, strict=True) if r.command_id in ids]
    t_end = max(ours) if ours else float("nan")
    seen = Counter(r.command_id for r in results if r.command_id in ids)
    foreign = _note_foreign(billy, results, ids, t0)
    ledger_done = (
        max((r.processed_at_ms for r in results if r.command_id in ids), default=float("nan"))
        / 1000
    )
    elapsed = t_end - t0
    return {
        "commands": m,
        "results_read": got,
        "complete": complete and set(seen) == ids and max(seen.values(), default=0) == 1,
        "missing": len(ids - set(seen)),
        "duplicates": sum(n - 1 for n in seen.values()),
        "foreign": foreign,
        "elapsed_s": round(elapsed, 3),
        "commands_per_s": round(m / elapsed, 1) if complete else None,
        "ledger_done_s": round(ledger_done - t0, 3),
        "ledger_commands_per_s": round(m / (ledger_done - t0), 1) if complete else None,
        "commit_visible_s": round(load["commit_done"] - t0, 3),
        "load_write_s": round(load["write_s"], 3),
        "cpu_s": cpu,
        "outcomes": _outcomes(results),
    }


def latency(
    billy: Billy,
    commands: list[workload.Encoded],
    warmup: list[workload.Encoded],
    rate: float,
    wait: bool = False,
) -> dict:
    """Commands produced at a steady `rate`; per command, send time → time its result is read
    here (read_committed). Also split at the ledger's processed_at (batch start) time. The
    `warmup` commands go first, through the same producer, and are not measured. `wait`:
    each command sent as the SDK's `send(wait=True)` sends it (`PacedProducer.send`)."""
    s, topics = billy.settings, billy.world.topics
    collector = kafkaio.ResultCollector(s, topics.results(TENANT))
    try:
        producer = kafkaio.PacedProducer(s, topics.commands(TENANT))
        producer.warm(warmup)
        if not collector.wait_for(len(warmup), timeout_s=60):
            raise TimeoutError("warm-up results not read")
        meter = CpuMeter({"ledger": billy.pids("ledger"), "relay": billy.pids("relay")})
        meter.start()
        sent = producer.send(commands, rate, wait)
        send_end = time.time()
        ids = {c.command_id for c in commands}
        complete = _wait_for_ids(collector, ids, len(warmup), timeout_s=120)
        cpu = meter.stop()
        billy.check_alive()
    finally:
        collector.close()
    results = _decode(collector.values)
    index = {c.command_id: i for i, c in enumerate(commands)}
    e2e, to_apply, apply_to_read = [], [], []
    by_second: dict[int, list[float]] = {}
    for r, received in zip(results, collector.received, strict=True):
        i = index.get(r.command_id)
        if i is None:
            continue
        e2e.append((received - sent[i]) * 1000)
        by_second.setdefault(int(sent[i] - sent[0]), []).append(e2e[-1])
        to_apply.append(r.processed_at_ms - sent[i] * 1000)
        apply_to_read.append(received * 1000 - r.processed_at_ms)
    foreign = _note_foreign(billy, results, ids | {c.command_id for c in warmup}, sent[0])
    n = len(commands)
    offered_s = sent[-1] - sent[0]
    last_read = max(collector.received) if collector.received else float("nan")
    # Throughput kept up over the window: results read per second between first send and
    # last result; equals the offered rate when billy keeps up.
    return {
        "target_rate": rate,
        "sent_with_wait": wait,
        "commands": n,
        "offered_rate": round((n - 1) / offered_s, 1) if offered_s > 0 else None,
        "send_s": round(send_end - sent[0], 2),
        "results_read": len(e2e),
        "complete": complete and len(e2e) == n,
        "warmup_commands": len(warmup),
        "foreign": foreign,
        "reached_rate": round(len(e2e) / (last_read - sent[0]), 1) if e2e else None,
        "drain_after_send_s": round(last_read - send_end, 2),
        "e2e_ms": {f"p{q}": round(_pct(e2e, q), 1) for q in (50, 95, 99)}
        | {
            "max": round(max(e2e), 1) if e2e else None,
            "mean": round(statistics.fmean(e2e), 1) if e2e else None,
        },
        "send_to_ledger_batch_ms": {f"p{q}": round(_pct(to_apply, q), 1) for q in (50, 99)},
        "ledger_batch_to_read_ms": {f"p{q}": round(_pct(apply_to_read, q), 1) for q in (50, 99)},
        "cpu_s": cpu,
        "outcomes": _outcomes(results),
        # [second since the first send, commands sent in it, p50 ms, max ms]: warm-up, stalls
        "e2e_by_second": [
            [sec, len(v), round(_pct(v, 50), 1), round(max(v), 1)]
            for sec, v in sorted(by_second.items())
        ],
    }
