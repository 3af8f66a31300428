"""The foundation on real services: an Avro command through the broker, the store, migrations."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from confluent_kafka.admin import AdminClient, NewTopic
from sqlalchemy import create_engine, inspect

from billy_core.codec import decode_command
from billy_core.commands import Charge
from billy_core.kafka import config as kafka_config
from billy_core.settings import Settings
from billy_core.store import migrate
from billy_core.store.tables import metadata
from billy_core.stream import positions
from tests.integration.kafka_io import Reader, Sender, cmd

pytestmark = pytest.mark.integration


def test_avro_command_round_trip_through_the_broker(settings):
    topic = f"{settings.topic_prefix}.smoke.{uuid.uuid4().hex[:6]}"
    admin = AdminClient(kafka_config.admin(settings))
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    sent = cmd("client-1", Charge("listing", 12_345, "RUB"))
    sender = Sender(settings)
    sender.command(topic, sent)
    sender.flush()
    reader = Reader(settings, topic)
    try:
        (record,) = reader.poll_until(lambda rs: len(rs) >= 1)
        assert record.key() == b"client-1"
        assert decode_command(record.value()) == sent
    finally:
        reader.close()


def test_store_claims_and_advances_offsets(database_url):
    with psycopg.connect(database_url) as conn:
        first = positions.claim(conn, "g", "billy.autoru.commands", 3)
        assert first == positions.Position(0, 0)
        with conn.transaction(), conn.cursor() as cur:
            before = positions.lock(cur, "g", "billy.autoru.commands", 3, 0)
            positions.advance(
                cur, "g", "billy.autoru.commands", 3, before, positions.Position(42, 7)
            )
        assert positions.claim(conn, "g", "billy.autoru.commands", 3) == (positions.Position(42, 7))
        # A consumer that still believes the offset is 0 (a zombie) is refused.
        with pytest.raises(positions.OffsetConflict):
            with conn.transaction(), conn.cursor() as cur:
                positions.lock(cur, "g", "billy.autoru.commands", 3, 0)


def test_migrations_go_up_and_down_and_match_the_tables(stack):
    name = f"m_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(stack["pg"], autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = Settings(database_url=stack["pg"].rpartition("/")[0] + "/" + name).sqlalchemy_url
        migrate.upgrade(url)
        engine = create_engine(url)
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), metadata)
            assert diff == [], f"migrations and billy_core/store/tables.py disagree: {diff}"
        migrate.downgrade(url)
        with engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) == {"alembic_version"}
        migrate.upgrade(url)
        engine.dispose()
    finally:
        with psycopg.connect(stack["pg"], autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
