"""What `ResultReader.wait_for` reads with: every partition of the results topic, outside
any consumer group.

Why not the service's group: a group splits the partitions between its members, and a
command's Result lands on the partition of its client, owned by whichever member the
group chose. With two instances of a service, half the awaited Results went to the other
instance; after a restart without `close()`, the dead member kept its partitions until its
session timed out (librdkafka's default, 45 s), longer than most waits. So this consumer
assigns every partition itself (`assign`, never `subscribe`: it joins no group, commits
nothing and takes no partition from anyone) and starts where it chooses: at the first
record published `lookback_s` before its start, so a Result published shortly before the
first `wait_for` (the command was quick, or sent before a restart) is still found.

Results read on the way are kept, up to `kept_max`, oldest dropped first: with several
instances most of them answer another instance's commands and are never asked for.
Not thread-safe.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from billy_core.results import Result
from producers.errors import ResultDecodeError

__all__ = ["ResultCodec", "ResultLookup", "decode"]

_POLL_SLICE_S = 0.5
_RETRY_SLEEP_S = 0.2

log = logging.getLogger("billy.reader")


class ResultCodec(Protocol):
    def decode_result(self, data: bytes) -> Result: ...


def decode(codec: ResultCodec, msg: Message) -> Result | None:
    """The Result in a record without error; None for a null value. Raises ResultDecodeError
    naming the record when the bytes are not a Result."""
    value = msg.value()
    if value is None:
        return None
    try:
        return codec.decode_result(value)
    except Exception as exc:  # the codec raises DecodeError subclasses
        # A fetched record always has all three; librdkafka's types allow None.
        partition, offset = msg.partition(), msg.offset()
        raise ResultDecodeError(
            msg.topic() or "",
            -1 if partition is None else partition,
            -1 if offset is None else offset,
            f"{type(exc).__name__}: {exc}",
        ) from exc


class ResultLookup:
    """Finds the Result of a command id on `topic`, whichever partition it is on."""

    def __init__(
        self,
        conf: dict[str, Any],
        topic: str,
        codec: ResultCodec,
        lookback_s: float,
        kept_max: int,
    ) -> None:
        """`conf` is a reader config (read_committed, no auto commit); its group.id is only
        there because librdkafka insists: no group is joined with it."""
        self.topic = topic
        self._conf = conf
        self._codec = codec
        self._lookback_s = lookback_s
        self._kept_max = kept_max
        self._consumer: Consumer | None = None
        self._since_ms: int | None = None
        self._kept: OrderedDict[str, deque[Result]] = OrderedDict()
        self._kept_count = 0
        self._dropped = 0
        self._last_error: KafkaError | KafkaException | None = None

    @property
    def kept(self) -> int:
        return self._kept_count

    def find(self, command_id: str, timeout_s: float) -> Result:
        """The next Result of `command_id` not yet returned; TimeoutError after `timeout_s`.

        Raises ResultDecodeError for an undecodable record (read past: the next call goes
        on after it) and KafkaException for a fatal client error.
        """
        if command_id in self._kept:
            return self._take(command_id)
        deadline = time.monotonic() + timeout_s
        consumer = self._consumer or self._start(deadline)
        while consumer is not None:
            result = self._next(consumer, deadline)
            if result is None:
                break
            if result.command_id == command_id:
                return result
            self._keep(result)
        last = f"; last Kafka error: {self._last_error}" if self._last_error else ""
        raise TimeoutError(
            f"no result for command {command_id!r} on {self.topic} within {timeout_s}s{last}"
        )

    def close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            consumer.close()

    # --- internals ---------------------------------------------------------------------------

    def _start(self, deadline: float) -> Consumer | None:
        """Assign every partition at its first record of the last `lookback_s`; None when the
        topic's partitions cannot be learned before `deadline` (broker away, no topic yet):
        the next call tries again, with the same start time."""
        if self._since_ms is None:
            self._since_ms = int((time.time() - self._lookback_s) * 1000)
        consumer = Consumer(self._conf)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                consumer.close()
                return None
            try:
                starts = self._start_offsets(consumer, self._since_ms, remaining)
            except KafkaException as exc:
                self._last_error = exc
                time.sleep(min(_RETRY_SLEEP_S, max(0.0, deadline - time.monotonic())))
                continue
            consumer.assign(starts)
            self._consumer = consumer
            return consumer

    def _start_offsets(
        self, consumer: Consumer, since_ms: int, timeout_s: float
    ) -> list[TopicPartition]:
        meta = consumer.list_topics(self.topic, timeout=timeout_s).topics[self.topic]
        if meta.error is not None or not meta.partitions:
            raise KafkaException(meta.error or KafkaError(KafkaError._UNKNOWN_PARTITION))
        partitions = sorted(meta.partitions)
        # High watermarks first: a partition with nothing since `since_ms` starts at the end
        # as it was *before* that answer, so a record published meanwhile is not skipped
        # (OFFSET_END would resolve later, past it).
        ends = [
            consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout_s)[1]
            for p in partitions
        ]
        found = consumer.offsets_for_times(
            [TopicPartition(self.topic, p, since_ms) for p in partitions], timeout_s
        )
        starts = []
        for tp, end in zip(found, ends, strict=True):
            if tp.error is not None:
                raise KafkaException(tp.error)
            starts.append(
                TopicPartition(self.topic, tp.partition, tp.offset if tp.offset >= 0 else end)
            )
        return starts

    def _next(self, consumer: Consumer, deadline: float) -> Result | None:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            msg = consumer.poll(min(remaining, _POLL_SLICE_S))
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise KafkaException(err)
                self._last_error = err  # not fatal: librdkafka keeps trying
                continue
            result = decode(self._codec, msg)
            if result is not None:
                return result

    def _keep(self, result: Result) -> None:
        self._kept.setdefault(result.command_id, deque()).append(result)
        self._kept_count += 1
        if self._kept_count > self._kept_max:
            self._take(next(iter(self._kept)))
            self._dropped += 1
            # Expected with several instances (their Results pass by here): not a warning.
            if self._dropped % 10_000 == 1:
                log.debug("billy results %s: %d kept results dropped", self.topic, self._dropped)

    def _take(self, command_id: str) -> Result:
        queue = self._kept[command_id]
        result = queue.popleft()
        if not queue:
            del self._kept[command_id]
        self._kept_count -= 1
        return result
