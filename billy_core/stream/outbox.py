"""The outbox: output records written in the same transaction as the state they describe.

A partition batch appends records to an `Outbox`; the engine writes them (COPY) just before
the position compare-and-set, so a batch's outputs exist exactly when its effects do. The
relay publishes them to Kafka in order of `seq` per shard (one shard per input partition).

Rows carry their `deployment` (the topic prefix): a relay publishes only its own
deployment's rows, so two deployments sharing one database never publish each other's.
Keys and values are kept as they are, `None` included (a DLQ copy of a tombstone stays a
tombstone); headers are kept in order, values base64-encoded in JSON.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg.types.json import Jsonb

from billy_core.stream.record import Header


@dataclass(frozen=True, slots=True)
class OutputRecord:
    topic: str
    key: bytes | None
    value: bytes | None
    event_id: str  # deterministic: the `billy-event-id` header consumers may dedupe on
    headers: tuple[Header, ...] = ()


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


# The relay LISTENs here; engines NOTIFY it (payload: the deployment) after committing rows.
NOTIFY_CHANNEL = "billy_outbox"


def notify(conn: psycopg.Connection, deployment: str) -> None:
    """Wake the relays: rows were committed. Commits (a transaction that writes nothing, so
    no WAL flush); the relays of every deployment on this database hear it and look."""
    conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, deployment))
    conn.commit()


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


def write(cur: psycopg.Cursor, outbox: Outbox) -> None:
    """COPY the batch's records; part of the caller's transaction (nothing commits here)."""
    if not outbox.records:
        return
    with cur.copy(
        "COPY outbox (deployment, shard, seq, topic, key, value, event_id, headers) FROM STDIN"
    ) as copy:
        for seq, r in outbox.records:
            copy.write_row(
                (
                    outbox.deployment,
                    outbox.shard,
                    seq,
                    r.topic,
                    r.key,
                    r.value,
                    r.event_id,
                    encode_headers(r.headers),
                )
            )
