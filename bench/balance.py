"""Balance benchmarks, run on demand (never in CI, never asserted on):

1. Invoice latency end to end: a RequestInvoice produced -> its Result readable
   (ledger -> gateway -> Balance emulator -> gateway outbox -> relay -> ledger -> relay),
   with the emulator at 0 ms and at 200 ms added latency per call, rounds alternating.
2. Charge throughput with and without Balance trouble, in one run, rounds alternating:
   "quiet": charges only; "slow": the same charges while the emulator adds 2 s to every
   call and invoice commands for other clients keep the gateway busy (and waiting).

    .venv/bin/python -m bench.balance [--invoices 20] [--rounds 3] [--charges 3000]

The roles run as processes (ledger, relay, gateway), the emulator as its own process; the
broker and PostgreSQL are the shared stack's (BILLY_KAFKA_BOOTSTRAP / BILLY_DATABASE_URL or
.state/stack.env). Prints medians and ratios; these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer

from bench.roles import RoleProcess
from bench.stack import TENANT, Stack, World
from billy_core.codec import decode_result, encode_command
from billy_core.commands import Adjust, Charge, Command, RegisterClient, RequestInvoice, UpsertPayer
from billy_core.kafka import config as kafka_config
from tests.emulator_process import start_emulator

PAYER = {"lname": "Bench", "fname": "Ivan", "mname": "I", "phone": "+7 1", "email": "b@x.ru"}


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Io:
    def __init__(self, world: World) -> None:
        from bench.kafkaio import ResultCollector

        s = world.settings
        self.topics = world.topics
        self.producer = Producer(kafka_config.plain_producer(s, "bench-balance"))
        self.results = ResultCollector(s, world.topics.results(TENANT))
        self.admin_results = ResultCollector(s, world.topics.admin_results)
        self.seen = 0

    def send(self, client: str, body: object, command_id: str | None = None) -> str:
        command_id = command_id or uuid.uuid4().hex
        command = Command(command_id, client, _now_ms(), body)  # type: ignore[arg-type]
        topic = self.topics.commands(TENANT)
        key = client
        if isinstance(body, Adjust):
            topic, key = self.topics.admin_commands, f"{TENANT}/{client}"
        self.producer.produce(topic, key=key.encode(), value=encode_command(command))
        self.producer.poll(0)
        return command_id

    def wait_ids(self, ids: set[str], timeout_s: float = 300) -> dict[str, float]:
        """Receipt time of the first result of each id."""
        got: dict[str, float] = {}
        deadline = time.monotonic() + timeout_s
        while len(got) < len(ids):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(ids) - len(got)} results missing")
            self.results.wait_for(self.seen + 1, 0.5)
            with self.results._cond:  # both lists grow together under the collector's lock
                values = self.results.values[self.seen :]
                received = self.results.received[self.seen :]
            for value, at in zip(values, received, strict=True):
                r = decode_result(value)
                if r.command_id in ids and r.command_id not in got:
                    got[r.command_id] = at
            self.seen += len(values)
        return got


def invoice_latency(io: Io, control, client: str, count: int, latency_ms: int) -> list[float]:
    control.TestBalance.SetFaults({"latency_ms": latency_ms})
    out = []
    for _ in range(count):
        sent = time.time()
        command_id = io.send(client, RequestInvoice(10_000, "RUB", ""))
        io.producer.flush(10)
        got = io.wait_ids({command_id})
        out.append(got[command_id] - sent)
    return out


def charge_round(io: Io, clients: list[str], count: int) -> float:
    """Charges/s, first produced to last result read."""
    ids = set()
    started = time.time()
    for i in range(count):
        ids.add(io.send(clients[i % len(clients)], Charge("listing", 1, "RUB")))
    io.producer.flush(30)
    got = io.wait_ids(ids)
    return count / (max(got.values()) - started)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--invoices", type=int, default=20, help="invoice commands per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--charges", type=int, default=3000, help="charges per throughput round")
    ap.add_argument("--clients", type=int, default=50, help="charged clients")
    args = ap.parse_args()

    stack = Stack.from_env()
    world = World(stack, partitions_max=6)
    world.open()
    roles: list[RoleProcess] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-balance-"))
    with start_emulator(tmp / "balance.sqlite3") as emulator:
        control = emulator.control
        env = {
            **world.env(),
            "BILLY_BALANCE_GATEWAY": "true",
            "BILLY_BALANCE_URL": emulator.url,
            "BILLY_GATEWAY_WORKERS": "4",
        }
        time.sleep(3)  # new topics: let their leaders settle before reading watermarks
        try:
            io = Io(world)
        except Exception:
            world.close()
            raise
        try:
            for role in ("ledger", "relay", "gateway"):
                roles.append(RoleProcess(role, env, tmp / f"{role}.log"))
            # Set-up: one invoiced client with a payer; charged clients with money.
            ids = {io.send("inv-0", RegisterClient("Bench Invoices", "inv0@example.ru"))}
            ids.add(io.send("inv-0", UpsertPayer(None, "ph", dict(PAYER))))
            charged = [f"chg-{i}" for i in range(args.clients)]
            for c in charged:
                ids.add(io.send(c, RegisterClient(f"Bench {c}", f"{c}@example.ru")))
            slow = [f"slow-{i}" for i in range(20)]  # invoiced while Balance is slow
            for c in slow:
                ids.add(io.send(c, RegisterClient(f"Slow {c}", f"{c}@example.ru")))
                ids.add(io.send(c, UpsertPayer(None, "ph", dict(PAYER))))
            io.producer.flush(30)
            io.wait_ids(ids, 300)
            for c in charged:
                io.send(c, Adjust(10**12, "RUB", "bench funding", "bench"))
            io.producer.flush(30)
            io.admin_results.wait_for(len(charged), 120)

            latency: dict[int, list[float]] = {0: [], 200: []}
            for r in range(args.rounds):
                for ms in (0, 200) if r % 2 == 0 else (200, 0):
                    latency[ms] += invoice_latency(io, control, "inv-0", args.invoices, ms)
                    print(f"round {r}: invoices at +{ms} ms done", flush=True)
            control.TestBalance.SetFaults({})

            throughput: dict[str, list[float]] = {"quiet": [], "slow": []}
            busy = threading.Event()

            def invoice_load() -> None:  # Balance traffic for other clients while "slow"
                n = 0
                while busy.is_set():
                    io.send(slow[n % len(slow)], RequestInvoice(1000, "RUB", ""))
                    n += 1
                    time.sleep(0.05)

            for r in range(args.rounds):
                for phase in ("quiet", "slow") if r % 2 == 0 else ("slow", "quiet"):
                    loader = None
                    if phase == "slow":
                        control.TestBalance.SetFaults({"latency_ms": 2000})
                        busy.set()
                        loader = threading.Thread(target=invoice_load, daemon=True)
                        loader.start()
                        time.sleep(1.0)
                    throughput[phase].append(charge_round(io, charged, args.charges))
                    print(f"round {r}: {phase} {throughput[phase][-1]:.0f} charges/s", flush=True)
                    if loader is not None:
                        busy.clear()
                        loader.join(5)
                        control.TestBalance.SetFaults({})
            stats = control.TestBalance.Stats()
        finally:
            for role in roles:
                role.stop()
            io.results.close()
            io.admin_results.close()
            world.close()

    def ms(values: list[float]) -> str:
        q = statistics.quantiles(values, n=10) if len(values) >= 2 else values
        return f"median {statistics.median(values) * 1000:.0f} ms, p90 {q[-1] * 1000:.0f} ms"

    print(f"invoice latency end to end ({args.rounds} rounds x {args.invoices}, alternating):")
    for added in (0, 200):
        print(f"  emulator +{added:>3} ms per call: {ms(latency[added])}")
    quiet, slow = statistics.median(throughput["quiet"]), statistics.median(throughput["slow"])
    print(f"charge throughput ({args.rounds} rounds x {args.charges} charges, alternating):")
    print(
        f"  without Balance traffic: median {quiet:.0f}/s",
        [round(x) for x in throughput["quiet"]],
    )
    print(
        f"  Balance +2 s per call, invoices in flight: median {slow:.0f}/s  "
        f"{[round(x) for x in throughput['slow']]}"
    )
    print(f"  ratio slow/quiet: {slow / quiet:.2f}")
    print(f"  Balance calls during the run: {sum(stats['calls'].values())}", stats["calls"])


if __name__ == "__main__":
    main()
