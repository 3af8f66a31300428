"""Reading a topic range outside any consumer group: what tail, dlq, replay and rebuild share.

`read(settings, topic, start=..., end=..., follow=...)` assigns the partitions itself
(a throwaway group id, never committed), reads committed data only (`read_committed`), and
stops at the end of each partition as it was when reading began, unless it follows.

Positions (`Start`): "beginning", "end", an offset ("1200", the same on every partition),
"-N" (the last N records of each partition), or an ISO 8601 time (the first record at or
after it, by record timestamp).
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition

from billy_core.kafka import config as kafka_config
from billy_core.kafka.logs import KAFKA_LOG
from billy_core.settings import Settings
from billy_core.stream.record import Record

IDLE_END_S = 2.0  # with no record for this long, positions are checked against the end
STALL_S = 60.0  # with no record for this long and partitions short of their end: an error


class BadPosition(ValueError):
    """A --from / --to value that is none of the accepted forms (the message says which)."""


@dataclass(frozen=True, slots=True)
class Position:
    kind: str  # beginning | end | offset | last | time
    value: int = 0

    @classmethod
    def parse(cls, text: str) -> Position:
        text = text.strip()
        if text in ("beginning", "earliest"):
            return cls("beginning")
        if text in ("end", "latest"):
            return cls("end")
        if text.lstrip("-").isdigit():
            number = int(text)
            return cls("last", -number) if number < 0 else cls("offset", number)
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise BadPosition(
                f"{text!r}: use beginning, end, an offset, -N (the last N) or an ISO time"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return cls("time", int(moment.timestamp() * 1000))


def _headers(m: Message) -> tuple[tuple[str, bytes | None], ...]:
    found = m.headers() or ()
    pairs = found.items() if isinstance(found, dict) else found
    return tuple((k, v.encode() if isinstance(v, str) else v) for k, v in pairs)


def consumer(settings: Settings, purpose: str) -> Consumer:
    config = kafka_config.reader(settings, f"billy-ops-{purpose}-{uuid.uuid4().hex[:8]}")
    config["client.id"] = f"billy-{purpose}"
    config["enable.partition.eof"] = False
    return Consumer(config, logger=KAFKA_LOG)


def partitions_of(c: Consumer, topic: str) -> list[int]:
    meta = c.list_topics(topic, timeout=10).topics.get(topic)
    if meta is None or meta.error is not None:
        raise KafkaException(meta.error if meta is not None else f"{topic}: no such topic")
    return sorted(meta.partitions)


def watermarks(c: Consumer, topic: str, partition: int) -> tuple[int, int]:
    """(first retained offset, end) of a partition, asked of the broker now."""
    found = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    if found is None:
        raise KafkaException(f"{topic}/{partition}: no watermarks within 10 s")
    return int(found[0]), int(found[1])


def resolve(c: Consumer, topic: str, partition: int, where: Position) -> int:
    """The offset a Position means on one partition."""
    low, high = watermarks(c, topic, partition)
    if where.kind == "beginning":
        return int(low)
    if where.kind == "end":
        return int(high)
    if where.kind == "offset":
        return max(int(low), min(where.value, int(high)))
    if where.kind == "last":  # twice as far: a transactional topic has a marker per commit
        return max(int(low), int(high) - 2 * where.value)
    found = c.offsets_for_times([TopicPartition(topic, partition, where.value)], timeout=10)
    offset = found[0].offset
    return int(high) if offset < 0 else int(offset)


def read(
    settings: Settings,
    topic: str,
    *,
    start: Position = Position("beginning"),
    end: Position | None = None,
    follow: bool = False,
    partitions: list[int] | None = None,
    stop_at: dict[int, int] | None = None,
    purpose: str = "reader",
) -> Iterator[Record]:
    """The records of `topic` from `start` to `end` (exclusive; None: the end at the start
    of reading; `stop_at` gives it per partition and limits the partitions read), in offset
    order per partition. With `follow`, waits for new records until the caller stops.
    `start` "-N" gives the last N records of each partition (transaction markers skipped)."""
    if start.kind != "last":
        yield from _read(settings, topic, start, end, follow, partitions, stop_at, purpose)
        return
    last: dict[int, deque[Record]] = defaultdict(lambda: deque(maxlen=start.value))
    for record in _read(settings, topic, start, end, False, partitions, stop_at, purpose):
        last[record.partition].append(record)
    for part in sorted(last):
        yield from last[part]
    if follow:
        yield from _read(settings, topic, Position("end"), None, True, partitions, None, purpose)


def _read(
    settings: Settings,
    topic: str,
    start: Position,
    end: Position | None,
    follow: bool,
    partitions: list[int] | None,
    stop_at: dict[int, int] | None,
    purpose: str,
) -> Iterator[Record]:
    c = consumer(settings, purpose)
    try:
        chosen = partitions if partitions is not None else partitions_of(c, topic)
        if stop_at is not None:
            chosen = [p for p in chosen if p in stop_at]
        ends: dict[int, int] = {}
        assignment = []
        for p in chosen:
            first = resolve(c, topic, p, start)
            last = resolve(c, topic, p, end or Position("end"))
            if stop_at is not None:
                last = min(last, stop_at[p])
            if follow or first < last:
                ends[p] = last
                assignment.append(
                    TopicPartition(topic, p, first if first > 0 else OFFSET_BEGINNING)
                )
        if not assignment:
            return
        c.assign(assignment)
        open_parts = set(ends)
        idle_since = checked = time.monotonic()
        while follow or open_parts:
            messages: list[Message] = c.consume(500, 0.5)
            if not messages:
                now = time.monotonic()
                if not follow and now - checked >= IDLE_END_S:
                    # The end may be a transaction marker, never delivered: ask the position.
                    checked = now
                    for tp in c.position([TopicPartition(topic, p) for p in list(open_parts)]):
                        if tp.offset >= ends[tp.partition]:
                            open_parts.discard(tp.partition)
                    if open_parts and now - idle_since >= STALL_S:
                        raise KafkaException(
                            f"{topic}: nothing read for {STALL_S:.0f} s from partitions"
                            f" {sorted(open_parts)} before their end"
                        )
                continue
            idle_since = checked = time.monotonic()
            for m in messages:
                if m.error() is not None:
                    continue
                part, offset = m.partition(), m.offset()
                if part is None or offset is None:
                    continue
                if not follow and (part not in open_parts or offset >= ends[part]):
                    open_parts.discard(part)
                    continue
                yield Record(
                    topic,
                    part,
                    offset,
                    m.timestamp()[1],
                    m.key(),
                    m.value(),
                    _headers(m),
                )
                if not follow and offset + 1 >= ends[part]:
                    open_parts.discard(part)
    finally:
        c.close()
