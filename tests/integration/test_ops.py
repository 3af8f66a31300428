"""Operator tools on the real broker and PostgreSQL, with the ledger, relay and sweeper running:
Kafka's group offsets mirror the stored positions, a replay of a whole topic changes nothing
and answers only duplicates, a fixed dead letter is redriven and applied exactly once, the
rebuild finds no difference and then one planted, tail renders every record."""

from __future__ import annotations

import time

import psycopg
import pytest
from click.testing import CliRunner
from confluent_kafka import Consumer, TopicPartition

from billy.cli import main
from billy.ops import dlq as dlq_ops
from billy.ops import reading, rebuild, replay
from billy.ops.decode import render
from billy_core.codec import decode_result, encode_command
from billy_core.commands import Adjust, Charge, Command, Hold, RegisterClient
from billy_core.kafka import config as kafka_config
from tests.integration.kafka_io import Reader, Sender, cmd, now_ms

pytestmark = pytest.mark.integration

TENANT = "autoru"
CLIENTS = [f"ops-{i}" for i in range(6)]


@pytest.fixture(scope="module")
def world(settings, topics, billy):
    sender = Sender(settings)
    results = Reader(settings, topics.results(TENANT))
    t = topics.commands(TENANT)
    ids = [sender.command(t, cmd(c, RegisterClient("N", "n@x.ru"))) for c in CLIENTS]
    sender.flush()
    results.poll_until(lambda rs: len(rs) >= len(ids))
    for c in CLIENTS:
        sender.command(
            topics.admin_commands, cmd(c, Adjust(10_000, "RUB", "fund", "op")), key=f"{TENANT}/{c}"
        )
    sender.flush()
    _quiet(settings, topics)
    for i, c in enumerate(CLIENTS):
        sender.command(t, cmd(c, Charge("vas", 100 + i, "RUB")))
        sender.command(t, cmd(c, Hold(f"h-{i}", "vas", 50, "RUB", now_ms() + 3_600_000)))
        sender.command(t, cmd(c, Charge("vas", 0, "RUB")))  # invalid: answered, not remembered
    sender.flush()
    _quiet(settings, topics)
    yield sender, results, topics
    results.close()


def _stored(settings) -> dict[tuple[str, int], int]:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT topic, partition, next_offset FROM consumer_offsets WHERE consumer_group = %s",
            (settings.ledger_group,),
        ).fetchall()
    return {(t, p): o for t, p, o in rows}


def _quiet(settings, topics, timeout_s: float = 60) -> None:
    """Every command partition applied to its end, and the outbox empty."""
    c = reading.consumer(settings, "test")
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            ends = {}
            for topic in (topics.commands(TENANT), topics.admin_commands):
                for p in reading.partitions_of(c, topic):
                    ends[(topic, p)] = c.get_watermark_offsets(TopicPartition(topic, p), 10)[1]
            stored = _stored(settings)
            with psycopg.connect(settings.database_url, autocommit=True) as conn:
                outbox = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
            if outbox == 0 and all(stored.get(tp, 0) >= end for tp, end in ends.items()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"not quiet: ends {ends}, stored {stored}, outbox {outbox}")
            time.sleep(0.3)
    finally:
        c.close()


def _wallets(settings) -> list[tuple]:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        return conn.execute(
            "SELECT tenant, client_id, available_minor, held_minor, version FROM wallets"
            " ORDER BY 1, 2"
        ).fetchall()


def test_kafka_group_offsets_mirror_the_stored_positions(settings, world):
    stored = {tp: o for tp, o in _stored(settings).items() if o > 0}
    assert stored
    group = Consumer(kafka_config.reader(settings, settings.ledger_group))
    try:
        deadline = time.monotonic() + 30
        while True:
            found = group.committed([TopicPartition(t, p) for t, p in stored], timeout=10)
            mirrored = {(tp.topic, tp.partition): tp.offset for tp in found}
            if mirrored == stored or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        group.close()
    assert mirrored == stored


def test_replay_of_a_whole_topic_changes_nothing(settings, world):
    sender, results, topics = world
    topic = topics.commands(TENANT)
    results.drain(1.0)
    before_results = len(results.records)
    before = _wallets(settings)
    records = list(reading.read(settings, topic, purpose="test"))
    counts, fresh = replay.classify(settings, records)
    assert fresh == []
    invalid = counts["invalid (answered invalid again)"]
    assert invalid == len(CLIENTS)
    assert replay.replay(
        settings, topic, start=reading.Position("beginning"), end=None, partitions=None,
        execute=True,
    ) == 0  # fmt: skip
    results.poll_until(lambda rs: len(rs) >= before_results + len(records), 60)
    _quiet(settings, topics)
    new = [decode_result(m.value()) for m in results.records[before_results:]]
    assert len(new) == len(records)
    remembered = [r for r in new if r.code != "invalid"]
    assert len(remembered) == len(records) - invalid
    assert all(r.duplicate for r in remembered)
    assert not any(r.duplicate for r in new if r.code == "invalid")  # never remembered
    assert _wallets(settings) == before


def _dead_letters(settings, topics) -> list[dlq_ops.DeadLetter]:
    return [dlq_ops.DeadLetter(r) for r in reading.read(settings, topics.dlq, purpose="test")]


def test_a_fixed_dead_letter_is_redriven_and_applied_exactly_once(settings, world):
    sender, results, topics = world
    client = CLIENTS[0]
    command_id = "redrive-me"
    wrong = Command(command_id, "someone-else", now_ms(), Charge("vas", 777, "RUB"))
    sender.raw(topics.commands(TENANT), client.encode(), encode_command(wrong))  # key mismatch
    sender.flush()
    deadline = time.monotonic() + 60
    letters: list[dlq_ops.DeadLetter] = []
    while not letters:
        assert time.monotonic() < deadline, "no dead letter"
        letters = [
            d for d in _dead_letters(settings, topics) if d.reason.startswith("key: does not")
        ]
        time.sleep(0.5)
    name = letters[-1].name
    before = {w[1]: w[2] for w in _wallets(settings)}

    # As it is, it is still poison: refused, nothing sent.
    assert dlq_ops.redrive(settings, name, value=None, fixed=False, execute=True, force=False) == 1
    fixed = encode_command(Command(command_id, client, now_ms(), Charge("vas", 777, "RUB")))
    assert dlq_ops.redrive(settings, name, value=fixed, fixed=True, execute=True, force=False) == 0
    got = results.poll_until(
        lambda rs: any(decode_result(m.value()).command_id == command_id for m in rs), 60
    )
    first = [
        decode_result(m.value()) for m in got if decode_result(m.value()).command_id == command_id
    ]
    assert [(r.status, r.code, r.duplicate) for r in first] == [("APPLIED", "ok", False)]
    _quiet(settings, topics)
    # A second redrive: found applied, nothing sent; forced: answered as a duplicate.
    assert dlq_ops.redrive(settings, name, value=fixed, fixed=True, execute=True, force=False) == 0
    assert dlq_ops.redrive(settings, name, value=fixed, fixed=True, execute=True, force=True) == 0
    got = results.poll_until(
        lambda rs: sum(decode_result(m.value()).command_id == command_id for m in rs) >= 2, 60
    )
    answers = [
        decode_result(m.value()) for m in got if decode_result(m.value()).command_id == command_id
    ]
    assert [r.duplicate for r in answers] == [False, True]
    _quiet(settings, topics)
    after = {w[1]: w[2] for w in _wallets(settings)}
    assert after[client] == before[client] - 777  # once
    assert {c: v for c, v in after.items() if c != client} == {
        c: v for c, v in before.items() if c != client
    }
    listed = CliRunner().invoke(main, ["dlq", "list", "--json"], env=_env(settings))
    assert listed.exit_code == 0, listed.output
    assert f'"dlq": "{name}"' in listed.output


def _env(settings) -> dict[str, str]:
    return {
        "BILLY_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "BILLY_DATABASE_URL": settings.database_url,
        "BILLY_TOPIC_PREFIX": settings.topic_prefix,
        "BILLY_TENANTS": ",".join(settings.tenants),
        "BILLY_LEDGER_GROUP": settings.ledger_group,
        "BILLY_BALANCE_GATEWAY": "false",
        "BILLY_LOG_FORMAT": "text",
    }


def test_rebuild_finds_nothing_then_the_planted_difference(settings, world):
    sender, results, topics = world
    _quiet(settings, topics)
    report = rebuild.rebuild(settings, progress=False)
    assert report.differences == [] and not report.moved
    ran = CliRunner().invoke(main, ["rebuild"], env=_env(settings))
    assert ran.exit_code == 0, ran.output
    assert "0 differences" in ran.output
    shown = CliRunner().invoke(main, ["offsets", "show"], env=_env(settings))
    assert shown.exit_code == 0 and "total lag 0" in shown.output, shown.output
    assert report.clients == len(CLIENTS) and report.records > 0
    victim = CLIENTS[3]
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE wallets SET available_minor = available_minor + 1"
            " WHERE tenant = %s AND client_id = %s",
            (TENANT, victim),
        )
    try:
        planted = rebuild.rebuild(settings, progress=False)
    finally:
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE wallets SET available_minor = available_minor - 1"
                " WHERE tenant = %s AND client_id = %s",
                (TENANT, victim),
            )
    assert len(planted.differences) == 1
    assert planted.differences[0].startswith(f"wallets {TENANT}/{victim}: available_minor live=")
    assert rebuild.print_report(planted) == 1


def test_tail_renders_every_record(settings, world):
    _, _, topics = world
    lines = [render(r) for r in reading.read(settings, topics.results(TENANT), purpose="test")]
    assert lines and all(line["schema"].endswith("Result") for line in lines)
    assert all(any(h[0] == "billy-event-id" for h in line["headers"]) for line in lines)
    last = list(
        reading.read(
            settings, topics.results(TENANT), start=reading.Position.parse("-1"), purpose="test"
        )
    )
    assert 1 <= len(last) <= 3  # one per partition (3 partitions in tests)
