"""Intake throughput: Balance notifications accepted DURABLY per second, run on demand.

`billy intake` runs as its own process against a fresh database and topic prefix; the Balance
emulator runs as its own process (the intake confirms every delivery with GetOrdersInfo there).
K orders are made in the emulator and mapped in the database as part 1 maps them. Then C
client threads post signed JSON deliveries (`/BalanceClient/NotifyOrder2`) with new Tids as
fast as the intake answers; a 200 means every struct of it is in Kafka (acks=all, delivery
report checked). Deliveries of 1 struct and of B structs alternate, round by round.

    .venv/bin/python -m bench.intake [--orders 200] [--deliveries 2000] [--concurrency 8]
                                     [--batch 10] [--rounds 3]

Prints per round: notifications/s, deliveries/s, latency p50/p99 per delivery, and at the end
the medians and the records counted on <prefix>.internal.events (must equal the accepted
notifications: nothing answered 200 is missing). These machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psycopg
from confluent_kafka import Consumer, TopicPartition

from bench.roles import RoleProcess
from bench.stack import TENANT, Stack, World
from billy_core.balance.notifications import sign
from billy_core.kafka import config as kafka_config
from tests.emulator_process import start_emulator

SECRET = "bench-intake-secret"
SERVICE_ID = 1000
PRODUCT_ID = 503162


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _orders(emulator, world: World, count: int) -> list[int]:  # type: ignore[no-untyped-def]
    """Make `count` clients with one order each in the emulator; map them like part 1 does."""
    balance = emulator.proxy(60).Balance2
    rows, orders = [], []
    for i in range(count):
        _, _, client_id = balance.CreateClient(1, {"NAME": f"Bench {i}", "EMAIL": f"b{i}@ex.ru"})
        order_id = 500_000 + i
        [[code, _]] = balance.CreateOrUpdateOrdersBatch(
            1,
            [
                {
                    "ServiceID": SERVICE_ID,
                    "ServiceOrderID": order_id,
                    "ClientID": client_id,
                    "ProductID": PRODUCT_ID,
                }
            ],
        )
        assert code == 0
        rows.append((TENANT, f"client-{i}", client_id, order_id, "registered"))
        orders.append(order_id)
    with psycopg.connect(world.db_url) as conn:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO balance_accounts (tenant, client_id, balance_client_id,"
                " service_order_id, status) VALUES (%s, %s, %s, %s, %s)",
                rows,
            )
    return orders


class Firing:
    """C threads posting signed deliveries until `total` deliveries were answered."""

    def __init__(self, url: str, orders: list[int], tid_start: int) -> None:
        self.url = url
        self.orders = orders
        self.tid = tid_start
        self.lock = threading.Lock()

    def next_structs(self, n: int) -> list[dict[str, object]]:
        with self.lock:
            out = []
            for _ in range(n):
                self.tid += 1
                out.append(
                    {
                        "ServiceID": SERVICE_ID,
                        "ServiceOrderID": self.orders[self.tid % len(self.orders)],
                        "Tid": str(self.tid),
                        "Signal": 1,
                        "SignalDescription": "Order balance have been changed",
                        "ConsumeQty": "0",
                        "ConsumeSum": "0.00",
                        "ConsumeAmount": "0.00",
                        "ConsumeCurrency": "RUB",
                        "CompletionQty": "0",
                    }
                )
            return out

    def run(self, deliveries: int, batch: int, concurrency: int) -> dict[str, float]:
        latencies: list[float] = []
        failures = [0]
        left = [deliveries]
        lock = threading.Lock()

        def worker() -> None:
            with httpx.Client(timeout=30) as http:
                while True:
                    with lock:
                        if left[0] <= 0:
                            return
                        left[0] -= 1
                    body = json.dumps(self.next_structs(batch)).encode()
                    headers = {
                        "Content-Type": "application/json",
                        "X-Balance-Signature": sign(SECRET.encode(), body),
                    }
                    t = time.perf_counter()
                    try:
                        status = http.post(self.url, content=body, headers=headers).status_code
                    except httpx.HTTPError:
                        status = 0  # a reset or a timeout: a failure, counted
                    took = time.perf_counter() - t
                    with lock:
                        if status == 200:
                            latencies.append(took)
                        else:
                            failures[0] += 1

        threads = [threading.Thread(target=worker) for _ in range(concurrency)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
        latencies.sort()
        ok = len(latencies)
        return {
            "batch": batch,
            "deliveries_ok": ok,
            "failures": failures[0],
            "notifications_per_s": ok * batch / elapsed,
            "deliveries_per_s": ok / elapsed,
            "p50_ms": 1000 * latencies[ok // 2] if ok else 0.0,
            "p99_ms": 1000 * latencies[min(ok - 1, int(ok * 0.99))] if ok else 0.0,
            "seconds": elapsed,
        }


def _records(world: World) -> int:
    consumer = Consumer(kafka_config.reader(world.settings, "bench-intake-count"))
    try:
        topic = world.topics.internal_events
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        total = 0
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--orders", type=int, default=200)
    ap.add_argument("--deliveries", type=int, default=2000, help="deliveries per round")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--batch", type=int, default=10, help="structs per delivery (vs 1)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    stack = Stack.from_env()
    world = World(stack, partitions_max=12)
    world.open()
    tmp = Path(tempfile.mkdtemp(prefix="bench-intake-"))
    port = _free_port()
    role = None
    try:
        with start_emulator(tmp / "balance.sqlite3") as emulator:
            orders = _orders(emulator, world, args.orders)
            env = {
                **world.env(),
                "BILLY_BALANCE_GATEWAY": "true",
                "BILLY_BALANCE_URL": emulator.url,
                "BILLY_INTAKE_PORT": str(port),
                "BILLY_BALANCE_NOTIFY_SECRET": SECRET,
            }
            role = RoleProcess("intake", env, tmp / "intake.log")
            url = f"http://127.0.0.1:{port}/balance/BalanceClient/NotifyOrder2"
            deadline = time.monotonic() + 60
            while True:  # up when a GET is answered (405: POST only)
                try:
                    httpx.get(url, timeout=1)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.3)
            firing = Firing(url, orders, time.time_ns() // 1000)
            firing.run(50, 1, 2)  # warm: connections, the producer, the pools
            warm = 50
            rows = []
            for r in range(args.rounds):
                sizes = (1, args.batch) if r % 2 == 0 else (args.batch, 1)
                for batch in sizes:
                    figures = firing.run(args.deliveries, batch, args.concurrency)
                    rows.append(figures)
                    print(
                        f"round {r + 1} batch {batch:>3}: {figures['notifications_per_s']:8.0f}"
                        f" notifications/s  {figures['deliveries_per_s']:7.0f} deliveries/s"
                        f"  p50 {figures['p50_ms']:6.1f} ms  p99 {figures['p99_ms']:6.1f} ms"
                        f"  failures {figures['failures']}",
                        flush=True,
                    )
            accepted = warm + sum(f["deliveries_ok"] * f["batch"] for f in rows)
            durable = _records(world)
            for batch in (1, args.batch):
                own = [f["notifications_per_s"] for f in rows if f["batch"] == batch]
                print(f"median, batch {batch}: {statistics.median(own):.0f} notifications/s")
            print(f"accepted {accepted} notifications; records on internal events: {durable}")
            summary = {"args": vars(args), "rounds": rows, "accepted": accepted, "durable": durable}
            out = Path(".state/bench")
            out.mkdir(parents=True, exist_ok=True)
            (out / "intake-latest.json").write_text(json.dumps(summary, indent=2))
    finally:
        if role is not None:
            role.stop()
        world.close()


if __name__ == "__main__":
    main()
