"""The CPU of one ledger transaction by batch size, without Kafka: `python -m bench.cycle_cost`.

A partition's batch of N charges (N = 1, 5, 25, 100, 400, over 300 funded clients) goes
through the stream engine's apply step (`apply_batches`: lock the position, decide, write,
outbox, compare-and-set, commit) on the stack's PostgreSQL, in a fresh database dropped at
the end. Printed per N: the CPU of this process per transaction and per record, the wall time
per transaction, and the PostgreSQL round trips per transaction (psycopg waits). It separates
a transaction's fixed cost from its per-record cost: under a steady load the ledger's batches
are small, and the fixed part is most of what it spends (bench/README.md, ninth round). It
also prints the CPU of one `SELECT 1` round trip, for scale. Needs the stack's PostgreSQL
(`make up`)."""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable

import psycopg

from bench.stack import Stack
from billy_core.codec import encode_command
from billy_core.commands import Adjust, Charge, Command, RegisterClient
from billy_core.kafka.topics import ADMIN_TENANT, TopicNames
from billy_core.settings import Settings
from billy_core.store import migrate
from billy_core.stream import Record, positions
from billy_core.stream.apply_step import PartitionWork, apply_batches
from consumers.ledger.handler import LedgerHandler

TENANT = "bench"
TOPICS = TopicNames("cycle")
CLIENTS = [f"client-{i:04d}" for i in range(300)]


class _Partition:
    """One partition of a ledger handler, fed batches directly."""

    def __init__(self, conn: psycopg.Connection, tenant: str, partition: int) -> None:
        self.conn = conn
        self.topic = TOPICS.commands(tenant)
        self.key: Callable[[str], str] = (
            (lambda c: f"{TENANT}/{c}") if tenant == ADMIN_TENANT else (lambda c: c)
        )
        self.partition = partition
        self.handler = LedgerHandler(TOPICS, frozenset({TENANT}), "cycle", balance_gateway=False)
        self.offset = positions.claim(conn, "cycle", self.topic, partition).next_offset

    def work(self, commands: list[Command]) -> PartitionWork:
        first = self.offset
        items = [
            self.handler.decode(
                Record(
                    self.topic,
                    self.partition,
                    first + i,
                    1_000,
                    self.key(c.client_id).encode(),
                    encode_command(c),
                )
            )
            for i, c in enumerate(commands)
        ]
        self.offset = first + len(items)
        return PartitionWork(self.topic, self.partition, first, self.offset - 1, items, ())

    def apply(self, work: PartitionWork) -> None:
        apply_batches(self.conn, self.handler, "cycle", TOPICS.dlq, [work])


def _round_trip_cpu_us(conn: psycopg.Connection, n: int = 2_000) -> float:
    for _ in range(200):
        conn.execute("SELECT 1")
    started = time.thread_time()
    for _ in range(n):
        conn.execute("SELECT 1")
    return (time.thread_time() - started) / n * 1e6


def _waits(conn: psycopg.Connection) -> Callable[[], int]:
    """Counts the connection's waits on the server (one per round trip)."""
    count = [0]
    wait = conn.wait

    def counted(gen, *args, **kwargs):  # type: ignore[no-untyped-def]
        count[0] += 1
        return wait(gen, *args, **kwargs)

    conn.wait = counted  # type: ignore[method-assign]
    return lambda: count[0]


def measure(url: str, sizes: list[int], transactions: int) -> None:
    with psycopg.connect(url) as conn:
        commands = _Partition(conn, TENANT, 0)
        admin = _Partition(conn, ADMIN_TENANT, 1)
        commands.apply(
            commands.work(
                [
                    Command(uuid.uuid4().hex, c, 1, RegisterClient(c, f"{c}@x.example"))
                    for c in CLIENTS
                ]
            )
        )
        admin.apply(
            admin.work(
                [
                    Command(uuid.uuid4().hex, c, 1, Adjust(10**12, "RUB", "funding", "bench"))
                    for c in CLIENTS
                ]
            )
        )
        waits = _waits(conn)
        print(f"one SELECT 1 round trip: {_round_trip_cpu_us(conn):.0f} µs CPU")
        for n in sizes:
            runs = max(10, transactions // n)
            batches = [
                [
                    Command(
                        uuid.uuid4().hex,
                        CLIENTS[(k * n + i) % len(CLIENTS)],
                        1,
                        Charge("p", 1, "RUB"),
                    )
                    for i in range(n)
                ]
                for k in range(runs)
            ]
            works = [commands.work(b) for b in batches]
            waited, cpu, wall = waits(), time.thread_time(), time.perf_counter()
            for w in works:
                commands.apply(w)
            cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
            print(
                f"batch of {n:>3}: {cpu / runs * 1e3:6.2f} ms CPU a transaction,"
                f" {cpu / runs / n * 1e6:6.1f} µs CPU a record, {wall / runs * 1e3:6.2f} ms wall,"
                f" {(waits() - waited) / runs:.0f} round trips ({runs} transactions)"
            )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def _sizes(text: str) -> list[int]:
    return [_positive(part) for part in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cycle_cost", description=__doc__.split("\n", 1)[0]
    )
    parser.add_argument(
        "--sizes", type=_sizes, default=[1, 5, 25, 100, 400], help="batch sizes, comma-separated"
    )
    parser.add_argument(
        "--transactions", type=_positive, default=300, help="per size (fewer for big ones)"
    )
    args = parser.parse_args()
    stack = Stack.from_env()
    name = f"cycle_{uuid.uuid4().hex[:10]}"
    base = stack.admin_db_url.rpartition("/")[0]
    try:
        with psycopg.connect(stack.admin_db_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        first = (str(exc).strip().splitlines() or ["no answer"])[0]
        parser.exit(2, f"python -m bench.cycle_cost: PostgreSQL unreachable ({first}); `make up`\n")
    try:
        url = f"{base}/{name}"
        migrate.upgrade(Settings(database_url=url).sqlalchemy_url)
        measure(url, args.sizes, args.transactions)
    finally:
        with psycopg.connect(stack.admin_db_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
