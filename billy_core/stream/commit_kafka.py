"""The step after `Committed`: mirror the stored positions into Kafka's consumer group, and
report the role's progress.

PostgreSQL stays the only source of truth for where a partition resumes (`positions`); this
step copies each committed position to the group's offsets, asynchronously and best effort,
so Kafka's own tools (`kafka-consumer-groups.sh --describe`) show true offsets and lag,
at most `MIRROR_INTERVAL_S` (1 s) of commits behind PostgreSQL. A failed or lost commit
changes nothing but that view; the next one repairs it.

Kafka refuses `--reset-offsets --execute` while the group has members. A reset made while
billy was stopped is noticed at the next assignment: billy's own commits carry the metadata
`MIRROR_METADATA`, Kafka's tool writes none, so a group offset without it that differs from
the stored position is an outside reset: the step logs one warning per partition, counts
`billy_offset_mismatches_total{role}`, and overwrites the group's offset with the stored one
(billy resumes from PostgreSQL, whatever the group says). A mirror that is merely behind
(billy died between its PostgreSQL commit and the asynchronous Kafka commit) is repaired
without a warning. The documented way to move a
position is `billy offsets set` (deploy/RUNBOOK.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, TopicPartition

from billy_core import metrics
from billy_core.ops.health import HEALTH

TP = tuple[str, int]
COMPARE_TIMEOUT_S = 5.0
# At most one offset commit per interval: a commit per poll (dozens a second) loads the
# group coordinator for a view that only needs to be as fresh as billy_consumer_lag (5 s).
MIRROR_INTERVAL_S = 1.0
MIRROR_METADATA = "billy-mirror"  # on every offset billy commits: "this is billy's copy"


class KafkaCommitStep:
    """Used by the engine's loop thread only (assignment callbacks run inside its poll)."""

    def __init__(
        self,
        role: str,
        group: str,
        log: logging.Logger,
        *,
        interval_s: float = MIRROR_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.role = role
        self.interval_s = interval_s
        self.clock = clock
        self._due = 0.0
        self.group = group
        self.log = log
        self._positions: dict[TP, int] = {}  # assigned partitions' stored positions
        self._dirty: set[TP] = set()  # moved since the last Kafka commit
        self._unchecked: set[TP] = set()  # newly assigned: compare with the group first
        self._committed_batches = 0
        self._lock = threading.Lock()
        HEALTH.start_role(role)

    def assigned(self, stored: dict[TP, int]) -> None:
        with self._lock:
            self._positions.update(stored)
            self._unchecked.update(stored)

    def revoked(self, tps: list[TP]) -> None:
        with self._lock:
            for tp in tps:
                self._positions.pop(tp, None)
                self._dirty.discard(tp)
                self._unchecked.discard(tp)

    def committed(self, tp: TP, next_offset: int) -> None:
        """A batch of `tp` committed in PostgreSQL; the partition resumes at `next_offset`."""
        with self._lock:
            if tp in self._positions:
                self._positions[tp] = next_offset
                self._dirty.add(tp)
            self._committed_batches += 1

    def after_poll(self, consumer: Consumer, *, polled: bool, waiting: bool) -> None:
        """Once per loop: compare new assignments, commit moved positions to the group (one
        asynchronous request), and report progress: a batch committed, or nothing polled
        and no partition waiting for a retry."""
        if self._unchecked:
            self._compare(consumer)
        now = self.clock()
        with self._lock:
            offsets = []
            if now >= self._due:
                offsets = [
                    TopicPartition(t, p, self._positions[(t, p)], metadata=MIRROR_METADATA)
                    for t, p in self._dirty
                ]
                self._dirty.clear()
            progressed = self._committed_batches > 0 or (not polled and not waiting)
            self._committed_batches = 0
        if offsets:
            self._due = now + self.interval_s
            try:
                consumer.commit(offsets=offsets, asynchronous=True)
            except KafkaException as exc:  # advisory: the next commit repairs the view
                self.log.debug("kafka offset commit skipped: %s", exc)
        if progressed:
            HEALTH.progressed(self.role)
        else:
            HEALTH.beat(self.role)

    def _compare(self, consumer: Consumer) -> None:
        with self._lock:
            tps = sorted(self._unchecked)
        try:
            found = consumer.committed([TopicPartition(t, p) for t, p in tps], COMPARE_TIMEOUT_S)
        except KafkaException as exc:  # broker trouble: compare at the next loop
            self.log.debug("cannot read the group's offsets yet: %s", exc)
            return
        with self._lock:
            for tp in found:
                key = (tp.topic, tp.partition)
                self._unchecked.discard(key)
                stored = self._positions.get(key)
                if stored is None:
                    continue
                self._dirty.add(key)  # write the stored position to the group either way
                ours = tp.metadata == MIRROR_METADATA  # billy's copy, perhaps a batch behind
                if tp.offset >= 0 and tp.offset != stored and not ours:
                    metrics.offset_mismatches.labels(self.role).inc()
                    self.log.warning(
                        "%s/%d: the Kafka group %s says offset %d, billy's stored position"
                        " is %d (reset with Kafka's tool?); billy resumes from the stored"
                        " position and overwrites the group's offset. Move positions with"
                        " `billy offsets set`.",
                        key[0],
                        key[1],
                        self.group,
                        tp.offset,
                        stored,
                        extra={"topic": key[0], "partition": key[1], "offset": stored},
                    )
