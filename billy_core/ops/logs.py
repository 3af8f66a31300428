"""Structured logs: one JSON object per line, per event.

    {"ts": "2026-11-27T08:01:02.345Z", "level": "WARNING", "logger": "billy.ledger",
     "thread": "billy-ledger", "msg": "...", "topic": "billy.autoru.commands", "partition": 3,
     "offset": 1200, "tenant": "autoru", "command_id": "c-1"}

Context fields are passed with `extra=` (`log.warning("...", extra=fields(...))`); only the
names in `FIELDS` are written, so a stray attribute never leaks into a line. Fields are ids
and positions only: never a name, an email or a payload (DESIGN.md, Security). librdkafka's
own lines arrive through the logger `billy.kafka` (billy_core.kafka.logs, repeats held back)
and are formatted the same way (their facility and client name lead the message).

`configure(level, json_lines)` is called once by the CLI; `text` keeps the old plain format
for people at a terminal (`billy --log-format text`).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

FIELDS = (
    "role",
    "tenant",
    "topic",
    "partition",
    "offset",
    "command_id",
    "client_id",
    "dependency",
    "event",
    "group",
    "count",
)
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def fields(**values: Any) -> dict[str, Any]:
    """`extra=` for a log call, without the Nones (unknown fields are left out)."""
    return {k: v for k, v in values.items() if v is not None}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        created = time.gmtime(record.created)
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", created) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "thread": record.threadName,
            "msg": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if "topic" not in line:
            line.update(_where(record))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def _where(record: logging.LogRecord) -> dict[str, Any]:
    """Topic and partition of the engine's `"... %s/%d ..."` lines, taken from their args, so
    lines written before fields existed still carry them."""
    msg, args = record.msg, record.args
    if not isinstance(msg, str) or not isinstance(args, tuple) or "%s/%d" not in msg:
        return {}
    before = msg[: msg.index("%s/%d")]
    i = before.count("%") - 2 * before.count("%%")
    if i + 1 < len(args) and isinstance(args[i], str) and isinstance(args[i + 1], int):
        return {"topic": args[i], "partition": args[i + 1]}
    return {}


def configure(level: str = "INFO", json_lines: bool = True) -> None:
    """Send every logger's records to stderr, one JSON object a line (or plain text)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(_TEXT_FORMAT))
    handler.set_name("billy")
    root = logging.getLogger()
    for old in list(root.handlers):  # ours from an earlier call only (tests call it often)
        if old.get_name() == "billy":
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
