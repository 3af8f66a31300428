"""The engine: the exactly-once consumer loop every handler runs on.

    poll ─▶ decode (handler) ─▶ poison cap ─▶ apply step (one transaction per partition,
    position compare-and-set, outbox, DLQ) ─▶ positions move ─▶ poll

The engine owns everything generic: assignment and seeking to the positions stored in
PostgreSQL, the compare-and-set, the outbox and the DLQ, the per-partition poison cap,
transient-failure retry, lag and metrics. A handler only decodes records and applies a
batch inside the transaction it is given (`billy_core.stream.handler`).

Failure routes (STYLE.md): poison goes to the DLQ; transient trouble (PostgreSQL gone, a
commit with an unknown outcome) pauses only the partition it hit, with bounded exponential
backoff, then re-reads it from the stored position (re-reading is free: applying is exactly
once); an offset conflict (a zombie) re-reads at once. A batch PostgreSQL refuses for good
is applied again in halves down to single records, each piece in its own transaction; a
record refused alone for the values it carries (`PermanentDatabaseError.caused_by_data`: a
NUL, an index row too large, a CHECK) is dead-lettered alone (reason `database: <sqlstate>
...`, answered by the handler's `answer_poison`) in a transaction that also moves the
position past it, and every other record applies as usual. Anything else (a broken
invariant, a permanent error that is not about the data, such as a missing table) stops the
process, which restarts from the last commit.

Partitions are independent: one poll's partition transactions run side by side on pooled
connections, so their commits (each an fsync) overlap instead of queueing. A partition is
never in two transactions at once. Small batches are the exception: when a poll is spread
thin over many partitions of one topic (a steady load, not a backlog), a `mergeable`
handler gets them in one transaction of up to `merge_records_max` records, so the fixed
cost of a transaction (a dozen statements and a commit) is paid once, not per partition.
If that transaction fails for any reason but a bug (an offset conflict, PostgreSQL trouble,
a value it refuses), nothing of it was written and each partition is applied alone, with
the failure routes above.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from billy_core import db, limits, metrics, retry
from billy_core.errors import OffsetConflict, PermanentDatabaseError, TransientError
from billy_core.kafka import config as kafka_config
from billy_core.kafka.logs import KAFKA_LOG
from billy_core.kafka.partitioner import java_partition
from billy_core.settings import Settings
from billy_core.stream import outbox, positions
from billy_core.stream.apply_step import (
    Committed,
    PartitionWork,
    apply_batch,
    apply_batches,
    dead_letter_alone,
)
from billy_core.stream.commit_kafka import KafkaCommitStep
from billy_core.stream.handler import Handler, Item, Summary
from billy_core.stream.poison_cap import PoisonCap
from billy_core.stream.record import Poison, Record

TP = tuple[str, int]

# The partition a key belongs on, remembered: a client's records keep coming with the same
# key, and murmur2 in Python costs microseconds a record. Bounded (keys are bounded too).
_partition_of = functools.lru_cache(maxsize=1 << 16)(java_partition)


@dataclass(slots=True)
class _Partition:
    """What the engine knows of one assigned partition."""

    cap: PoisonCap
    position: int | None  # where the stored position is; None: unknown, read it first
    failures: int = 0  # transient failures in a row
    retry_at: float = 0.0  # paused for backoff until this monotonic time (0: not paused)
    flooded: bool = False  # paused by the poison cap until resumed (`billy resume-partition`)
    cap_off_below: int = 0  # a resume request: the cap does not judge records below this
    misrouted_logged_at: float = field(default=-1e9)


class Engine(Generic[Item]):
    def __init__(
        self,
        settings: Settings,
        handler: Handler[Item],
        *,
        deployment: str,
        dlq_topic: str,
        workers: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.handler = handler
        self.deployment = deployment
        self.dlq_topic = dlq_topic
        self.log = logging.getLogger(f"billy.{handler.name}")
        self.pool = db.pool(settings.database_url, size=workers + 1, name=f"billy-{handler.name}")
        self._workers = ThreadPoolExecutor(workers, f"billy-{handler.name}-apply")
        self._clock = clock
        self._parts: dict[TP, _Partition] = {}
        self._partition_counts: dict[str, int] = {}
        self._lag_topics: set[str] = set()
        self._consumer: Consumer | None = None
        self._kafka_step = KafkaCommitStep(handler.name, handler.group, self.log)

    # --- the loop ------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        config = {**kafka_config.ledger_consumer(self.settings), "group.id": self.handler.group}
        config["client.id"] = f"billy-{self.handler.name}"
        consumer = Consumer(config, logger=KAFKA_LOG)
        self._consumer = consumer
        self.pool.open(wait=False)
        consumer.subscribe(
            self.handler.subscription(),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        try:
            lag_due = 0.0
            while not stop.is_set():
                self._resume_due()
                if self._clock() >= lag_due:
                    self._report_lag()
                    self._resume_requested()
                    lag_due = self._clock() + limits.LAG_REPORT_INTERVAL_S
                messages = self._poll(consumer)
                if messages:
                    self.process(messages)
                waiting = any(s.retry_at for s in self._parts.values())
                self._kafka_step.after_poll(consumer, polled=bool(messages), waiting=waiting)
        finally:
            consumer.close()
            self._workers.shutdown()
            self.pool.close()

    def _poll(self, consumer: Consumer) -> list[Message]:
        """The next batch. What the fetcher already holds is taken at once (under load, the
        records that arrived while the last batch was applied: batches grow with the load by
        themselves). Only when it holds nothing does the poll block, until a first record
        arrives, and then waits at most `batch_wait_ms` for more to join it (0: none): an
        idle ledger answers a lone command without a fixed batching delay."""
        size = self.settings.batch_size_max
        messages = consumer.consume(size, 0)
        if messages:
            return messages
        messages = consumer.consume(1, limits.POLL_IDLE_S)
        if messages and size > 1:
            messages += consumer.consume(size - 1, self.settings.batch_wait_ms / 1000)
        return messages

    def process(self, messages: list[Message]) -> None:
        """Apply one poll's records: every partition in its own transaction, side by side."""
        work = [w for w in (self._prepare(tp, rs) for tp, rs in _group(messages, self.log)) if w]
        units = self._merge(work)
        work = [w for unit in units for w in unit]
        outcomes = [o for done in self._workers.map(self._apply_unit, units) for o in done]
        if any(isinstance(o, Committed) and o.outputs for o, _ in outcomes):
            self._wake_relay()
        for w, (outcome, seconds) in zip(work, outcomes, strict=True):
            tp = (w.topic, w.partition)
            state = self._parts.get(tp)
            if state is None:
                continue  # revoked meanwhile (the commit, if any, was still exactly once)
            if isinstance(outcome, Committed):
                state.position, state.failures = outcome.next_offset, 0
                self._kafka_step.committed(tp, outcome.next_offset)
                self._observe(w, outcome, seconds)
            elif isinstance(outcome, OffsetConflict):
                metrics.offset_conflicts.inc()
                self.log.warning("offset conflict, re-reading from the stored offset: %s", outcome)
                self._reseek(tp, state)
            else:
                self._back_off(tp, state, outcome)

    def _wake_relay(self) -> None:
        """Tell the relay that outbox rows were committed (`outbox.notify`). After the
        commits, not inside them: a NOTIFY in a transaction holds PostgreSQL's notification
        lock until that transaction's commit is flushed, which would queue the partitions'
        commits one behind the other. Best effort: a relay not woken looks anyway after
        `relay_idle_sleep_ms`."""
        try:
            with self.pool.connection() as conn:
                outbox.notify(conn, self.deployment)
        except Exception as exc:
            if not db.is_transient(exc):
                raise

    # --- steps -------------------------------------------------------------------------------

    def _prepare(self, tp: TP, records: list[Record]) -> PartitionWork[Item] | None:
        """Decode a partition's new records and judge the poison cap; None when nothing to do."""
        state = self._parts.get(tp)
        if state is None or state.position is None or state.retry_at or state.flooded:
            return None
        records = [r for r in records if r.offset >= state.position]  # re-read after a seek
        if not records:
            return None
        self._check_routing(tp, state, records)
        decoded = [self.handler.decode(r) for r in records]
        judged = [
            isinstance(d, Poison)
            for r, d in zip(records, decoded, strict=True)
            if r.offset >= state.cap_off_below
        ]
        flood = state.cap.flooded(judged) if judged else None
        if flood is not None:
            state.flooded = True
            metrics.partitions_paused.labels(self.handler.name).inc()
            metrics.partitions_paused_now.labels(self.handler.name).inc()
            self.log.error(
                "poison flood on %s/%d: %s; `billy resume-partition %s %d` dead-letters"
                " the flood and goes on",
                *tp,
                flood,
                *tp,
            )
            self._pause(tp)
            return None
        items: list[Item] = [d for d in decoded if not isinstance(d, Poison)]
        poison = [d for d in decoded if isinstance(d, Poison)]
        return PartitionWork(
            tp[0],
            tp[1],
            state.position,
            records[-1].offset,
            items,
            poison,
            records[-1].timestamp_ms,
            list(zip(records, decoded, strict=True)),
        )

    def _merge(self, work: list[PartitionWork[Item]]) -> list[list[PartitionWork[Item]]]:
        """The poll's transactions: each partition alone, except small batches of one
        topic of a `mergeable` handler, merged up to `merge_records_max` records."""
        limit = self.settings.merge_records_max
        units: list[list[PartitionWork[Item]]] = []
        open_units: dict[str, tuple[list[PartitionWork[Item]], int]] = {}
        for w in work:
            size = len(w.items) + len(w.poison)
            if size >= limit or not self.handler.mergeable(w.topic):
                units.append([w])
                continue
            unit, total = open_units.get(w.topic, (None, 0))
            if unit is not None and total + size <= limit:
                unit.append(w)
                open_units[w.topic] = (unit, total + size)
            else:
                units.append([w])
                open_units[w.topic] = (units[-1], size)
        return units

    def _apply_unit(
        self, works: list[PartitionWork[Item]]
    ) -> list[tuple[Committed | BaseException, float]]:
        """On a worker thread: one transaction for `works`, or, when a merged one fails
        (nothing of it written), each partition alone (`_apply`)."""
        if len(works) == 1:
            return [self._apply(works[0])]
        started = time.perf_counter()
        try:
            with self.pool.connection() as conn:
                done = apply_batches(conn, self.handler, self.deployment, self.dlq_topic, works)
        except Exception as exc:
            failure = exc if isinstance(exc, OffsetConflict) else db.classify(exc)
            if not isinstance(failure, OffsetConflict | TransientError | PermanentDatabaseError):
                raise  # a bug or a broken invariant: the process stops
            self.log.info(
                "a merged transaction of %d partitions failed (%s); applying them one by one",
                len(works),
                failure,
            )
            return [self._apply(w) for w in works]
        seconds = time.perf_counter() - started
        return [(c, seconds) for c in done]

    def _apply(self, work: PartitionWork[Item]) -> tuple[Committed | BaseException, float]:
        """On a worker thread: (Committed, seconds), or the OffsetConflict / TransientError
        that stopped it (nothing committed then). A batch PostgreSQL refuses for good is
        applied again in pieces (`_isolate`). Anything else propagates: the process stops."""
        started = time.perf_counter()
        outcome: Committed | BaseException
        try:
            outcome = self._attempt(work)
        except PermanentDatabaseError as refused:
            if not work.entries:
                raise  # nothing to take apart (a work built without its records)
            self.log.warning(
                "%s/%d: PostgreSQL refused a batch of %d records (%s); applying it in pieces"
                " to find the record that carries the refused value",
                work.topic,
                work.partition,
                len(work.entries),
                refused,
            )
            outcome = self._isolate(work, work.expected_offset, work.entries)
        return outcome, time.perf_counter() - started

    def _attempt(self, work: PartitionWork[Item]) -> Committed | BaseException:
        """One transaction: Committed, or the OffsetConflict / TransientError that stopped it
        (nothing committed). Raises PermanentDatabaseError when PostgreSQL refused it for
        good; anything else that is not a database error propagates."""
        try:
            with self.pool.connection() as conn:
                return apply_batch(conn, self.handler, self.deployment, self.dlq_topic, work)
        except OffsetConflict as exc:
            return exc
        except Exception as exc:
            translated = db.classify(exc)
            if isinstance(translated, TransientError):
                return translated
            if isinstance(translated, PermanentDatabaseError):
                raise translated from exc
            raise

    def _isolate(
        self,
        work: PartitionWork[Item],
        expected: int,
        entries: Sequence[tuple[Record, Item | Poison]],
    ) -> Committed | BaseException:
        """Apply `entries` (a refused piece of `work`) from `expected` in halves, each in its
        own transaction, down to single records: a record PostgreSQL refuses alone for its
        data is dead-lettered alone; every other record applies as usual. About 2·log2(n)
        transactions per culprit. Returns what committed (the position after the last
        record), or the OffsetConflict / TransientError that interrupted it (pieces committed
        before it stay: the partition re-reads from the stored position). A record refused
        for another reason than its data (a missing table...) raises: the process stops."""
        if len(entries) == 1:
            record, _ = entries[0]
            single = work.part(expected, entries)
            try:
                return self._attempt(single)
            except PermanentDatabaseError as exc:
                if not exc.caused_by_data:
                    raise
                culprit = Poison(record, f"database: {exc.sqlstate or 'client'} {exc}")
                self.log.error(
                    "%s/%d@%d: dead-lettered, %s",
                    work.topic,
                    work.partition,
                    record.offset,
                    culprit.reason,
                )
                return self._dead_letter_alone(single, culprit)
        middle = len(entries) // 2
        done: list[Committed] = []
        for half in (entries[:middle], entries[middle:]):
            try:
                outcome = self._attempt(work.part(expected, half))
            except PermanentDatabaseError:
                outcome = self._isolate(work, expected, half)
            if not isinstance(outcome, Committed):
                return outcome
            done.append(outcome)
            expected = outcome.next_offset
        return Committed(
            expected,
            Summary(
                tuple(o for c in done for o in c.summary.outcomes),
                sum(c.summary.duplicates for c in done),
            ),
            sum(c.poison for c in done),
            sum(c.outputs for c in done),
        )

    def _dead_letter_alone(
        self, work: PartitionWork[Item], culprit: Poison
    ) -> Committed | BaseException:
        try:
            with self.pool.connection() as conn:
                return dead_letter_alone(
                    conn, self.handler, self.deployment, self.dlq_topic, work, culprit
                )
        except OffsetConflict as exc:
            return exc
        except Exception as exc:
            translated = db.classify(exc)
            if isinstance(translated, TransientError):
                return translated
            raise

    # --- assignment and positions -----------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Runs inside poll(). Seek every new partition to its stored position; assigning
        # without it would be wrong, so a PostgreSQL outage is waited out here.
        for attempt in retry.transient(self.handler.name, "reading stored positions"):
            with attempt, self.pool.connection() as conn:
                for tp in partitions:
                    tp.offset = positions.claim(
                        conn, self.handler.group, tp.topic, tp.partition
                    ).next_offset
                resumes = positions.resume_requests(conn, self.handler.group)
        for tp in partitions:
            cap = PoisonCap(self.settings.dlq_ratio_max, self.settings.dlq_window_min)
            state = _Partition(cap, tp.offset)
            state.cap_off_below = resumes.get((tp.topic, tp.partition), 0)
            self._parts[(tp.topic, tp.partition)] = state
        consumer.incremental_assign(partitions)
        self._kafka_step.assigned({(tp.topic, tp.partition): tp.offset for tp in partitions})
        self.log.info("assigned %s", [(tp.topic, tp.partition, tp.offset) for tp in partitions])

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            state = self._parts.pop((tp.topic, tp.partition), None)
            if state is not None and state.flooded:
                metrics.partitions_paused_now.labels(self.handler.name).dec()
        consumer.incremental_unassign(partitions)
        self._kafka_step.revoked([(tp.topic, tp.partition) for tp in partitions])
        self.log.info("revoked %s", [(tp.topic, tp.partition) for tp in partitions])

    def _resume_requested(self) -> None:
        """Resume every flooded partition with a resume request past its stored position
        (`billy resume-partition`): from there, the cap is off below the requested offset,
        so the flood is dead-lettered and everything after it judged again."""
        flooded = {tp: s for tp, s in self._parts.items() if s.flooded}
        if not flooded:
            return
        try:
            with self.pool.connection() as conn:
                requests = positions.resume_requests(conn, self.handler.group)
        except Exception as exc:
            if not db.is_transient(exc):
                raise
            return  # asked again at the next interval
        for tp, state in flooded.items():
            through = requests.get(tp, 0)
            if state.position is None or through <= state.position:
                continue  # no request, or an old one the flood is past
            state.flooded, state.cap_off_below = False, through
            state.cap = PoisonCap(self.settings.dlq_ratio_max, self.settings.dlq_window_min)
            metrics.partitions_paused_now.labels(self.handler.name).dec()
            self.log.warning(
                "%s/%d resumed by request: records below offset %d are applied or"
                " dead-lettered without the poison cap",
                *tp,
                through,
            )
            self._seek(tp, state.position)  # records fetched while paused were dropped
            self._resume(tp)

    def _reseek(self, tp: TP, state: _Partition) -> None:
        """Go back to the stored position now; on trouble, back off like a failed batch."""
        try:
            with self.pool.connection() as conn:
                pos = positions.claim(conn, self.handler.group, *tp)
            self._seek(tp, pos.next_offset)
            state.position = pos.next_offset
        except Exception as exc:
            if not db.is_transient(exc):
                raise
            self._back_off(tp, state, exc)

    def _back_off(self, tp: TP, state: _Partition, error: BaseException) -> None:
        """Pause this partition only, forget its position, and retry after a bounded wait."""
        metrics.db_retries.labels(self.handler.name).inc()
        state.failures += 1
        state.position = None
        delay = retry.backoff_s(state.failures, self.settings.retry_backoff_max_s)
        state.retry_at = self._clock() + delay
        self._pause(tp)
        self.log.warning("%s/%d: %s; retrying in %.1f s", *tp, error, delay)

    def _resume_due(self) -> None:
        now = self._clock()
        for tp, state in list(self._parts.items()):
            if state.retry_at and now >= state.retry_at:
                state.retry_at = 0.0
                self._reseek(tp, state)
                if not state.retry_at:
                    self._resume(tp)

    def _seek(self, tp: TP, offset: int) -> None:
        if self._consumer is not None:
            self._consumer.seek(TopicPartition(tp[0], tp[1], offset))

    def _pause(self, tp: TP) -> None:
        if self._consumer is not None:
            self._consumer.pause([TopicPartition(*tp)])

    def _resume(self, tp: TP) -> None:
        if self._consumer is not None:
            self._consumer.resume([TopicPartition(*tp)])

    # --- observation ---------------------------------------------------------------------------

    def _check_routing(self, tp: TP, state: _Partition, records: list[Record]) -> None:
        """Count records whose key belongs on another partition (a producer not using the
        Java default partitioner). Policy (DESIGN.md): they are applied where they landed."""
        count = self._partition_count(tp[0])
        if count is None:
            return
        # A key past ROUTING_KEY_BYTES_MAX is never a sound one (ids are 64 code points):
        # not hashed, so a megabyte key costs nothing here.
        wrong = sum(
            1
            for r in records
            if r.key is not None
            and len(r.key) <= limits.ROUTING_KEY_BYTES_MAX
            and _partition_of(r.key, count) != tp[1]
        )
        if wrong:
            metrics.misrouted_records.labels(self.handler.name).inc(wrong)
            now = self._clock()
            if now - state.misrouted_logged_at >= limits.MISROUTE_LOG_INTERVAL_S:
                state.misrouted_logged_at = now
                self.log.warning(
                    "%s/%d: %d records whose key belongs to another partition (the producer"
                    " does not use Kafka's default partitioner); applied where they landed",
                    *tp,
                    wrong,
                )

    def _partition_count(self, topic: str) -> int | None:
        if topic not in self._partition_counts and self._consumer is not None:
            try:
                meta = self._consumer.list_topics(topic, timeout=5).topics.get(topic)
            except KafkaException:
                return None
            if meta is None or meta.error is not None or not meta.partitions:
                return None
            self._partition_counts[topic] = len(meta.partitions)
        return self._partition_counts.get(topic)

    def _observe(self, work: PartitionWork[Item], committed: Committed, seconds: float) -> None:
        metrics.batch_records.observe(len(work.items) + len(work.poison))
        metrics.apply_seconds.observe(seconds)
        if work.last_timestamp_ms >= 0:
            now_ms = time.time() * 1000
            metrics.end_to_end_seconds.observe(max(0.0, now_ms - work.last_timestamp_ms) / 1000)
        if committed.poison:
            metrics.dlq_records.labels(self.handler.name).inc(committed.poison)
        self.handler.observe(work.topic, committed.summary)

    def _report_lag(self) -> None:
        """billy_consumer_lag per topic, from the high watermarks the fetcher already knows."""
        if self._consumer is None:
            return
        lag: dict[str, int] = defaultdict(int)
        for (topic, partition), state in list(self._parts.items()):
            if state.position is None:
                continue
            try:
                _, high = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), cached=True
                )
            except KafkaException:
                continue
            if high >= 0:
                lag[topic] += max(0, high - state.position)
        for topic in self._lag_topics - lag.keys():  # no longer read here: 0, not stale
            metrics.consumer_lag.labels(topic).set(0)
        for topic, value in lag.items():
            metrics.consumer_lag.labels(topic).set(value)
        self._lag_topics = set(lag)


def _group(messages: list[Message], log: logging.Logger) -> list[tuple[TP, list[Record]]]:
    """One poll's records by partition, in offset order; consumer errors logged or raised."""
    by_partition: dict[TP, list[Record]] = defaultdict(list)
    for m in messages:
        error = m.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                continue
            if error.fatal():
                raise KafkaException(error)
            log.warning("consumer error: %s", error)
            continue
        topic, partition, offset = m.topic(), m.partition(), m.offset()
        assert topic is not None and partition is not None and offset is not None
        headers: Any = m.headers() or ()
        by_partition[(topic, partition)].append(
            Record(topic, partition, offset, m.timestamp()[1], m.key(), m.value(), tuple(headers))
        )
    return list(by_partition.items())
