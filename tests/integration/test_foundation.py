"""The foundation on real services: an Avro command through the broker, the store, migrations."""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from confluent_kafka.admin import AdminClient, NewTopic
from sqlalchemy import create_engine, inspect

from billy_core import db
from billy_core.codec import decode_command
from billy_core.commands import Charge
from billy_core.kafka import config as kafka_config
from billy_core.settings import Settings
from billy_core.store import migrate
from billy_core.store.tables import metadata
from billy_core.stream import outbox, positions
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


def test_store_locks_and_advances_several_partitions_in_one_statement_each(database_url):
    topic = f"billy.t{uuid.uuid4().hex[:6]}.commands"
    with psycopg.connect(database_url) as conn:
        for partition in (0, 1, 2):
            positions.claim(conn, "g", topic, partition)
        with conn.transaction(), conn.cursor() as cur:
            before = positions.lock_all(cur, "g", [(topic, 2, 0), (topic, 0, 0), (topic, 1, 0)])
            assert before == {(topic, p): positions.Position(0, 0) for p in (0, 1, 2)}
            positions.advance_all(
                cur,
                "g",
                [
                    (topic, 0, before[(topic, 0)], positions.Position(10, 3)),
                    (topic, 2, before[(topic, 2)], positions.Position(5, 1)),
                ],
            )
        assert positions.claim(conn, "g", topic, 0) == positions.Position(10, 3)
        assert positions.claim(conn, "g", topic, 1) == positions.Position(0, 0)
        assert positions.claim(conn, "g", topic, 2) == positions.Position(5, 1)
        # One partition that moved refuses the whole lock; nothing is written.
        with pytest.raises(positions.OffsetConflict, match=f"{topic}/2: stored offset is 5"):
            with conn.transaction(), conn.cursor() as cur:
                positions.lock_all(cur, "g", [(topic, 0, 10), (topic, 2, 0)])
        # A compare-and-set with one stale base moves no partition.
        with pytest.raises(positions.OffsetConflict, match="moved during the batch"):
            with conn.transaction(), conn.cursor() as cur:
                stale = positions.Position(0, 0)
                positions.advance_all(
                    cur,
                    "g",
                    [
                        (topic, 0, positions.Position(10, 3), positions.Position(11, 4)),
                        (topic, 2, stale, positions.Position(6, 2)),
                    ],
                )
        assert positions.claim(conn, "g", topic, 0) == positions.Position(10, 3)
        assert positions.claim(conn, "g", topic, 2) == positions.Position(5, 1)
        # A partition never claimed has no row: a conflict, not a silent start.
        with pytest.raises(positions.OffsetConflict, match=f"{topic}/7: stored offset is None"):
            with conn.transaction(), conn.cursor() as cur:
                positions.lock_all(cur, "g", [(topic, 7, 0)])


def test_outboxes_of_a_merged_transaction_are_written_in_one_call(database_url):
    deployment = f"d{uuid.uuid4().hex[:8]}"
    one = outbox.Outbox(deployment, "t/0", 4)
    one.add("t.results", "client-1", b"v1", "e1", [("h", b"x")])
    many = outbox.Outbox(deployment, "t/1", 0)
    for i in range(3):
        many.add("t.results", f"client-{i}", b"v", f"m{i}")
    empty = outbox.Outbox(deployment, "t/2", 9)
    with psycopg.connect(database_url) as conn:
        with conn.transaction(), conn.cursor() as cur:
            outbox.write(cur, one, many, empty)
        rows = conn.execute(
            "SELECT shard, seq, topic, event_id, headers, batch IS NOT NULL, records FROM outbox"
            " WHERE deployment = %s ORDER BY shard",
            (deployment,),
        ).fetchall()
    assert [r[:4] + r[5:] for r in rows] == [
        ("t/0", 5, "t.results", "e1", False, 1),
        ("t/1", 3, None, None, True, 3),
    ]
    assert outbox.decode_headers(rows[0][4]) == [("h", b"x")]


def test_the_pool_hands_out_a_live_connection_after_its_backend_was_killed(database_url):
    pool = db.pool(database_url, size=1, name="check-test")
    pool.open(wait=True)
    try:
        with pool.connection() as conn:
            pid = conn.info.backend_pid
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the server's FATAL reaches the idle socket
            with pool.connection() as conn:
                if conn.info.backend_pid != pid:
                    assert conn.execute("SELECT 1").fetchone() == (1,)
                    break
            time.sleep(0.05)
        else:
            raise AssertionError("the pool kept handing out the killed connection")
    finally:
        pool.close()


@pytest.fixture
def empty_database(stack):
    """The URL of a database of its own, without tables, dropped after the test."""
    name = f"m_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(stack["pg"], autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield stack["pg"].rpartition("/")[0] + "/" + name
    with psycopg.connect(stack["pg"], autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migrations_go_up_and_down_and_match_the_tables(empty_database):
    url = Settings(database_url=empty_database).sqlalchemy_url
    migrate.upgrade(url)
    engine = create_engine(url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), metadata)
        assert diff == [], f"migrations and billy_core/store/tables.py disagree: {diff}"
        # compare_metadata does not compare collations: the bytewise keys, checked here.
        collated = {
            (t, c): n
            for t, c, n in connection.exec_driver_sql(
                "SELECT table_name, column_name, collation_name FROM information_schema.columns"
                " WHERE table_schema = 'public' AND collation_name IS NOT NULL"
            )
        }
        declared = {
            (table.name, column.name): column.type.collation
            for table in metadata.tables.values()
            for column in table.columns
            if getattr(column.type, "collation", None)
        }
        assert declared and collated == declared
    migrate.downgrade(url)
    with engine.connect() as connection:
        assert set(inspect(connection).get_table_names()) == {"alembic_version"}
    migrate.upgrade(url)
    engine.dispose()


def _charge_rows(conn: psycopg.Connection, refunded: int, *, applied: bool = True) -> None:
    """A charge of 100 as migration 0011 stored it: its applied-services row and its own row."""
    if applied:
        conn.execute(
            "INSERT INTO applied_services (tenant, client_id, command_id, kind, product_id,"
            " amount_minor, currency, applied_at_ms) VALUES"
            " ('t', 'c1', 'ch-1', 'CHARGE', 'vin', 100, 'RUB', 1),"
            " ('t', 'c1', 'rf-1', 'REFUND', 'vin', 30, 'RUB', 2)"
        )
    conn.execute(
        "INSERT INTO charges (tenant, client_id, command_id, product_id, amount_minor, currency,"
        " refunded_minor) VALUES ('t', 'c1', 'ch-1', 'vin', 100, 'RUB', %s)",
        (refunded,),
    )


def test_migration_0012_keeps_what_each_charge_had_refunded(empty_database):
    pg = empty_database
    url = Settings(database_url=pg).sqlalchemy_url
    migrate.upgrade(url, "0011")
    with psycopg.connect(pg, autocommit=True) as conn:
        _charge_rows(conn, refunded=30)
    migrate.upgrade(url)
    with psycopg.connect(pg, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT command_id, kind, refunded_minor FROM applied_services ORDER BY 1"
        ).fetchall()
        assert rows == [("ch-1", "CHARGE", 30), ("rf-1", "REFUND", 0)]
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("UPDATE applied_services SET refunded_minor = 101")
    migrate.downgrade(url, "0011")
    with psycopg.connect(pg, autocommit=True) as conn:
        assert conn.execute(
            "SELECT command_id, amount_minor, refunded_minor FROM charges"
        ).fetchall() == [("ch-1", 100, 30)]


def test_migration_0012_refuses_a_charge_it_cannot_place(empty_database):
    pg = empty_database
    url = Settings(database_url=pg).sqlalchemy_url
    migrate.upgrade(url, "0011")
    with psycopg.connect(pg, autocommit=True) as conn:
        _charge_rows(conn, refunded=0, applied=False)
    with pytest.raises(Exception, match="charge t/c1/ch-1 has no matching CHARGE row"):
        migrate.upgrade(url)
    with psycopg.connect(pg, autocommit=True) as conn:
        # Nothing changed: the charge is still where it was, the database at 0011.
        assert conn.execute("SELECT count(*) FROM charges").fetchone() == (1,)
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0011",)
