"""The outbox: output records written in the same transaction as the state they describe.

A partition batch appends records to an `Outbox`; the engine writes them (`write`) just before
the position compare-and-set, so a batch's outputs exist exactly when its effects do. The
relay publishes them to Kafka in order of `seq` per shard (one shard per input partition).

Rows carry their `deployment` (the topic prefix): a relay publishes only its own
deployment's rows, so two deployments sharing one database never publish each other's.
Keys and values are kept as they are, `None` included (a DLQ copy of a tombstone stays a
tombstone); headers are kept in order, values base64-encoded in JSON.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import psycopg
from psycopg.types.json import Jsonb

from billy_core.stream.record import Header, Record


@dataclass(slots=True, init=False, unsafe_hash=True)
class OutputRecord:
    # A hot-path value: explicit __init__, Final fields (billy_core.compiled, "Values").
    topic: Final[str]
    key: Final[bytes | None]
    value: Final[bytes | None]
    event_id: Final[str]  # deterministic: the `billy-event-id` header consumers may dedupe on
    headers: Final[tuple[Header, ...]]

    def __init__(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        event_id: str,
        headers: tuple[Header, ...] = (),
    ) -> None:
        self.topic = topic
        self.key = key
        self.value = value
        self.event_id = event_id
        self.headers = headers


@dataclass(slots=True)
class Outbox:
    """Output records of one partition batch, numbered from the shard's stored sequence."""

    deployment: str
    shard: str
    seq: int
    records: list[tuple[int, OutputRecord]] = field(default_factory=list)

    def add(
        self,
        topic: str,
        key: str | bytes | None,
        value: bytes | None,
        event_id: str,
        headers: Sequence[Header] = (),
    ) -> None:
        self.seq += 1
        if isinstance(key, str):
            key = key.encode()
        self.records.append((self.seq, OutputRecord(topic, key, value, event_id, tuple(headers))))

    def __len__(self) -> int:
        return len(self.records)

    def checkpoint(self) -> Callable[[], None]:
        """A function that takes this outbox back to what it holds now: for a handler that
        undoes its own work (a savepoint rolled back) and does it again."""
        seq, held = self.seq, len(self.records)

        def rewind() -> None:
            self.seq = seq
            del self.records[held:]

        return rewind

    def at(self, record: Record) -> Outbox:
        """The outbox of `record`'s input partition: this one, in a transaction of one
        partition. A handler that lets the engine merge partitions (`Handler.mergeable`)
        sends every output through `at` with the record it answers."""
        return self


class MergedOutbox(Outbox):
    """The outboxes of a transaction that applies several partitions' batches: one per
    partition (its shard and sequence), reached with `at(record)`."""

    __slots__ = ("boxes",)

    def __init__(self, boxes: dict[tuple[str, int], Outbox]) -> None:
        super().__init__("", "", 0)
        self.boxes = boxes

    def at(self, record: Record) -> Outbox:
        return self.boxes[(record.topic, record.partition)]

    def add(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("a merged transaction's outputs go through at(record).add(...)")

    def checkpoint(self) -> Callable[[], None]:
        rewinds = [box.checkpoint() for box in self.boxes.values()]

        def rewind() -> None:
            for each in rewinds:
                each()

        return rewind

    def __len__(self) -> int:
        return sum(len(b) for b in self.boxes.values())


# The relay LISTENs here; engines NOTIFY it (payload: the deployment) after committing rows.
NOTIFY_CHANNEL = "billy_outbox"


def notify(conn: psycopg.Connection, deployment: str) -> None:
    """Wake the relays: rows were committed. One round trip: the statement alone, in its
    own implicit transaction (autocommit; it writes nothing, so no WAL flush); the relays of
    every deployment on this database hear it and look."""
    was = conn.autocommit
    conn.autocommit = True
    try:
        conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, deployment))
    finally:
        if not was and not conn.closed:  # a broken connection leaves the pool anyway
            conn.autocommit = False


def encode_headers(headers: Sequence[Header]) -> Jsonb | None:
    if not headers:
        return None
    return Jsonb(
        [
            [name, None if value is None else base64.b64encode(value).decode()]
            for name, value in headers
        ]
    )


def decode_headers(stored: object) -> list[Header]:
    """The relay's inverse of `encode_headers`."""
    if not stored:
        return []
    if isinstance(stored, dict):  # rows written before headers became a list (migration 0003)
        return [(str(k), str(v).encode()) for k, v in stored.items()]
    assert isinstance(stored, list)
    return [(str(n), None if v is None else base64.b64decode(v)) for n, v in stored]


_INSERT = (
    "INSERT INTO outbox"
    " (deployment, shard, seq, topic, key, value, event_id, headers, batch, records)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


def write(cur: psycopg.Cursor, *outboxes: Outbox) -> None:
    """Write the batches' records, a row per outbox; part of the caller's transaction
    (nothing commits here). One record is a row of its own; more go packed into one row
    (`pack`), whose seq is that of the last: a row per command output cost PostgreSQL an
    insert, an index entry and a delete each. Several outboxes (a merged transaction) go in
    one round trip (psycopg pipelines `executemany`)."""
    rows = [_row(box) for box in outboxes if box.records]
    if len(rows) == 1:
        cur.execute(_INSERT, rows[0])
    elif rows:
        cur.executemany(_INSERT, rows)


def _row(outbox: Outbox) -> tuple[object, ...]:
    """The INSERT's values: a record's columns, or a packed batch and its record count."""
    box, records = outbox, outbox.records
    if len(records) == 1:
        ((seq, r),) = records
        headers = encode_headers(r.headers)
        return (
            box.deployment,
            box.shard,
            seq,
            r.topic,
            r.key,
            r.value,
            r.event_id,
            headers,
            None,
            1,
        )
    packed = pack([r for _, r in records])
    return (
        box.deployment,
        box.shard,
        records[-1][0],
        None,
        None,
        None,
        None,
        None,
        packed,
        len(records),
    )


# --- packed batches -------------------------------------------------------------------------
#
# A batch row's `batch` column: the format byte, then per record a fixed head (lengths of
# topic, key, value, event id; header count), the bytes, and per header its name's and
# value's lengths and bytes. A length of -1 is a null key, value or header value.

_FORMAT = b"\x01"
_HEAD = struct.Struct("<HiiHH")
_HEADER = struct.Struct("<Hi")


def pack(records: Sequence[OutputRecord]) -> bytes:
    parts = [_FORMAT]
    add = parts.append
    head, header = _HEAD.pack, _HEADER.pack
    for r in records:
        topic, event_id, key, value = r.topic.encode(), r.event_id.encode(), r.key, r.value
        add(
            head(
                len(topic),
                -1 if key is None else len(key),
                -1 if value is None else len(value),
                len(event_id),
                len(r.headers),
            )
        )
        add(topic)
        if key:
            add(key)
        if value:
            add(value)
        add(event_id)
        for name, hvalue in r.headers:
            encoded = name.encode()
            add(header(len(encoded), -1 if hvalue is None else len(hvalue)))
            add(encoded)
            if hvalue:
                add(hvalue)
    return b"".join(parts)


# A record as the relay sends it: topic, key, value, event id, headers.
Unpacked = tuple[str, bytes | None, bytes | None, str, list[Header]]


def unpack(data: bytes | memoryview) -> list[Unpacked]:
    """The relay's inverse of `pack`. Raises ValueError for bytes `pack` did not write."""
    view = memoryview(data)
    if view[:1] != _FORMAT:
        raise ValueError(f"outbox batch: unknown format {bytes(view[:1])!r}")
    out: list[Unpacked] = []
    at, end = 1, len(view)
    head, header = _HEAD.unpack_from, _HEADER.unpack_from
    try:
        while at < end:
            topic_n, key_n, value_n, event_n, headers_n = head(view, at)
            at += _HEAD.size
            topic = str(view[at : at + topic_n], "utf-8")
            at += topic_n
            key = None if key_n < 0 else bytes(view[at : at + key_n])
            at += max(key_n, 0)
            value = None if value_n < 0 else bytes(view[at : at + value_n])
            at += max(value_n, 0)
            event_id = str(view[at : at + event_n], "utf-8")
            at += event_n
            headers: list[Header] = []
            for _ in range(headers_n):
                name_n, hvalue_n = header(view, at)
                at += _HEADER.size
                name = str(view[at : at + name_n], "utf-8")
                at += name_n
                headers.append((name, None if hvalue_n < 0 else bytes(view[at : at + hvalue_n])))
                at += max(hvalue_n, 0)
            out.append((topic, key, value, event_id, headers))
    except struct.error as exc:
        raise ValueError(f"outbox batch: truncated at byte {at}") from exc
    if at != end:
        raise ValueError(f"outbox batch: truncated at byte {at}")
    return out
