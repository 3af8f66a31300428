"""Dead-letter copies: the original record exactly (key, value, a null stays null, an empty
key stays empty, its own headers in order), plus billy's headers saying why and where from.

A copy that would not fit the broker (key + value + headers over OUTPUT_RECORD_BYTES_MAX, set
below the broker's message.max.bytes) is replaced by a bounded record that says so: the
value null, the original headers left out, the key shortened when it alone is too long
(`billy_core.text.shorten_key`), and headers giving the original's size and digests. The
original stays readable at its source topic, partition and offset until retention.

Header names are part of the contract (`schemas/topics/dlq.json`, DESIGN.md, README).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from billy_core.limits import OUTPUT_RECORD_BYTES_MAX
from billy_core.stream.outbox import Outbox
from billy_core.stream.record import Header, Poison
from billy_core.text import bounded, shorten_key

REASON = "billy-dlq-reason"
SOURCE_TOPIC = "billy-source-topic"
SOURCE_PARTITION = "billy-source-partition"
SOURCE_OFFSET = "billy-source-offset"
SOURCE_TIMESTAMP = "billy-source-timestamp-ms"
HEADERS = (REASON, SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET, SOURCE_TIMESTAMP)
# Only on a copy too big to send (the original is then at its source offset):
OMITTED = "billy-dlq-omitted"  # "value,headers" or "value,headers,key"
ORIGINAL_BYTES = "billy-original-bytes"  # key + value + header names and values, decimal
ORIGINAL_VALUE_SHA256 = "billy-original-value-sha256"  # hex; absent for a null value
ORIGINAL_KEY_SHA256 = "billy-original-key-sha256"  # hex; only when the key was shortened
ORIGINAL_HEADERS = "billy-original-headers"  # how many headers the original had, decimal
OVERSIZE_HEADERS = (
    OMITTED,
    ORIGINAL_BYTES,
    ORIGINAL_HEADERS,
    ORIGINAL_VALUE_SHA256,
    ORIGINAL_KEY_SHA256,
)


def record_bytes(key: bytes | None, value: bytes | None, headers: Sequence[Header]) -> int:
    """What a record weighs against the broker's limit (batch framing aside)."""
    size = len(key or b"") + len(value or b"")
    return size + sum(len(name.encode()) + len(v or b"") for name, v in headers)


def dead_letter(outbox: Outbox, dlq_topic: str, poison: Poison) -> None:
    r = poison.record
    billy_headers: tuple[Header, ...] = (
        (REASON, bounded(poison.reason).encode()),
        (SOURCE_TOPIC, r.topic.encode()),
        (SOURCE_PARTITION, str(r.partition).encode()),
        (SOURCE_OFFSET, str(r.offset).encode()),
        (SOURCE_TIMESTAMP, str(r.timestamp_ms).encode()),
    )
    event_id = f"dlq:{r.topic}:{r.partition}:{r.offset}"
    headers = (*r.headers, *billy_headers)
    if record_bytes(r.key, r.value, headers) <= OUTPUT_RECORD_BYTES_MAX:
        outbox.add(dlq_topic, r.key, r.value, event_id, headers)
        return
    key, about = stand_in(r.key, r.value, r.headers)
    outbox.add(dlq_topic, key, None, event_id, (*about, *billy_headers))


def stand_in(
    key: bytes | None, value: bytes | None, headers: Sequence[Header]
) -> tuple[bytes | None, tuple[Header, ...]]:
    """The key and headers of a bounded stand-in for a record too big to send: the key
    shortened past OUTPUT_ID_CHARS_MAX bytes, headers saying what was left out, how big the
    original was and its digests. The caller sends it with a null value."""
    short = key if key is None else shorten_key(key)
    omitted = "value,headers" + (",key" if short != key else "")
    about: list[Header] = [
        (OMITTED, omitted.encode()),
        (ORIGINAL_BYTES, str(record_bytes(key, value, tuple(headers))).encode()),
        (ORIGINAL_HEADERS, str(len(headers)).encode()),
    ]
    if value is not None:
        about.append((ORIGINAL_VALUE_SHA256, hashlib.sha256(value).hexdigest().encode()))
    if key is not None and short != key:
        about.append((ORIGINAL_KEY_SHA256, hashlib.sha256(key).hexdigest().encode()))
    return short, tuple(about)
