"""Read billy's answers: `ResultReader` consumes `<prefix>.<tenant>.results`.

The consumer reads committed records only (`isolation.level=read_committed`; config from
`billy_core.kafka.config.reader`), so each Result billy published is seen once per group,
and an aborted relay transaction is never seen. A new consumer group starts at the earliest
record (pass `extra_config={"auto.offset.reset": "latest"}` to start at the end).

Two ways to read, freely mixed:
- `wait_for(command_id, timeout_s)`: the Result of one command. Results for other ids read
  on the way are kept (up to `stash_max`), so a later `wait_for` or the iterator finds them.
- iteration / `poll(timeout_s)`: every Result in order, kept ones first.

Offsets are committed only by `commit()` (synchronous), after you have handled what you read;
results kept for a later `wait_for` count as read. Nothing blocks longer than its timeout:
`poll` and `wait_for` take one, and iteration ends after `idle_timeout_s` without a record.
Not thread-safe: use one reader per thread.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException

from billy_core.kafka import config as kafka_config
from billy_core.kafka.topics import TopicNames
from billy_core.results import Result
from producers import _config
from producers.errors import ResultDecodeError

__all__ = ["ResultCodec", "ResultReader"]

IDLE_TIMEOUT_S = 5.0
STASH_MAX = 100_000
_POLL_SLICE_S = 0.5

log = logging.getLogger("billy.reader")


class ResultCodec(Protocol):
    def decode_result(self, data: bytes) -> Result: ...


def _default_codec() -> ResultCodec:
    import billy_core.codec as codec

    return codec


class ResultReader:
    """Results of one tenant, read by consumer group `group_id`."""

    def __init__(
        self,
        bootstrap: str,
        tenant: str,
        group_id: str,
        *,
        prefix: str = "billy",
        extra_config: Mapping[str, Any] | None = None,
        codec: ResultCodec | None = None,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        stash_max: int = STASH_MAX,
        _topic: str | None = None,
    ) -> None:
        if _topic is None:
            _config.check_tenant(tenant)
        if not isinstance(group_id, str) or not group_id:
            raise ValueError("group_id: must be a non-empty string")
        if not idle_timeout_s > 0:
            raise ValueError("idle_timeout_s: must be positive")
        if stash_max < 1:
            raise ValueError("stash_max: must be at least 1")
        self.topic = _topic or TopicNames(prefix).results(tenant)
        settings = _config.settings_for(bootstrap)
        conf = _config.merged(
            kafka_config.reader(settings, group_id, client_id=f"billy-sdk-reader-{tenant}"),
            extra_config,
        )
        self._consumer = Consumer(_config.with_logging(conf, log))
        self._consumer.subscribe([self.topic])
        self._codec = codec if codec is not None else _default_codec()
        self._idle_timeout_s = idle_timeout_s
        self._stash_max = stash_max
        self._stash: OrderedDict[str, deque[Result]] = OrderedDict()
        self._stashed = 0
        self._last_error: KafkaError | None = None
        self._closed = False

    @classmethod
    def for_admin(cls, bootstrap: str, group_id: str, **kw: Any) -> ResultReader:
        """A reader of `<prefix>.admin.results`: the answers to BillyAdminClient's commands."""
        prefix = kw.pop("prefix", "billy")
        return cls(
            bootstrap,
            "admin",
            group_id,
            prefix=prefix,
            _topic=TopicNames(prefix).admin_results,
            **kw,
        )

    # --- reading -----------------------------------------------------------------------------

    def poll(self, timeout_s: float) -> Result | None:
        """The next Result (kept ones first), or None when none arrives within `timeout_s`.

        Raises ResultDecodeError for an undecodable record (the reader moves past it) and
        KafkaException for a fatal client error.
        """
        if self._stashed:
            return self._unstash_oldest()
        return self._next_from_kafka(time.monotonic() + timeout_s)

    def __iter__(self) -> Iterator[Result]:
        """Every Result in order; stops after `idle_timeout_s` without a new one."""
        while True:
            result = self.poll(self._idle_timeout_s)
            if result is None:
                return
            yield result

    def wait_for(self, command_id: str, timeout_s: float) -> Result:
        """The Result of `command_id`; raises TimeoutError when it does not come in time.

        Results of other commands read meanwhile are kept for later calls. If the command was
        sent more than once, each call returns the next of its Results in order.
        """
        kept = self._stash.get(command_id)
        if kept:
            return self._unstash(command_id)
        deadline = time.monotonic() + timeout_s
        while True:
            result = self._next_from_kafka(deadline)
            if result is None:
                last = f"; last Kafka error: {self._last_error}" if self._last_error else ""
                raise TimeoutError(
                    f"no result for command {command_id!r} on {self.topic} "
                    f"within {timeout_s}s{last}"
                )
            if result.command_id == command_id:
                return result
            self._keep(result)

    def commit(self) -> None:
        """Commit the group's position: everything read so far (kept results included)
        will not be read again by this group. Synchronous."""
        try:
            self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:  # nothing read yet: nothing to do
                raise

    def close(self) -> None:
        """Leave the group and free the client. Uncommitted reads will be read again."""
        if not self._closed:
            self._closed = True
            self._consumer.close()

    def __enter__(self) -> ResultReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def kept(self) -> int:
        """How many results are kept for a later wait_for or iteration."""
        return self._stashed

    # --- internals ---------------------------------------------------------------------------

    def _next_from_kafka(self, deadline: float) -> Result | None:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            msg = self._consumer.poll(min(remaining, _POLL_SLICE_S))
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise KafkaException(err)
                # Not fatal (e.g. the topic does not exist yet): librdkafka keeps trying.
                self._last_error = err
                log.warning("billy results %s: %s", self.topic, err)
                continue
            value = msg.value()
            if value is None:
                continue
            try:
                return self._codec.decode_result(value)
            except Exception as exc:  # the codec raises DecodeError subclasses
                raise ResultDecodeError(
                    msg.topic(), msg.partition(), msg.offset(), f"{type(exc).__name__}: {exc}"
                ) from exc

    def _keep(self, result: Result) -> None:
        self._stash.setdefault(result.command_id, deque()).append(result)
        self._stashed += 1
        if self._stashed > self._stash_max:
            dropped = self._unstash_oldest()
            log.warning(
                "billy results: more than %d kept results; dropped the one of %s",
                self._stash_max,
                dropped.command_id,
            )

    def _unstash(self, command_id: str) -> Result:
        queue = self._stash[command_id]
        result = queue.popleft()
        if not queue:
            del self._stash[command_id]
        self._stashed -= 1
        return result

    def _unstash_oldest(self) -> Result:
        return self._unstash(next(iter(self._stash)))
