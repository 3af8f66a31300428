"""Summaries of py-spy's collapsed stacks (`--format raw`, one `frame;frame;... count` a line):
the share of samples per function, inclusive and self. Samples include idle time (py-spy
`--idle`), so a share is of wall-clock time: waits on PostgreSQL or Kafka show as the waiting
function (psycopg `wait`, `consume`)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path


def summarize(path: Path, thread: str = "", top: int = 25) -> dict:
    """Shares (%) of the samples whose stack contains `thread` (a substring of any frame;
    "" for all), per function (`name (file:line)` with the line dropped)."""
    inclusive, own, total = Counter(), Counter(), 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or (thread and thread not in stack):
            continue
        n = int(count)
        frames = [_function(f) for f in stack.split(";")]
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    share = (lambda c: [(round(100 * v / total, 1), k) for k, v in c.most_common(top)]) if total \
        else (lambda c: [])
    return {"samples": total, "inclusive_pct": share(inclusive), "self_pct": share(own)}


def _function(frame: str) -> str:
    # "encode (billy_core/codec/x.py:85)" -> "encode (billy_core/codec/x.py)"
    name, sep, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if sep else frame


if __name__ == "__main__":
    result = summarize(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "")
    print(f"{result['samples']} samples")
    for title in ("inclusive_pct", "self_pct"):
        print(f"--- {title}")
        for pct, name in result[title]:
            print(f"{pct:5.1f}%  {name}")
