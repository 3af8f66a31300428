"""Read billy's answers: `ResultReader` reads `<prefix>.<tenant>.results`.

Committed records only (`isolation.level=read_committed`; config from
`billy_core.kafka.config.reader`): an aborted relay transaction is never seen.

Two ways to read, independent of each other:
- `wait_for(command_id, timeout_s)`: the Result of one command, wherever it is. It reads
  every partition itself, outside the consumer group (producers._lookup says why), so it
  works with any number of instances of the service in one group and right after a restart
  that skipped `close()`. It finds every Result published from `lookback_s` before this
  reader's first `wait_for` on. Results of other commands read on the way are kept (up to
  `stash_max`) for a later `wait_for`. It commits nothing and moves no group position.
- iteration / `poll(timeout_s)`: every Result of the partitions the consumer group gives
  this instance, in order, for a service that handles all of its results (each is read by
  one member of the group). The reader joins the group on the first `poll`, never before,
  so a reader used only for `wait_for` holds no partitions. Offsets are committed only by
  `commit()` (synchronous), after you have handled what you read. A Result returned by
  `wait_for` is still delivered here too: the two do not share what they read.

Nothing blocks longer than its timeout: `poll` and `wait_for` take one, and iteration ends
after `idle_timeout_s` without a record. Not thread-safe: use one reader per thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException

from billy_core.kafka import config as kafka_config
from billy_core.kafka.topics import TopicNames
from billy_core.results import Result
from producers import _config
from producers._lookup import ResultCodec, ResultLookup, decode

__all__ = ["ResultCodec", "ResultReader"]

IDLE_TIMEOUT_S = 5.0
STASH_MAX = 100_000
LOOKBACK_S = 300.0
"""How far before its first call `wait_for` starts reading: covers a command whose Result
came before the call (or before the service restarted), and clock skew between hosts."""
_POLL_SLICE_S = 0.5

log = logging.getLogger("billy.reader")


def _default_codec() -> ResultCodec:
    import billy_core.codec as codec

    return codec


class ResultReader:
    """Results of one tenant: `wait_for` by command id, or all of them through consumer
    group `group_id` (which `wait_for` never joins; it only names the group to librdkafka,
    so the service's group ACL covers it)."""

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
        lookback_s: float = LOOKBACK_S,
        _topic: str | None = None,
    ) -> None:
        """Raises ValueError for a bad argument and KafkaException for an option librdkafka
        refuses; connects to nothing yet."""
        if _topic is None:
            _config.check_tenant(tenant)
        if not isinstance(group_id, str) or not group_id:
            raise ValueError("group_id: must be a non-empty string")
        if not idle_timeout_s > 0:
            raise ValueError("idle_timeout_s: must be positive")
        if stash_max < 1:
            raise ValueError("stash_max: must be at least 1")
        if not lookback_s >= 0:
            raise ValueError("lookback_s: must be zero or more")
        self.topic = _topic or TopicNames(prefix).results(tenant)
        settings = _config.settings_for(bootstrap)
        conf = _config.merged(
            kafka_config.reader(settings, group_id, client_id=f"billy-sdk-reader-{tenant}"),
            extra_config,
        )
        codec = codec if codec is not None else _default_codec()
        # Made now so a bad option fails here; it joins the group only on the first poll.
        self._consumer = Consumer(_config.with_logging(dict(conf), log))
        self._subscribed = False
        self._codec = codec
        self._lookup = ResultLookup(
            _config.with_logging(dict(conf), log), self.topic, codec, lookback_s, stash_max
        )
        self._idle_timeout_s = idle_timeout_s
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

    # --- one command's result ----------------------------------------------------------------

    def wait_for(self, command_id: str, timeout_s: float) -> Result:
        """The Result of `command_id`; raises TimeoutError when it does not come in time.

        Results of other commands read meanwhile are kept for later calls. If the command was
        sent more than once, each call returns the next of its Results in order. Raises
        ResultDecodeError for an undecodable record (read past) and KafkaException for a
        fatal client error.
        """
        return self._lookup.find(command_id, timeout_s)

    @property
    def kept(self) -> int:
        """How many results of other commands `wait_for` keeps for a later call."""
        return self._lookup.kept

    # --- every result, through the group -----------------------------------------------------

    def poll(self, timeout_s: float) -> Result | None:
        """The next Result of this instance's partitions, or None when none arrives within
        `timeout_s`. Joins the group on the first call.

        Raises ResultDecodeError for an undecodable record (the reader moves past it) and
        KafkaException for a fatal client error.
        """
        if not self._subscribed:
            self._consumer.subscribe([self.topic])
            self._subscribed = True
        return self._next_from_group(time.monotonic() + timeout_s)

    def __iter__(self) -> Iterator[Result]:
        """Every Result in order; stops after `idle_timeout_s` without a new one."""
        while True:
            result = self.poll(self._idle_timeout_s)
            if result is None:
                return
            yield result

    def commit(self) -> None:
        """Commit the group's position: everything `poll` returned so far will not be read
        again by this group. Synchronous."""
        if not self._subscribed:
            return  # never polled: nothing read through the group
        try:
            self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:  # nothing read yet: nothing to do
                raise

    def close(self) -> None:
        """Leave the group and free the clients. Uncommitted reads will be read again."""
        if not self._closed:
            self._closed = True
            try:
                self._lookup.close()
            finally:
                self._consumer.close()

    def __enter__(self) -> ResultReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals ---------------------------------------------------------------------------

    def _next_from_group(self, deadline: float) -> Result | None:
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
                log.warning("billy results %s: %s", self.topic, err)
                continue
            result = decode(self._codec, msg)
            if result is not None:
                return result
