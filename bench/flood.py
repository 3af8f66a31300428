"""A poison flood on one tenant's partition, and what it costs every other tenant (issue 10).

One run, billy's ledger and relay as processes: a `calm` tenant sends Charge commands at a
fixed rate (end-to-end latency = command produced -> its result readable read_committed),
in alternating phases: without a flood (A) and while undecodable records pour into
partition 0 of the `flood` tenant's commands topic as fast as one producer sends them (B).
The poison cap pauses the flooded partition within its first window; everything else goes
on. Prints p50/p99 per phase and round, the medians and the B/A ratios. Never in CI.

    .venv/bin/python -m bench.flood [--rounds 3] [--seconds 15] [--rate 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from pathlib import Path

from confluent_kafka import KafkaException, Producer

from bench.kafkaio import PacedProducer, ResultCollector, send_and_flush
from bench.roles import RoleProcess
from bench.stack import Stack, World
from bench.workload import Encoded, registrations
from billy_core.codec import decode_result, encode_command
from billy_core.commands import Charge, Command
from billy_core.kafka import config as kafka_config

REPO = Path(__file__).resolve().parent.parent
CALM, FLOOD = "calm", "flood"


class FloodWorld(World):
    """Two tenants: the calm one measured, the flooded one."""

    def __init__(self, stack: Stack, partitions_max: int) -> None:
        super().__init__(stack, partitions_max)
        self.settings = self.settings.model_copy(update={"tenants": (CALM, FLOOD)})

    def env(self) -> dict[str, str]:
        return {**super().env(), "BILLY_TENANTS": f"{CALM},{FLOOD}"}


def _charges(clients: list[str], count: int, tag: str) -> list[Encoded]:
    out = []
    for i in range(count):
        client = clients[i % len(clients)]
        command = Command(f"{tag}-{i}", client, time.time_ns() // 1_000_000, Charge("p", 1, "RUB"))
        out.append(Encoded(command.command_id, client.encode(), encode_command(command), "Charge"))
    return out


def _flood(world: World, stop: threading.Event, sent: list[int], rate: float) -> None:
    """Undecodable 1 KiB records into the flood tenant's partition 0 at `rate` per second."""
    producer = Producer(kafka_config.plain_producer(world.settings, "bench-flood"))
    topic = world.topics.commands(FLOOD)
    junk = os.urandom(1024)
    start, n = time.monotonic(), 0
    while not stop.is_set():
        due = int((time.monotonic() - start) * rate)
        while n < due:
            try:
                producer.produce(topic, key=b"flooder", value=junk, partition=0)
                n += 1
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
        time.sleep(0.01)
    sent[0] += n
    producer.flush(60)


def _collector(world: World) -> ResultCollector:
    """The calm tenant's results from their end now (a topic made a moment ago may have no
    leader yet: wait for it)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return ResultCollector(world.settings, world.topics.results(CALM))
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def _percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    if not ordered:
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "n": 0}
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {"p50_ms": round(pick(0.50), 1), "p99_ms": round(pick(0.99), 1), "n": len(ordered)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--flood-rate", type=float, default=5000.0, help="poison records/s")
    args = parser.parse_args()

    world = FloodWorld(Stack.from_env(), partitions_max=12)
    world.open()
    logs = REPO / ".state" / "bench" / "logs"
    roles = [RoleProcess(r, world.env(), logs / f"flood-{r}.log") for r in ("ledger", "relay")]
    rows: list[dict[str, object]] = []
    flood_sent = [0]
    try:
        clients = [f"calm-{i:04d}" for i in range(args.clients)]
        calm_topic = world.topics.commands(CALM)
        collector = _collector(world)
        send_and_flush(world.settings, calm_topic, registrations(clients))
        paced = PacedProducer(world.settings, calm_topic)
        warm = _charges(clients, 50, "warm")
        paced.warm(warm)
        if not collector.wait_for(len(clients) + len(warm), 120):
            raise RuntimeError("billy did not answer the warm-up")
        per_round = int(args.rate * args.seconds)
        for n in range(args.rounds):
            for phase in ("A", "B"):
                commands = _charges(clients, per_round, f"{phase}{n}")
                stop = threading.Event()
                flooder = threading.Thread(
                    target=_flood, args=(world, stop, flood_sent, args.flood_rate)
                )
                if phase == "B":
                    flooder.start()
                before = len(collector.values)
                sent_at = dict(
                    zip(
                        (c.command_id for c in commands),
                        paced.send(commands, args.rate),
                        strict=True,
                    )
                )
                stop.set()
                if phase == "B":
                    flooder.join(120)
                collector.wait_for(before + per_round, 120)
                latencies = []
                for value, received in zip(
                    collector.values[before:], collector.received[before:], strict=True
                ):
                    command_id = decode_result(value).command_id
                    if command_id in sent_at:
                        latencies.append(received - sent_at[command_id])
                rows.append({"round": n, "phase": phase, **_percentiles(latencies)})
                print(rows[-1], flush=True)
        collector.close()
        paused = "poison flood" in (logs / "flood-ledger.log").read_text(errors="replace")
        alive = all(r.alive() for r in roles)
    finally:
        for r in roles:
            r.proc.terminate()
        for r in roles:
            r.proc.wait(60)
        world.close()

    def median(phase: str, key: str) -> float:
        return statistics.median(float(r[key]) for r in rows if r["phase"] == phase)  # type: ignore[arg-type]

    summary = {
        "rate_per_s": args.rate,
        "seconds_per_phase": args.seconds,
        "rounds": args.rounds,
        "flood_rate_per_s": args.flood_rate,
        "flood_records_sent": flood_sent[0],
        "flooded_partition_paused": paused,
        "roles_alive_at_end": alive,
        "p50_ms_median": {
            "A (no flood)": median("A", "p50_ms"),
            "B (flood)": median("B", "p50_ms"),
        },
        "p99_ms_median": {
            "A (no flood)": median("A", "p99_ms"),
            "B (flood)": median("B", "p99_ms"),
        },
        "p99_ratio_B_over_A": round(median("B", "p99_ms") / median("A", "p99_ms"), 2),
        "rows": rows,
    }
    out = REPO / ".state" / "bench" / "flood-latest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=2))


if __name__ == "__main__":
    main()
