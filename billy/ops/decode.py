"""Any billy record as one JSON object: `billy tail` and `billy decode`.

    {"topic": "billy.autoru.results", "partition": 3, "offset": 17,
     "timestamp_ms": 1795000000000, "timestamp": "2026-11-18T...Z",
     "key": "c-42", "headers": {"billy-event-id": "result:..."},
     "schema": "billy.v1.Result", "value": {...Avro record as JSON...}}

Values: Avro (single-object framing, or Confluent framing when billy is configured with a
registry) of any schema in schemas/ (the writer's schema is found by its fingerprint and read
as the current one); else JSON (billy's internal records); else the bytes in base64 with the
reason it did not decode (`"undecodable"`). Keys and header values are shown as UTF-8 text
when they are, else as {"base64": ...}. A null stays null.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from billy_core.codec import CodecError
from billy_core.codec.messages import default
from billy_core.stream.record import Record


def _text(data: bytes | None) -> Any:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode()}


def jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def decode_value(value: bytes | None) -> dict[str, Any]:
    """{"schema": ..., "value": ...} for Avro, {"json": ...}, or {"undecodable": reason}."""
    if value is None:
        return {"value": None}
    try:
        name, datum = default().framing.decode(value)
    except CodecError as exc:
        avro_error = str(exc)
    else:
        return {"schema": name, "value": jsonable(datum)}
    try:
        return {"json": json.loads(value)}
    except (UnicodeDecodeError, ValueError):
        pass
    return {"undecodable": avro_error, "value": {"base64": base64.b64encode(value).decode()}}


def render(record: Record) -> dict[str, Any]:
    ts = record.timestamp_ms
    out: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp_ms": ts,
        "timestamp": (
            datetime.fromtimestamp(ts / 1000, UTC).isoformat().replace("+00:00", "Z")
            if ts >= 0
            else None
        ),
        "key": _text(record.key),
        "headers": [[name, _text(value)] for name, value in record.headers],
    }
    out.update(decode_value(record.value))
    return out


def line(record: Record) -> str:
    return json.dumps(render(record), ensure_ascii=False, sort_keys=False)
