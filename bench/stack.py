"""One scenario's private world: a fresh database (migrated), a fresh topic prefix with its
topics, and cleanup (drop the database, delete the topics and the ledger's group)."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

import psycopg
from confluent_kafka.admin import AdminClient

from billy_core.kafka import config as kafka_config
from billy_core.kafka.admin import ensure_topics
from billy_core.kafka.topics import TopicNames
from billy_core.settings import Settings
from billy_core.store import migrate

TENANT = "bench"
log = logging.getLogger("bench")


@dataclass(frozen=True)
class Stack:
    """Where the shared broker and PostgreSQL are (from BILLY_* or .state/stack.env)."""

    kafka: str
    admin_db_url: str
    # Kafka security.protocol for this stack's clients and roles (bench --security); None:
    # whatever the environment / stack.env says. Credentials always come from there.
    protocol: str | None = None

    @classmethod
    def from_env(cls) -> Stack:
        base = Settings()
        return cls(base.kafka_bootstrap, base.database_url)

    def server_facts(self) -> dict:
        """The PostgreSQL settings that decide commit cost; the bench reports them."""
        names = (
            "server_version",
            "synchronous_commit",
            "fsync",
            "wal_sync_method",
            "shared_buffers",
            "commit_delay",
        )
        with psycopg.connect(self.admin_db_url) as conn:
            return {n: conn.execute(f"SHOW {n}").fetchone()[0] for n in names}


class World:
    """Database + topics for one scenario. `open()` then `close()` (idempotent)."""

    def __init__(self, stack: Stack, partitions_max: int) -> None:
        self.stack = stack
        tag = uuid.uuid4().hex[:10]
        self.dbname = f"bench_{tag}"
        self.prefix = f"bench{tag}"
        base, _, _ = stack.admin_db_url.rpartition("/")
        self.db_url = f"{base}/{self.dbname}"
        security = {"kafka_security_protocol": stack.protocol} if stack.protocol else {}
        self.settings = Settings(
            **security,
            kafka_bootstrap=stack.kafka,
            database_url=self.db_url,
            topic_prefix=self.prefix,
            tenants=(TENANT,),
            ledger_group=f"{self.prefix}-ledger",
            topic_partitions_max=partitions_max,
        )
        self.topics = TopicNames(self.prefix)
        self._open = False

    def open(self) -> None:
        with psycopg.connect(self.stack.admin_db_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.dbname}"')
        self._open = True
        migrate.upgrade(self.settings.sqlalchemy_url)
        ensure_topics(self.settings)

    def env(self) -> dict[str, str]:
        s = self.settings
        return {
            "BILLY_KAFKA_BOOTSTRAP": s.kafka_bootstrap,
            "BILLY_DATABASE_URL": s.database_url,
            "BILLY_TOPIC_PREFIX": s.topic_prefix,
            "BILLY_TENANTS": TENANT,
            "BILLY_LEDGER_GROUP": s.ledger_group,
            "BILLY_TOPIC_PARTITIONS_MAX": str(s.topic_partitions_max),
            "BILLY_BALANCE_GATEWAY": "false",  # ledger benches run without Balance
            "BILLY_KAFKA_SECURITY_PROTOCOL": s.kafka_security_protocol,
        }

    def count_processed(self) -> int:
        with psycopg.connect(self.db_url) as conn:
            return conn.execute("SELECT count(*) FROM processed_commands").fetchone()[0]

    def close(self) -> None:
        if not self._open:
            return
        self._open = False
        admin = AdminClient(kafka_config.admin(self.settings))
        try:
            names = [
                t for t in admin.list_topics(timeout=30).topics if t.startswith(self.prefix + ".")
            ]
            if names:
                for f in admin.delete_topics(names, operation_timeout=30).values():
                    f.result(60)
            admin.delete_consumer_groups([self.settings.ledger_group], request_timeout=30)[
                self.settings.ledger_group
            ].result(60)
        except Exception as exc:  # cleanup must not hide the figures
            log.warning("topic/group cleanup of %s: %s", self.prefix, exc)
        # PostgreSQL may be restarting (another engineer's fault test): retry for a while.
        deadline = time.monotonic() + 60
        while True:
            try:
                with psycopg.connect(self.stack.admin_db_url, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    log.warning("database %s left behind: %s", self.dbname, exc)
                    return
                time.sleep(2)
