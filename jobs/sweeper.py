"""Release untouched expired holds within seconds, as ordered events of their clients.

The sweeper never changes the ledger itself. It finds open holds past `expires_at` and sends
an `ExpireHold` command to the client's own command partition (key = client id), so the
expiry is applied by the ledger in order with the client's other commands, and decided by
that record's timestamp: a replay decides the same way. The command id is derived from the
hold, so sending it twice is a harmless duplicate.
"""

from __future__ import annotations

import logging
import threading
import time

import psycopg
from confluent_kafka import Producer

from billy_core import metrics, retry
from billy_core.codec import encode_command
from billy_core.commands import Command, ExpireHold, expire_command_id
from billy_core.kafka import config as kafka_config
from billy_core.kafka.logs import KAFKA_LOG
from billy_core.kafka.topics import TopicNames
from billy_core.ops.health import HEALTH
from billy_core.settings import Settings

log = logging.getLogger("billy.sweeper")


class HoldSweeper:
    def __init__(self, settings: Settings, topics: TopicNames | None = None) -> None:
        self.settings = settings
        self.topics = topics or TopicNames(settings.topic_prefix)
        # Holds already sent recently: do not send again until the ledger had time to apply.
        self._sent: dict[tuple[str, str, str], float] = {}
        self._resend_after_s = max(30.0, 10 * settings.hold_sweep_interval_s)

    def run(self, stop: threading.Event) -> None:
        # Keyed by client id with Kafka's Java default partitioner (kafka_config), so an
        # ExpireHold lands on the partition of the client's own commands.
        producer = Producer(
            kafka_config.plain_producer(self.settings, "billy-sweeper"),
            logger=KAFKA_LOG,
        )
        conn: psycopg.Connection | None = None
        HEALTH.start_role("sweeper")
        try:
            while not stop.wait(self.settings.hold_sweep_interval_s):
                for attempt in retry.transient(
                    "sweeper", "sweeping expired holds", stop_event=stop
                ):
                    with attempt:
                        try:
                            if conn is None or conn.closed:
                                conn = psycopg.connect(
                                    self.settings.database_url, autocommit=True, connect_timeout=5
                                )
                            self.sweep_once(conn, producer)
                            HEALTH.progressed("sweeper")
                        except psycopg.OperationalError:
                            conn = None
                            raise
        finally:
            producer.flush(10)
            if conn is not None:
                conn.close()

    def sweep_once(self, conn: psycopg.Connection, producer: Producer, limit: int = 5000) -> int:
        """Send ExpireHold for open holds past their time; return how many were sent."""
        now_ms = time.time_ns() // 1_000_000
        with conn.cursor() as cur:
            cur.execute(
                "SELECT tenant, client_id, hold_id FROM holds"
                " WHERE status = 'open' AND expires_at_ms <= %s ORDER BY expires_at_ms LIMIT %s",
                (now_ms, limit),
            )
            due = cur.fetchall()
        now = time.monotonic()
        self._sent = {k: t for k, t in self._sent.items() if now - t < self._resend_after_s}
        sent = 0
        for tenant, client_id, hold_id in due:
            if (tenant, client_id, hold_id) in self._sent:
                continue
            command = Command(
                command_id=expire_command_id(client_id, hold_id),
                client_id=client_id,
                issued_at_ms=now_ms,
                body=ExpireHold(hold_id=hold_id),
            )
            producer.produce(
                self.topics.commands(tenant), key=client_id.encode(), value=encode_command(command)
            )
            self._sent[(tenant, client_id, hold_id)] = now
            sent += 1
        if sent:
            producer.flush(30)
            metrics.hold_expiries.inc(sent)
            log.info("sent %d hold expiries", sent)
        return sent
