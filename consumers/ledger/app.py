"""The ledger consumer's loop: poll, classify, apply per partition, retry, repeat.

Offsets live in PostgreSQL. On every assignment the consumer reads the stored offset and
seeks there; a batch is applied only from where this consumer believes the stored offset is,
and the compare-and-set in the batch's transaction proves it. When anything transient fails
(PostgreSQL gone, a commit with an unknown outcome), the consumer seeks back to the stored
offset and reads the records again: re-reading is free, because applying is exactly once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import psycopg
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from billy_core import metrics
from billy_core.kafka import config as kafka_config
from billy_core.kafka.topics import TopicNames
from billy_core.settings import Settings
from billy_core.store import ledger_store as store
from consumers.ledger.apply import Applied, PartitionApplier
from consumers.ledger.poison_guard import PoisonGuard
from consumers.ledger.records import Poison, Record, classify

log = logging.getLogger("billy.ledger")
_LAG_INTERVAL_S = 5.0


class LedgerConsumer:
    def __init__(self, settings: Settings, topics: TopicNames | None = None) -> None:
        self.settings = settings
        self.topics = topics or TopicNames(settings.topic_prefix)
        self.tenants = frozenset(settings.tenants)
        self.applier = PartitionApplier(self.topics, settings.ledger_group)
        self.guard = PoisonGuard(settings.dlq_ratio_max, settings.dlq_window_min)
        self.positions: dict[tuple[str, int], int] = {}  # what this consumer believes is stored
        self._assigned: set[tuple[str, int]] = set()
        self._lag_topics: set[str] = set()
        self._conn: psycopg.Connection | None = None
        self._consumer: Consumer | None = None
        self._backoff_s = 0.0
        self._workers = ThreadPoolExecutor(settings.ledger_workers, "billy-ledger-apply")
        self._local = threading.local()
        self._worker_conns: list[psycopg.Connection] = []
        # Partitions whose stored offset could not be read back; nothing is applied to them
        # until it is (records read meanwhile are skipped and read again after the seek).
        self._pending_reseek: set[tuple[str, int]] = set()

    # --- connections -------------------------------------------------------------------

    def _db(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.settings.database_url, connect_timeout=5)
        return self._conn

    def _drop_db(self) -> None:
        _close_quietly(self._conn)
        self._conn = None

    # --- assignment --------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Runs inside poll(). Seek every new partition to its stored offset; if PostgreSQL
        # is down now, retry here: assigning without the stored offset would be wrong.
        while True:
            try:
                for tp in partitions:
                    pos = store.claim_position(
                        self._db(), self.settings.ledger_group, tp.topic, tp.partition
                    )
                    tp.offset = pos.next_offset
                    self.positions[(tp.topic, tp.partition)] = pos.next_offset
                    self._assigned.add((tp.topic, tp.partition))
                    self._pending_reseek.discard((tp.topic, tp.partition))
                break
            except psycopg.OperationalError as exc:
                log.warning("stored offsets unavailable at assignment (%s); retrying", exc)
                self._drop_db()
                metrics.db_retries.labels("ledger").inc()
                time.sleep(1.0)
        consumer.incremental_assign(partitions)
        log.info("assigned %s", [(tp.topic, tp.partition, tp.offset) for tp in partitions])

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.positions.pop((tp.topic, tp.partition), None)
            self._assigned.discard((tp.topic, tp.partition))
            self._pending_reseek.discard((tp.topic, tp.partition))
        consumer.incremental_unassign(partitions)
        log.info("revoked %s", [(tp.topic, tp.partition) for tp in partitions])

    def _reseek(self, topic: str, partition: int) -> None:
        """Go back to the stored offset (after a conflict or a failed transaction)."""
        pos = store.claim_position(self._db(), self.settings.ledger_group, topic, partition)
        if (topic, partition) in self._assigned:
            self.positions[(topic, partition)] = pos.next_offset
            self._consumer.seek(TopicPartition(topic, partition, pos.next_offset))

    # --- the loop ----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        consumer = Consumer(kafka_config.ledger_consumer(self.settings))
        self._consumer = consumer
        consumer.subscribe(
            [self.topics.commands_pattern(self.tenants)],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        try:
            lag_due = 0.0
            while not stop.is_set():
                if self._pending_reseek:
                    self._retry_pending()
                if time.monotonic() >= lag_due:
                    self._report_lag()
                    lag_due = time.monotonic() + _LAG_INTERVAL_S
                messages = consumer.consume(
                    self.settings.batch_size_max, self.settings.batch_wait_ms / 1000
                )
                if messages:
                    self.process(messages)
        finally:
            consumer.close()
            self._workers.shutdown()
            for conn in self._worker_conns:
                _close_quietly(conn)
            self._drop_db()

    def process(self, messages: list) -> None:
        by_partition: dict[tuple[str, int], list] = defaultdict(list)
        for m in messages:
            error = m.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                if error.fatal():
                    raise KafkaException(error)
                log.warning("consumer error: %s", error)
                continue
            tp = (m.topic(), m.partition())
            position = self.positions.get(tp)
            if position is None or m.offset() < position:
                continue  # revoked, or applied already (read again after a seek)
            ts = m.timestamp()[1]
            by_partition[tp].append(
                Record(m.topic(), m.partition(), m.offset(), ts, m.key(), m.value())
            )
        work = []
        for (topic, partition), records in by_partition.items():
            items = [classify(r, self.topics, self.tenants) for r in records]
            self.guard.check([isinstance(i, Poison) for i in items])
            work.append((topic, partition, self.positions[(topic, partition)], items))
        # Partitions are independent: their transactions run side by side, so their commits
        # (each an fsync) overlap instead of queueing. One partition is never in two at once.
        outcomes = self._workers.map(lambda w: self._apply_one(*w), work)
        backoff = False
        for (topic, partition, _, items), (outcome, seconds) in zip(work, outcomes, strict=True):
            if isinstance(outcome, Applied):
                self.positions[(topic, partition)] = outcome.next_offset
                self._observe(topic, items, outcome, seconds)
            elif isinstance(outcome, store.OffsetConflict):
                metrics.offset_conflicts.inc()
                log.warning("offset conflict, re-reading from the stored offset: %s", outcome)
                self._safe_reseek(topic, partition)
            else:
                metrics.db_retries.labels("ledger").inc()
                log.warning("PostgreSQL trouble (%s); retrying from the stored offset", outcome)
                backoff = True
                self._safe_reseek(topic, partition)
        if backoff:
            self._backoff_s = min(max(self._backoff_s * 2, 0.1), self.settings.retry_backoff_max_s)
            time.sleep(self._backoff_s)
        elif work:
            self._backoff_s = 0.0

    def _apply_one(self, topic: str, partition: int, expected: int, items: list):
        """On a worker thread, with that thread's connection: (Applied, seconds), or the
        OffsetConflict / OperationalError that stopped it (nothing was committed then).
        Anything else (InvariantViolation, a constraint refusing a row) propagates: crash."""
        started = time.perf_counter()
        local = self._local
        try:
            if getattr(local, "conn", None) is None or local.conn.closed:
                local.conn = psycopg.connect(self.settings.database_url, connect_timeout=5)
                self._worker_conns.append(local.conn)
            outcome = self.applier.apply(local.conn, topic, partition, expected, items)
        except store.OffsetConflict as exc:
            outcome = exc
        except psycopg.OperationalError as exc:
            _close_quietly(getattr(local, "conn", None))
            local.conn = None
            outcome = exc
        return outcome, time.perf_counter() - started

    def _report_lag(self) -> None:
        """billy_consumer_lag per topic, from the high watermarks the fetcher already knows."""
        lag: dict[str, int] = defaultdict(int)
        for (topic, partition), position in list(self.positions.items()):
            try:
                _, high = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), cached=True
                )
            except KafkaException:
                continue
            if high >= 0:
                lag[topic] += max(0, high - position)
        # Topics this consumer no longer reads (revoked) report 0, not their last figure.
        for topic in self._lag_topics - lag.keys():
            metrics.consumer_lag.labels(topic).set(0)
        for topic, value in lag.items():
            metrics.consumer_lag.labels(topic).set(value)
        self._lag_topics = set(lag)

    def _retry_pending(self) -> None:
        for topic, partition in list(self._pending_reseek):
            try:
                pos = store.claim_position(self._db(), self.settings.ledger_group, topic, partition)
            except psycopg.OperationalError:
                self._drop_db()
                time.sleep(min(1.0, self.settings.retry_backoff_max_s))
                return
            self._pending_reseek.discard((topic, partition))
            if (topic, partition) in self._assigned:
                self.positions[(topic, partition)] = pos.next_offset
                self._consumer.seek(TopicPartition(topic, partition, pos.next_offset))

    def _safe_reseek(self, topic: str, partition: int) -> None:
        try:
            self._reseek(topic, partition)
        except psycopg.OperationalError:
            # Still down: forget the position so nothing is applied from a guess; the next
            # successful reseek (or the next assignment) restores it.
            self._drop_db()
            self.positions.pop((topic, partition), None)
            self._pending_reseek.add((topic, partition))

    def _observe(self, topic: str, items: list, applied, seconds: float) -> None:
        tenant = self.topics.tenant_of(topic) or "?"
        metrics.batch_records.observe(len(items))
        metrics.apply_seconds.observe(seconds)
        now_ms = time.time() * 1000
        metrics.end_to_end_seconds.observe(max(0.0, now_ms - items[-1].record.timestamp_ms) / 1000)
        for kind, code in applied.by_kind:
            metrics.commands.labels(tenant, kind, code).inc()
        if applied.duplicates:
            metrics.duplicates.labels(tenant).inc(applied.duplicates)
        if applied.poison:
            metrics.dlq_records.labels("admin" if tenant == "admin" else "commands").inc(
                applied.poison
            )


def _close_quietly(conn: psycopg.Connection | None) -> None:
    if conn is not None:
        try:
            conn.close()
        except psycopg.Error:
            pass
