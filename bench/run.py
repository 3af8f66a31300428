"""Entry point: `python -m bench.run [--quick] [--profile] [--security ...]`. See bench/README.md.

Every scenario gets a fresh database and topic prefix, billy's ledger and relay as separate
processes, and clients registered and funded before the clock starts. Throughput rounds
alternate the batched ledger (as configured) with the one-transaction-per-command loop
(BILLY_BATCH_SIZE_MAX=1), flipping the order each round; then latency at a fixed offered
load, clients spread and one hot wallet; then one command at a time on an idle billy (sent
as the SDK's `send(wait=True)` sends it, and with its default lingering producer). Prints a
table; writes .state/bench/*.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import time

from bench import report, workload
from bench.profile import summarize
from bench.scenarios import Billy, latency, throughput
from bench.stack import Stack
from billy_core.settings import Settings

PROFILES = {
    "full": dict(clients=1000, commands=30_000, rounds=3, rate=2000, seconds=20, partitions=12),
    "quick": dict(clients=100, commands=5_000, rounds=1, rate=2000, seconds=5, partitions=12),
}
PLAIN_ENV = {"BILLY_BATCH_SIZE_MAX": "1"}
WARMUP = 200  # commands sent and answered before a latency run's clock starts
IDLE_RATE, IDLE_SECONDS = 5, 12  # one command every 200 ms: each finds billy idle


def _mib(billy: Billy, role: str = "ledger") -> float | None:
    kib = billy.memory.get(role, {}).get("VmHWM")
    return round(kib / 1024, 1) if kib else None


def _throughput_run(stack, label, env, clients, commands, p, log_dir, profile=None) -> dict:
    with Billy(stack, label, clients, env, p["partitions"], log_dir) as billy:
        figures = throughput(billy, commands, profile)
    figures["setup_s"] = round(billy.setup_s, 1)
    figures["notes"] = billy.notes
    figures["ledger_peak_rss_mib"] = _mib(billy)
    figures["relay_peak_rss_mib"] = _mib(billy, "relay")
    return figures


def _latency_run(stack, label, clients, p, seed, log_dir, wait=False) -> dict:
    commands = workload.mix(clients, int(p["rate"] * p["seconds"]) + WARMUP, seed)
    with Billy(stack, label, clients, {}, p["partitions"], log_dir) as billy:
        figures = latency(billy, commands[WARMUP:], commands[:WARMUP], p["rate"], wait)
    figures["clients"] = len(clients)
    figures["ledger_peak_rss_mib"] = _mib(billy)
    figures["relay_peak_rss_mib"] = _mib(billy, "relay")
    return figures


def _attempt(data: dict, what: str, run):
    """Run a scenario; once more if it was disturbed (a role exited, e.g. because another
    engineer's fault test restarted the shared broker, or results never came). Each
    disturbance is kept in the JSON."""
    for attempt in (1, 2):
        try:
            return run()
        except (RuntimeError, TimeoutError) as exc:
            logging.getLogger("bench").warning(
                "%s disturbed (attempt %d): %s", what, attempt, str(exc)[:300]
            )
            data["disturbed"].append({"what": what, "attempt": attempt, "error": str(exc)[:2000]})
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


SECURITY_PROTOCOLS = {"plaintext": "PLAINTEXT", "sasl": "SASL_PLAINTEXT", "sasl_ssl": "SASL_SSL"}


def security_stacks(spec: str, base: Settings, stack: Stack) -> dict[str, Stack]:
    """`--security plaintext=127.0.0.1:19092,sasl,sasl_ssl`: one Stack per mode. A mode
    without an address takes the environment's: BILLY_KAFKA_BOOTSTRAP for the mode the
    environment is in, BILLY_KAFKA_SSL_BOOTSTRAP for sasl_ssl. SASL credentials and the CA
    come from the environment (.state/stack.env of a secured stack, BILLY_STATE_DIR)."""
    stacks = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        mode, _, address = item.partition("=")
        if mode not in SECURITY_PROTOCOLS:
            raise SystemExit(
                f"--security: unknown mode {mode!r}; choose from plaintext, sasl, sasl_ssl"
            )
        if not address:
            address = (base.kafka_ssl_bootstrap or "") if mode == "sasl_ssl" else stack.kafka
        if not address:
            raise SystemExit(f"--security: give {mode}=host:port (no address in the environment)")
        stacks[mode] = dataclasses.replace(stack, kafka=address, protocol=SECURITY_PROTOCOLS[mode])
    return stacks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke version (~2 min)")
    parser.add_argument("--only", choices=["throughput", "latency", "idle"], help="one part only")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the ledger and relay in the first batched run (if installed)",
    )
    parser.add_argument(
        "--security",
        metavar="MODE[=HOST:PORT],...",
        help="throughput of the batched ledger per broker security mode (plaintext, sasl,"
        " sasl_ssl), alternating in each round, instead of batched vs plain",
    )
    parser.add_argument(
        "--no-plain",
        action="store_true",
        help="throughput of the batched ledger only (the one-transaction-per-command runs take"
        " minutes at ~200 commands/s)",
    )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="latency runs send each command as the SDK's send(wait=True) does: flushed at"
        " once, not lingering linger.ms (for a low --rate: one produce request per command)",
    )
    for name in ("clients", "commands", "rounds", "rate", "seconds", "partitions"):
        parser.add_argument(f"--{name}", type=int, help=f"override the profile's {name}")
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C: every scenario stops its roles, drops its database and
    # deletes its topics on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    log = logging.getLogger("bench")

    p = dict(PROFILES["quick" if args.quick else "full"])
    for name in p:
        if getattr(args, name, None) is not None:
            p[name] = getattr(args, name)
    stack = Stack.from_env()
    started = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_dir = report.OUT_DIR / "logs" / stamp
    base = Settings()  # what the roles get from the environment besides the bench's own
    data = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(["python -m bench.run", *(argv if argv is not None else sys.argv[1:])]),
        "size": "quick" if args.quick else "full",
        "parameters": {**p, "wait": args.wait},
        "git": report.git(),
        "machine": report.machine(),
        "postgres": stack.server_facts(),
        "kafka_bootstrap": stack.kafka,
        "billy_settings": {
            "topic_partitions_max": p["partitions"],
            # every setting the roles see, but connections, names and tokens (set per scenario)
            **{
                k: v
                for k, v in base.model_dump().items()
                if k
                not in (
                    "kafka_bootstrap",
                    "database_url",
                    "schema_registry_url",
                    "api_tokens",
                    "topic_prefix",
                    "tenants",
                    "ledger_group",
                    "topic_partitions_max",
                )
            },
            # BILLY_* tuning passed through to the roles (never connection strings or tokens)
            "inherited_env": {
                k: v
                for k, v in os.environ.items()
                if k.startswith("BILLY_") and not k.endswith(("_URL", "_TOKENS", "_BOOTSTRAP"))
            },
            "plain_loop_env": PLAIN_ENV,
            "producer": "acks=all, idempotent, lz4 (billy_core.kafka.config.plain_producer)",
        },
    }
    data["disturbed"] = []
    clients = workload.client_ids(p["clients"])

    if args.security and args.only in (None, "throughput"):
        stacks = security_stacks(args.security, base, stack)
        data["security_stacks"] = {m: s.kafka for m, s in stacks.items()}
        commands = workload.mix(clients, p["commands"], seed=1)
        by_mode: dict[str, list[dict]] = {m: [] for m in stacks}
        for rnd in range(p["rounds"]):
            modes = list(stacks)
            modes = modes[rnd % len(modes) :] + modes[: rnd % len(modes)]
            for mode in modes:
                log.info("throughput round %d: %s (%d commands)", rnd + 1, mode, len(commands))

                def one_mode(mode=mode):
                    return _throughput_run(stacks[mode], mode, {}, clients, commands, p, log_dir)

                figures = _attempt(data, f"throughput {mode} round {rnd + 1}", one_mode)
                log.info("  -> %s cmd/s end to end (%s)", figures["commands_per_s"], mode)
                by_mode[mode].append(figures)
        medians = {m: report.median(r["commands_per_s"] for r in rs) for m, rs in by_mode.items()}
        data["throughput_security"] = {
            "commands": p["commands"],
            "rounds": p["rounds"],
            "by_mode": by_mode,
            "median_cmd_s": medians,
        }
        for mode, median in medians.items():
            print(f"throughput {mode:<10} median {median} cmd/s ({stacks[mode].kafka})")
        args.only = "security-done"

    if args.only in (None, "throughput"):
        commands = workload.mix(clients, p["commands"], seed=1)
        batched, plain = [], []
        for rnd in range(p["rounds"]):
            order = [("batched", {}), ("plain", PLAIN_ENV)]
            if rnd % 2:
                order.reverse()
            if args.no_plain:
                order = [("batched", {})]
            for label, env in order:
                log.info("throughput round %d: %s (%d commands)", rnd + 1, label, len(commands))

                def one(label=label, env=env):
                    return _throughput_run(stack, label, env, clients, commands, p, log_dir)

                figures = _attempt(data, f"throughput {label} round {rnd + 1}", one)
                log.info(
                    "  -> %s cmd/s end to end (ledger alone %s cmd/s), %s",
                    figures["commands_per_s"],
                    figures["ledger_commands_per_s"],
                    figures["outcomes"],
                )
                (batched if label == "batched" else plain).append(figures)
        ratios = [
            round(b["commands_per_s"] / q["commands_per_s"], 1)
            for b, q in zip(batched, plain, strict=False)
            if b["commands_per_s"] and q["commands_per_s"]
        ]
        data["throughput"] = {
            "commands": p["commands"],
            "clients": p["clients"],
            "rounds": p["rounds"],
            "method": "pre-loaded in one Kafka transaction; t0 = commit; end = last result"
            " read read_committed",
            "batched": batched,
            "plain": plain,
            "batched_median_cmd_s": report.median(r["commands_per_s"] for r in batched),
            "plain_median_cmd_s": report.median(r["commands_per_s"] for r in plain),
            "ratios": ratios,
            "ratio_median": report.median(ratios),
        }

    if args.only in (None, "latency"):
        log.info(
            "latency: %d cmd/s for %d s over %d clients", p["rate"], p["seconds"], len(clients)
        )
        data["latency_spread"] = _attempt(
            data,
            "latency spread",
            lambda: _latency_run(stack, "latency", clients, p, 2, log_dir, args.wait),
        )
        log.info("  -> %s", data["latency_spread"]["e2e_ms"])
        log.info("latency: %d cmd/s for %d s, one hot wallet", p["rate"], p["seconds"])
        data["latency_hot"] = _attempt(
            data,
            "latency hot",
            lambda: _latency_run(stack, "hot", ["hot-client"], p, 3, log_dir, args.wait),
        )
        log.info("  -> %s", data["latency_hot"]["e2e_ms"])

    if args.only == "idle" or (args.only is None and not args.quick):
        # One command at a time on an idle billy (issue 12's "one command" figure): sent as
        # the SDK's send(wait=True) sends it, then with the SDK's default lingering producer.
        idle = {**p, "rate": IDLE_RATE, "seconds": IDLE_SECONDS}
        for key, wait in (("idle_wait", True), ("idle_linger", False)):
            log.info("idle: %d cmd/s for %d s, wait=%s", IDLE_RATE, IDLE_SECONDS, wait)
            data[key] = _attempt(
                data,
                key,
                lambda wait=wait: _latency_run(
                    stack, "idle", clients[:100], idle, 4, log_dir, wait
                ),
            )
            log.info("  -> %s", data[key]["e2e_ms"])

    data["memory_mib"] = {
        "ledger_peak_rss_by_scenario": {
            **{
                f"throughput_batched_{i + 1}": r["ledger_peak_rss_mib"]
                for i, r in enumerate(data.get("throughput", {}).get("batched", []))
            },
            **{
                f"throughput_plain_{i + 1}": r["ledger_peak_rss_mib"]
                for i, r in enumerate(data.get("throughput", {}).get("plain", []))
            },
            **{k: data[k]["ledger_peak_rss_mib"] for k in report.LATENCY_RUNS if k in data},
        },
    }
    if args.profile:
        # An extra batched run under py-spy (which takes CPU from billy on 2 cores): its
        # figures are not among the medians above.
        log.info("profiled batched run (py-spy, %d commands)", p["commands"])
        prof = report.OUT_DIR / f"profile-{stamp}"
        commands = workload.mix(clients, p["commands"], seed=1)
        run = _throughput_run(stack, "profiled", {}, clients, commands, p, log_dir, prof)
        data["py_spy"] = {"run_commands_per_s": run["commands_per_s"]}
        for role, code in (("ledger", "consumers/ledger/"), ("relay", "relay/publisher")):
            path = prof.with_suffix(f".{role}.txt")
            if path.exists():
                data["py_spy"][role] = {"file": str(path), **summarize(path, code)}
    data["duration_s"] = round(time.time() - started, 1)
    data["machine"]["loadavg_end"] = report.machine()["loadavg"]
    path = report.write_json(data)
    print()
    print(report.table(data))
    print(f"\n{data['duration_s']} s; figures in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
