"""The relay: outbox rows out to Kafka in transactions, position included, then cleanup.

Each Kafka transaction carries a batch of outbox rows (every shard in `seq` order, so each
client's records keep the order the ledger applied them in) and the new position of every
shard it touched. Only after the commit are those rows deleted from PostgreSQL; a crash in
between is harmless because the next relay reads its position from Kafka and skips them.

One relay owns a shard at a time: shard ownership is `hashtext(shard) mod relay_instances`,
and the transactional id is `<prefix>-relay-<instance>`, so a second relay started with the
same instance number fences the first (its next commit fails and it stops). A relay reads
only its own deployment's rows (`deployment` = its topic prefix).

The relay never stops on one row. A record the broker (or librdkafka) refuses as too large
(MSG_SIZE_TOO_LARGE, at produce or in the delivery report) is replaced by a bounded stand-in
on the same topic: the key (shortened if huge), a null value, billy's own short headers
and headers giving the original's size and digests (`billy_core.stream.dlq.stand_in`),
logged, and counted in billy_relay_oversized_total when its transaction commits. Refused
in a delivery report, the transaction is aborted and sent again with the stand-in in the
row's place, by a new producer (same transactional id, fresh epoch and sequence numbers:
the refused batch left the old one's out of step with the broker); nothing of the aborted
transaction is visible to read_committed readers.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import cast

import psycopg
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from billy_core import metrics, retry
from billy_core.kafka import config as kafka_config
from billy_core.kafka.logs import KAFKA_LOG
from billy_core.kafka.topics import TopicNames
from billy_core.ops.health import HEALTH
from billy_core.settings import Settings
from billy_core.stream import dlq
from billy_core.stream.outbox import NOTIFY_CHANNEL, Unpacked, decode_headers, unpack
from billy_core.stream.record import Header
from relay import positions as relay_positions

log = logging.getLogger("billy.relay")

_OWNED = (
    "{t}deployment = %(deployment)s"
    " AND (hashtext({t}shard) & 2147483647) %% %(instances)s = %(instance)s"
)

# Rows past each shard's published position (rows at or below it wait for cleanup and must not
# crowd out new ones), about `per_shard` records per shard so no shard starves the others: a
# shard's rows while the records before them number fewer (a row is one record or a packed
# batch of them, `billy_core.stream.outbox.write`).
_FETCH = (
    "SELECT shard, seq, topic, key, value, event_id, headers, batch FROM ("
    "  SELECT o.*, sum(o.records) OVER (PARTITION BY o.shard ORDER BY o.seq) - o.records"
    "  AS before FROM outbox o"
    "  LEFT JOIN unnest(%(shards)s::text[], %(seqs)s::bigint[]) AS p(shard, seq)"
    "  ON p.shard = o.shard"
    f"  WHERE {_OWNED.format(t='o.')} AND o.seq > coalesce(p.seq, 0)"
    ") x WHERE before < %(per_shard)s ORDER BY shard, seq"
)
_Bytes = bytes | memoryview | None
# One _FETCH row: shard, seq, then one record (topic, key, value, event_id, headers as the
# JSONB loaded) and a null batch, or nulls and a packed batch.
_OutboxRow = tuple[str, int, str | None, _Bytes, _Bytes, str | None, object, _Bytes]

# Published rows of each shard, from above the last cleanup: without that lower bound every
# DELETE walked the shard's index from its start, through the entries of the rows deleted
# since the last vacuum (5 ms a call at 2,000 commands/s, PostgreSQL's costliest statement).
_DELETE = (
    "DELETE FROM outbox o USING unnest(%b::text[], %b::bigint[], %b::bigint[])"
    " AS p(shard, after, upto)"
    " WHERE o.deployment = %s AND o.shard = p.shard AND o.seq > p.after AND o.seq <= p.upto"
)


class Relay:
    def __init__(self, settings: Settings, topics: TopicNames | None = None) -> None:
        self.settings = settings
        self.topics = topics or TopicNames(settings.topic_prefix)
        self.params = {
            "deployment": self.topics.prefix,
            "instances": settings.relay_instances,
            "instance": settings.relay_instance,
            "per_shard": max(1, settings.relay_batch_max // 4),
        }
        self.published: dict[str, int] = {}
        self._conn: psycopg.Connection | None = None
        self._backlog_due = 0.0
        self._cleanup_pending = False  # a cleanup failed: published rows still in the outbox
        # Per shard, the seq up to which its rows are deleted (unknown, so 0, at start).
        self._cleaned: dict[str, int] = {}
        # Records the broker refused as too large in a delivery report, as (shard, seq, index
        # in the row): sent as stand-ins next.
        self._oversized: set[tuple[str, int, int]] = set()
        self._refused: set[tuple[str, int, int]] = set()  # this transaction's refusals
        self._renew = False  # replace the producer before the next transaction
        self._woken = False  # an engine said rows were committed since the last fetch

    def _db(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            conn = psycopg.connect(self.settings.database_url, autocommit=True, connect_timeout=5)
            # Woken by the engines' notification that rows were committed (`_idle`).
            conn.add_notify_handler(self._notified)
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            self._conn = conn
            self._woken = True  # a notification may have been missed while disconnected
        return self._conn

    def _notified(self, _: psycopg.Notify) -> None:
        self._woken = True

    def _idle(self) -> None:
        """Nothing to publish: wait for an engine's notification that rows were committed,
        at most `relay_idle_sleep_ms` (a notification is best effort; rows written by hand
        or by an older billy come without one). A notification heard while the last fetch
        ran (`_notified`) ends the wait at once: its rows may have missed that fetch."""
        timeout = self.settings.relay_idle_sleep_ms / 1000
        if not self._woken:
            # Wait until the server sends something (a notification); the next fetch reads
            # it, through `_notified`. psycopg warns against mixing a handler with
            # `notifies()`, and a handler alone never drops a notification.
            try:
                select.select([self._db().fileno()], [], [], timeout)
            except (OSError, ValueError, psycopg.OperationalError):
                self._conn = None  # reconnected (and listening again) by the next fetch
                time.sleep(timeout)
        self._woken = False

    def run(self, stop: threading.Event) -> None:
        transactional_id = f"{self.topics.prefix}-relay-{self.settings.relay_instance}"
        producer = Producer(
            kafka_config.transactional_producer(self.settings, transactional_id),
            logger=KAFKA_LOG,
        )
        # Fences any older relay with this id and aborts its open transaction.
        producer.init_transactions(60)
        self.published = relay_positions.read_all(self.settings, self.topics.relay_positions)
        log.info("relay %s starts from %d shard positions", transactional_id, len(self.published))
        self._cleanup(self.published)
        HEALTH.start_role("relay")
        while not stop.is_set():
            rows = self._fetch()
            HEALTH.progressed("relay")  # published the last batch, or found none waiting
            if not rows:
                metrics.outbox_backlog.set(0)
                metrics.outbox_oldest_seconds.set(0)
                if self._cleanup_pending:
                    self._cleanup(self.published)
                self._idle()
                continue
            touched = self._publish(producer, rows)
            if self._renew:  # a refusal in a delivery report: start clean (module doc)
                self._renew = False
                producer = Producer(
                    kafka_config.transactional_producer(self.settings, transactional_id),
                    logger=KAFKA_LOG,
                )
                producer.init_transactions(60)
            self.published.update(touched)
            self._cleanup(self.published if self._cleanup_pending else touched)
        producer.flush(10)

    def _fetch(self) -> list[_OutboxRow]:
        """The next rows to publish; waits out PostgreSQL outages (bounded backoff)."""
        shards = list(self.published)
        params = {**self.params, "shards": shards, "seqs": [self.published[s] for s in shards]}
        for attempt in retry.transient("relay", "reading the outbox"):
            with attempt:
                try:
                    # Binary results: a packed batch (hundreds of KiB) comes as its bytes,
                    # not hex-escaped by the server and unescaped here.
                    with self._db().cursor(binary=True) as cur:
                        cur.execute(_FETCH, params)
                        return cur.fetchall()
                except psycopg.OperationalError:
                    self._conn = None
                    raise
        raise AssertionError("unreachable: tenacity reraises")

    def _publish(self, producer: Producer, rows: list[_OutboxRow]) -> dict[str, int]:
        """One Kafka transaction: the rows, then the shards' new positions. Raises
        KafkaException when the transaction cannot commit (fenced, or the broker is gone too
        long): the process stops and its replacement resumes from the committed position.
        A row refused as too large is sent as a bounded stand-in (module doc)."""
        started = time.perf_counter()
        touched: dict[str, int] = {}
        by_topic: Counter[str] = Counter()  # counted by kind once the transaction commits
        stand_ins: Counter[str] = Counter()
        self._refused.clear()
        producer.begin_transaction()
        try:
            for row in rows:
                shard, seq = row[0], row[1]
                for index, (topic, key, value, event_id, headers) in enumerate(_records(row)):
                    headers.append(("billy-event-id", event_id.encode()))
                    which = (shard, seq, index)
                    on_delivery = partial(self._delivered, which)
                    if which in self._oversized or not _produce(
                        producer, topic, key, value, headers, on_delivery
                    ):
                        self._oversized.add(which)
                        self._stand_in(producer, topic, key, value, headers)
                        stand_ins[_kind(self.topics, topic)] += 1
                    by_topic[topic] += 1
                touched[shard] = seq
            for shard, seq in touched.items():
                _produce(
                    producer,
                    self.topics.relay_positions,
                    shard.encode(),
                    relay_positions.encode(seq),
                    None,
                )
            producer.flush(60)  # serves the delivery reports: refusals are known before commit
            if self._refused:
                raise KafkaException(
                    KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "rows refused as too large")
                )
            _commit(producer)
        except KafkaException as exc:
            error = exc.args[0]
            producer.poll(0)  # delivery reports already in: a refusal may be among them
            if self._refused or error.txn_requires_abort():
                producer.abort_transaction(60)
                producer.poll(0)
                self._oversized |= self._refused
                # The broker refused a batch of an idempotent producer: its sequence numbers
                # for that partition no longer match the broker's. A new producer with the
                # same transactional id starts from a fresh epoch (init_transactions).
                self._renew = bool(self._refused)
                log.warning(
                    "relay transaction aborted (%s); retrying%s",
                    error,
                    f" with stand-ins for {len(self._refused)} rows too large for the broker"
                    if self._refused
                    else "",
                )
                return {}
            raise
        sent = {(row[0], row[1]) for row in rows}
        self._oversized = {o for o in self._oversized if o[:2] not in sent}
        metrics.relay_transaction_seconds.observe(time.perf_counter() - started)
        kinds: Counter[str] = Counter()
        for topic, count in by_topic.items():
            kinds[_kind(self.topics, topic)] += count
        for kind, count in kinds.items():
            metrics.relay_published.labels(kind).inc(count)
        for kind, count in stand_ins.items():
            metrics.relay_oversized.labels(kind).inc(count)
        return touched

    def _delivered(self, which: tuple[str, int, int], error: KafkaError | None, _: Message) -> None:
        if error is not None and error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
            self._refused.add(which)

    def _stand_in(
        self,
        producer: Producer,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[Header],
    ) -> None:
        """Send the bounded stand-in of a record too large for the broker (module doc)."""
        short, about = dlq.stand_in(key, value, headers)
        kept = [(n, v) for n, v in headers if n.startswith("billy-") and len(v or b"") <= 1024]
        log.error(
            "relay: a record for %s of %d bytes is too large for the broker; sent a stand-in"
            " (event %s)",
            topic,
            dlq.record_bytes(key, value, headers),
            (dict(kept).get("billy-event-id") or b"?").decode(errors="replace"),
        )
        _produce(producer, topic, short, None, [*about, *kept])

    def _cleanup(self, published: dict[str, int]) -> None:
        if not published:
            return
        try:
            with self._db().cursor() as cur:
                shards = list(published)
                after = [self._cleaned.get(shard, 0) for shard in shards]
                upto = [published[shard] for shard in shards]
                cur.execute(_DELETE, (shards, after, upto, self.topics.prefix))
                if time.monotonic() >= self._backlog_due:  # a count is a scan: not every loop
                    cur.execute(
                        "SELECT coalesce(sum(records), 0),"
                        " coalesce(extract(epoch FROM now() - min(created_at)), 0)"
                        f" FROM outbox WHERE {_OWNED.format(t='')}",
                        self.params,
                    )
                    counted = cur.fetchone()
                    if counted is None:
                        raise RuntimeError("SELECT count(*) returned no row")
                    metrics.outbox_backlog.set(counted[0])
                    metrics.outbox_oldest_seconds.set(float(counted[1]))
                    self._backlog_due = time.monotonic() + 5.0
            self._cleaned.update(published)
            self._cleanup_pending = False
        except psycopg.OperationalError as exc:
            # Harmless: published rows are skipped by position and deleted later.
            log.warning("outbox cleanup postponed (%s)", exc)
            self._cleanup_pending = True
            self._conn = None


def _commit(producer: Producer) -> None:
    """Commit, retrying while librdkafka says the same commit may still succeed (a timeout
    with the outcome unknown); abortable and fatal errors go to the caller."""
    for _ in range(5):
        try:
            producer.commit_transaction(60)
            return
        except KafkaException as exc:
            if not exc.args[0].retriable():
                raise
            log.warning("relay commit retried: %s", exc.args[0])
    producer.commit_transaction(60)


def _produce(
    producer: Producer,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: list[Header] | None,
    on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
) -> bool:
    """Queue one record; False when librdkafka refuses it at once as too large."""
    # Producer.produce's stub takes str | bytes header values (a list is invariant).
    record_headers = cast(list[tuple[str, str | bytes | None]] | None, headers)
    while True:
        try:
            if on_delivery is None:
                producer.produce(topic, value=value, key=key, headers=record_headers)
            else:
                producer.produce(
                    topic, value=value, key=key, headers=record_headers, on_delivery=on_delivery
                )
            return True
        except BufferError:
            producer.poll(0.05)  # the local queue is full: let deliveries drain
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.MSG_SIZE_TOO_LARGE:
                return False
            raise


def _records(row: _OutboxRow) -> list[Unpacked]:
    """The records of one outbox row: itself, or its packed batch's."""
    _, _, topic, key, value, event_id, headers, batch = row
    if batch is not None:
        return unpack(batch)
    assert topic is not None and event_id is not None  # the table's CHECK
    return [(topic, _bytes(key), _bytes(value), event_id, decode_headers(headers))]


def _bytes(value: bytes | memoryview | None) -> bytes | None:
    return None if value is None else bytes(value)


def _kind(topics: TopicNames, topic: str) -> str:
    if topic == topics.applied_services:
        return "applied_services"
    if topic == topics.wallets:
        return "wallets"
    if topic == topics.dlq:
        return "dlq"
    if topic.endswith(".results"):
        return "results"
    return "other"
