"""Summaries of py-spy's collapsed stacks (`--format raw`, one `frame;frame;... count` a line):
the share of samples per function, inclusive and self. Samples include idle time (py-spy
`--idle`), so waits on PostgreSQL or Kafka show as the waiting function (psycopg
`Connection.wait`; the poll loop's line for `consume`). Only stacks that run billy's code count;
threads parked in a pool or waiting for another thread's result (leaf in threading or
concurrent.futures) are left out, so a share is of the thread time spent on billy's work."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path


def summarize(path: Path, require: str = "consumers/", top: int = 25) -> dict:
    """Shares (%) of the counted samples per function (`name (file)`, line dropped)."""
    inclusive, own, total = Counter(), Counter(), 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or require not in stack:
            continue
        frames = [_function(f) for f in stack.split(";")]
        if any(parked in frames[-1] for parked in _PARKED):
            continue
        n = int(count)
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    if not total:
        return {"samples": 0, "inclusive_pct": [], "self_pct": []}

    def share(c):
        return [(round(100 * v / total, 1), k) for k, v in c.most_common(top)]

    return {"samples": total, "inclusive_pct": share(inclusive), "self_pct": share(own)}


_PARKED = ("(threading.py)", "(concurrent/futures/")


def _function(frame: str) -> str:
    # "encode (billy_core/codec/x.py:85)" -> "encode (billy_core/codec/x.py)"
    name, sep, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if sep else frame


if __name__ == "__main__":
    result = summarize(Path(sys.argv[1]), *sys.argv[2:3])
    print(f"{result['samples']} samples")
    for title in ("inclusive_pct", "self_pct"):
        print(f"--- {title}")
        for pct, name in result[title]:
            print(f"{pct:5.1f}%  {name}")
