"""The local broker's requests per second by type, sampled while something else runs.

    python -m bench.broker_requests [--seconds 60] [--every 4]   (beside a `bench.run`)

Reads the broker's own counters (JMX `kafka.network:type=RequestMetrics,name=RequestsPerSec`)
with Kafka's `org.apache.kafka.tools.JmxTool`, after opening a local JMX port on the running
broker with `jcmd ... ManagementAgent.start` (loopback, no authentication: a bench tool for
the local stack only). Prints one line per window: the rates of the busiest request types.
bench/README.md, "Where the broker's CPU goes at 2,000 commands/s", came from it.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KAFKA = REPO / ".state" / "kafka"
SHOWN = (
    "Produce",
    "FetchConsumer",
    "AddPartitionsToTxnVerification",
    "AddPartitionsToTxn",
    "EndTxn",
    "WriteTxnMarkers",
    "Metadata",
)
_COUNT = re.compile(r"request=(\w+),version=\d+:Count=(\d+)")


def open_jmx(port: int) -> None:
    pid = (KAFKA / "kafka.pid").read_text().strip()
    subprocess.run(
        [
            "jcmd",
            pid,
            "ManagementAgent.start",
            f"jmxremote.port={port}",
            f"jmxremote.rmi.port={port}",
            "jmxremote.authenticate=false",
            "jmxremote.ssl=false",
            "jmxremote.host=127.0.0.1",
        ],
        check=False,  # already open from an earlier run: fine
        capture_output=True,
    )


def counts(port: int) -> dict[str, int]:
    out = subprocess.run(
        [
            "java",
            "-Xmx128m",
            "-cp",
            f"{KAFKA / 'libs'}/*",
            "org.apache.kafka.tools.JmxTool",
            "--jmx-url",
            f"service:jmx:rmi:///jndi/rmi://127.0.0.1:{port}/jmxrmi",
            "--object-name",
            "kafka.network:type=RequestMetrics,name=RequestsPerSec,request=*,version=*",
            "--attributes",
            "Count",
            "--one-time",
            "true",
            "--report-format",
            "properties",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    total: dict[str, int] = {}
    for name, n in _COUNT.findall(out):
        total[name] = total.get(name, 0) + int(n)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--every", type=float, default=4)
    parser.add_argument("--port", type=int, default=19999)
    args = parser.parse_args()
    open_jmx(args.port)
    print("time     " + " ".join(f"{n[:12]:>12s}" for n in SHOWN), flush=True)
    end = time.monotonic() + args.seconds
    last, at = counts(args.port), time.monotonic()
    while time.monotonic() < end:
        time.sleep(max(0.0, args.every - (time.monotonic() - at)))
        now, now_at = counts(args.port), time.monotonic()
        span = now_at - at
        rates = [(now.get(n, 0) - last.get(n, 0)) / span for n in SHOWN]
        print(time.strftime("%H:%M:%S ") + " ".join(f"{r:12.0f}" for r in rates), flush=True)
        last, at = now, now_at


if __name__ == "__main__":
    main()
