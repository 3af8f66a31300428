"""What the operations issue must show, measured: `python -m bench.ops_show lag|outage`.

    lag     ledger + relay + api in one `billy run` process; commands sent faster than this
            (throttled) ledger applies them; every few seconds Kafka's own consumer-group
            command (deploy/stack.sh kafka-tool ... ConsumerGroupCommand --describe) is run
            between two scrapes of billy's /metrics (billy_consumer_lag), and the group's
            CURRENT-OFFSETs are compared with the stored positions in PostgreSQL; each /metrics
            scrape is parsed with prometheus_client's parser and must hold every metric of
            billy_core/metrics.py's table.
    replay  a whole command topic replayed through the live system (`billy replay --execute`):
            the ledger's rows before and after, and every new result's duplicate flag.
    reset   Kafka's `--reset-offsets --execute` while billy runs (refused by Kafka), and while
            it is stopped (accepted; billy notices at start, logs, counts, overwrites).
    outage  the same process against the broker at BILLY_KAFKA_BOOTSTRAP (give it a broker of
            its own: --stack-sh names the deploy/stack.sh that manages that broker); the broker
            is stopped for --down-s seconds, /readyz is polled every second, and billy's log
            lines about the dependency are printed.

Each scenario gets a fresh database and topic prefix (bench.stack.World), removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
from prometheus_client.parser import text_string_to_metric_families

import billy_core.metrics as billy_metrics
from bench import workload
from bench.kafkaio import PacedProducer, send_and_flush
from bench.stack import TENANT, Stack, World

REPO = Path(__file__).resolve().parent.parent
GROUP_COMMAND = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"


def documented_metrics() -> set[str]:
    rows = [r for r in (billy_metrics.__doc__ or "").splitlines() if r.startswith("| billy_")]
    return {r.split("|")[1].strip() for r in rows}


def scrape(port: int) -> tuple[dict[str, float], set[str]]:
    """(sum of samples by name, metric names present) from /metrics, parsed by
    prometheus_client's own parser (it raises on anything malformed)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    sums: dict[str, float] = {}
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name + ("_total" if family.type == "counter" else ""))
        for s in family.samples:
            sums[s.name] = sums.get(s.name, 0.0) + s.value
    return sums, names


def billy_process(
    world: World, port: int, log_path: Path, extra: dict[str, str]
) -> subprocess.Popen[bytes]:
    env = {**os.environ, **world.env(), "BILLY_METRICS_PORT": str(port), **extra}
    log = open(log_path, "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "billy.cli", "run", "--roles", "ledger,relay,sweeper"],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_ready(port: int, timeout_s: float = 120) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2)
            return time.monotonic() - started
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise TimeoutError("billy did not become ready")


def group_describe(
    stack_sh: Path, bootstrap: str, group: str
) -> dict[tuple[str, int], tuple[int, int]]:
    """Kafka's own view: (topic, partition) -> (CURRENT-OFFSET, LAG); -1 where it shows '-'."""
    out = subprocess.run(
        ["bash", str(stack_sh), "kafka-tool", GROUP_COMMAND, "--bootstrap-server", bootstrap,
         "--describe", "--group", group],
        capture_output=True, text=True, timeout=120, check=False,
    ).stdout  # fmt: skip
    rows: dict[tuple[str, int], tuple[int, int]] = {}
    for line in out.splitlines():
        cells = line.split()
        if len(cells) >= 6 and cells[0] == group and cells[2].isdigit():
            current = int(cells[3]) if cells[3].isdigit() else -1
            lag = int(cells[5]) if re.fullmatch(r"\d+", cells[5]) else -1
            rows[(cells[1], int(cells[2]))] = (current, lag)
    return rows


def stored(world: World) -> dict[tuple[str, int], int]:
    with psycopg.connect(world.db_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT topic, partition, next_offset FROM consumer_offsets WHERE consumer_group = %s",
            (world.settings.ledger_group,),
        ).fetchall()
    return {(t, p): o for t, p, o in rows}


def prepare(world: World, clients: list[str]) -> None:
    send_and_flush(world.settings, world.topics.commands(TENANT), workload.registrations(clients))
    deadline = time.monotonic() + 120
    while world.count_processed() < len(clients):
        assert time.monotonic() < deadline, "registrations not applied"
        time.sleep(0.5)
    send_and_flush(world.settings, world.topics.admin_commands, workload.fundings(TENANT, clients))


def run_lag(args: argparse.Namespace) -> int:
    stack = Stack.from_env()
    world = World(stack, partitions_max=12)
    world.open()
    log_path = REPO / ".state" / "bench" / f"ops-lag-{world.prefix}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # A slow ledger on purpose (one worker, small polls), so lag builds up under this load.
    proc = billy_process(world, args.port, log_path, {
        "BILLY_LEDGER_WORKERS": "1", "BILLY_BATCH_SIZE_MAX": str(args.batch),
    })  # fmt: skip
    try:
        wait_ready(args.port)
        clients = workload.client_ids(args.clients)
        prepare(world, clients)
        commands = workload.mix(clients, args.commands, seed=11)
        sender = PacedProducer(world.settings, world.topics.commands(TENANT))
        thread = threading.Thread(target=sender.send, args=(commands, args.rate), daemon=True)
        thread.start()
        documented = documented_metrics()
        commands_topic = world.topics.commands(TENANT)
        print(f"prefix {world.prefix}, group {world.settings.ledger_group}, batch max {args.batch}")
        print(
            "  t_s  metric_lag_before  kafka_tool_lag  metric_lag_after"
            "  stored-kafka(sum, max/partition)  missing_metrics"
        )
        t0 = time.monotonic()
        worst = 0
        while thread.is_alive() or time.monotonic() - t0 < args.seconds:
            before, names = scrape(args.port)
            tool = group_describe(Path(args.stack_sh), stack.kafka, world.settings.ledger_group)
            positions = stored(world)
            after, _ = scrape(args.port)
            ours = {tp: v for tp, v in tool.items() if tp[0] == commands_topic}
            tool_lag = sum(lag for _, lag in ours.values() if lag >= 0)
            diffs = [positions.get(tp, 0) - cur for tp, (cur, _) in ours.items()]
            worst = max([worst, *diffs]) if diffs else worst
            missing = sorted(documented - names)
            print(
                f"{time.monotonic() - t0:5.1f}  {before.get('billy_consumer_lag', 0):17.0f}"
                f"  {tool_lag:14d}  {after.get('billy_consumer_lag', 0):16.0f}"
                f"  {sum(diffs):>12d} {max(diffs, default=0):>6d}"
                f"{'':16}{missing or 'none'}"
            )
            if time.monotonic() - t0 > args.seconds + 120:
                break
        thread.join(300)
        print(
            f"largest gap between a stored position and Kafka's CURRENT-OFFSET: {worst} records"
            f" (one commit is at most {args.batch} records of a partition)"
        )
        return 0
    finally:
        proc.terminate()
        proc.wait(60)
        world.close()


def run_outage(args: argparse.Namespace) -> int:
    stack = Stack.from_env()
    world = World(stack, partitions_max=3)
    world.open()
    log_path = REPO / ".state" / "bench" / f"ops-outage-{world.prefix}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    proc = billy_process(world, args.port, log_path, {})
    samples: list[tuple[float, int]] = []
    try:
        wait_ready(args.port)
        prepare(world, workload.client_ids(20))
        t0 = time.monotonic()

        def poll() -> None:
            while time.monotonic() - t0 < args.down_s + 150:
                try:
                    code = urllib.request.urlopen(
                        f"http://127.0.0.1:{args.port}/readyz", timeout=3
                    ).status
                except urllib.error.HTTPError as exc:
                    code = exc.code
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    code = 0
                samples.append((round(time.monotonic() - t0, 1), code))
                time.sleep(1)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        time.sleep(5)
        stopped_at = time.monotonic() - t0
        subprocess.run(["bash", args.stack_sh, "kafka-down"], check=True)
        time.sleep(args.down_s)
        started_at = time.monotonic() - t0
        subprocess.run(["bash", args.stack_sh, "kafka-up"], check=True)
        up_at = time.monotonic() - t0
        poller.join()
        print(
            f"broker stopped at {stopped_at:.1f} s, start asked at {started_at:.1f} s,"
            f" serving at {up_at:.1f} s"
        )
        changes = [s for i, s in enumerate(samples) if i == 0 or s[1] != samples[i - 1][1]]
        print("readyz changes (t_s, status):", changes)
        print("billy's log lines about dependencies:")
        for line in log_path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("logger") == "billy.health":
                print("  ", line)
        kafka_lines = sum(
            1
            for line in log_path.read_text(errors="replace").splitlines()
            if '"billy.kafka"' in line
        )
        print(f"librdkafka lines in the log during the run (repeats held back): {kafka_lines}")
        return 0
    finally:
        proc.terminate()
        proc.wait(60)
        world.close()


def reset_tool(args: argparse.Namespace, bootstrap: str, group: str, topic: str) -> str:
    out = subprocess.run(
        ["bash", args.stack_sh, "kafka-tool", GROUP_COMMAND, "--bootstrap-server", bootstrap,
         "--reset-offsets", "--group", group, "--topic", topic, "--to-earliest", "--execute"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return (out.stdout + out.stderr).strip()


def run_reset(args: argparse.Namespace) -> int:
    """Kafka's --reset-offsets against billy: refused while billy runs; made while it is
    stopped, it is noticed at the next start (logged, counted) and overwritten."""
    stack = Stack.from_env()
    world = World(stack, partitions_max=3)
    world.open()
    log_path = REPO / ".state" / "bench" / f"ops-reset-{world.prefix}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    group, topic = world.settings.ledger_group, world.topics.commands(TENANT)
    proc = billy_process(world, args.port, log_path, {})
    try:
        wait_ready(args.port)
        prepare(world, workload.client_ids(30))
        time.sleep(8)
        print("with billy running:", reset_tool(args, stack.kafka, group, topic)[-300:])
        proc.terminate()
        proc.wait(60)
        time.sleep(12)  # the group's session ends: Kafka accepts a reset of an empty group
        print("with billy stopped:", reset_tool(args, stack.kafka, group, topic)[-400:])
        print("stored positions:", sorted(stored(world).items()))
        proc = billy_process(world, args.port, log_path, {})
        wait_ready(args.port)
        time.sleep(8)
        sums, _ = scrape(args.port)
        print(
            "billy_offset_mismatches_total after restart:",
            sums.get("billy_offset_mismatches_total"),
        )
        tool = group_describe(Path(args.stack_sh), stack.kafka, group)
        print(
            "Kafka's CURRENT-OFFSETs now:",
            sorted((tp, v[0]) for tp, v in tool.items() if tp[0] == topic),
        )
        for line in log_path.read_text(errors="replace").splitlines():
            if "reset with Kafka" in line:
                print("  ", line)
        return 0
    finally:
        proc.terminate()
        proc.wait(60)
        world.close()


def quiet(world: World, timeout_s: float = 300) -> None:
    """Every command partition applied to its end and the outbox empty."""
    from billy.ops import reading

    c = reading.consumer(world.settings, "ops-show")
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            ends = {
                (t, p): reading.watermarks(c, t, p)[1]
                for t in (world.topics.commands(TENANT), world.topics.admin_commands)
                for p in reading.partitions_of(c, t)
            }
            done = stored(world)
            with psycopg.connect(world.db_url, autocommit=True) as conn:
                row = conn.execute("SELECT count(*) FROM outbox").fetchone()
            if row and row[0] == 0 and all(done.get(tp, 0) >= e for tp, e in ends.items()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError("not quiet")
            time.sleep(0.5)
    finally:
        c.close()


def ledger_state(world: World) -> list[tuple[object, ...]]:
    with psycopg.connect(world.db_url, autocommit=True) as conn:
        return conn.execute(
            "SELECT 'w', tenant, client_id, available_minor, held_minor, version::text, ''"
            " FROM wallets UNION ALL SELECT 'h', tenant, client_id, amount_minor, confirmed_minor,"
            " status, hold_id FROM holds UNION ALL SELECT 'c', tenant, client_id, amount_minor,"
            " refunded_minor, '', command_id FROM applied_services WHERE kind = 'CHARGE'"
            " UNION ALL SELECT 't', tenant,"
            " client_id, count(*), sum(amount_minor), '', '' FROM transfers GROUP BY 2, 3"
            " ORDER BY 1, 2, 3, 7"
        ).fetchall()


def run_replay(args: argparse.Namespace) -> int:
    """A whole command topic replayed through the live system: nothing changes, and every
    answer to a replayed record is duplicate=true (or the same rejection, for records that
    were never remembered: invalid ones)."""
    from billy.ops import reading, replay
    from billy_core.codec import decode_result

    stack = Stack.from_env()
    world = World(stack, partitions_max=12)
    world.open()
    log_path = REPO / ".state" / "bench" / f"ops-replay-{world.prefix}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    proc = billy_process(world, args.port, log_path, {})
    try:
        wait_ready(args.port)
        clients = workload.client_ids(args.clients)
        prepare(world, clients)
        topic = world.topics.commands(TENANT)
        send_and_flush(world.settings, topic, workload.mix(clients, args.commands, seed=5))
        quiet(world)
        before = ledger_state(world)
        results_topic = world.topics.results(TENANT)
        c = reading.consumer(world.settings, "ops-show")
        try:
            results_end = {
                p: reading.watermarks(c, results_topic, p)[1]
                for p in reading.partitions_of(c, results_topic)
            }
        finally:
            c.close()
        started = time.monotonic()
        code = replay.replay(
            world.settings,
            topic,
            start=reading.Position("beginning"),
            end=None,
            partitions=None,
            execute=True,
        )
        quiet(world)
        seconds = time.monotonic() - started
        after = ledger_state(world)
        answers = [
            decode_result(r.value)
            for p, end in results_end.items()
            for r in reading.read(
                world.settings,
                results_topic,
                start=reading.Position("offset", end),
                partitions=[p],
                purpose="ops-show",
            )
            if r.value is not None
        ]
        by_kind: dict[str, int] = {}
        for r in answers:
            kind = "duplicate=true" if r.duplicate else f"duplicate=false {r.code}"
            by_kind[kind] = by_kind.get(kind, 0) + 1
        print(f"replay exit {code}; {len(answers)} new results in {seconds:.1f} s: {by_kind}")
        print(
            f"wallets, holds, charges and transfer sums: {len(before)} rows before,"
            f" {len(after)} after, identical: {before == after}"
        )
        return 0 if before == after else 1
    finally:
        proc.terminate()
        proc.wait(60)
        world.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    lag = sub.add_parser("lag")
    lag.add_argument("--port", type=int, default=19301)
    lag.add_argument("--clients", type=int, default=300)
    lag.add_argument("--commands", type=int, default=60_000)
    lag.add_argument("--rate", type=float, default=2500)
    lag.add_argument("--batch", type=int, default=100)
    lag.add_argument("--seconds", type=float, default=30)
    lag.add_argument("--stack-sh", default=str(REPO / "deploy" / "stack.sh"))
    outage = sub.add_parser("outage")
    outage.add_argument("--port", type=int, default=19302)
    outage.add_argument("--down-s", type=float, default=60)
    outage.add_argument("--stack-sh", required=True)
    reset = sub.add_parser("reset")
    reset.add_argument("--port", type=int, default=19303)
    reset.add_argument("--stack-sh", default=str(REPO / "deploy" / "stack.sh"))
    rep = sub.add_parser("replay")
    rep.add_argument("--port", type=int, default=19304)
    rep.add_argument("--clients", type=int, default=300)
    rep.add_argument("--commands", type=int, default=20_000)
    args = parser.parse_args()
    scenarios = {"lag": run_lag, "outage": run_outage, "reset": run_reset, "replay": run_replay}
    return scenarios[args.what](args)


if __name__ == "__main__":
    sys.exit(main())
