"""Operations without services: health and readiness, the one-line down/back log, JSON logs,
counters at zero, the Kafka offset mirror's reset detection, positions, decoding, and the
rebuild's decisions against the ledger's rules."""

from __future__ import annotations

import json
import logging

import pytest
from confluent_kafka import TopicPartition
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from billy.ops import reading
from billy.ops.decode import decode_value, render
from billy.ops.rebuild import Rebuilder
from billy_core import metrics
from billy_core.codec import encode_command
from billy_core.commands import Adjust, Charge, Command, ConfirmHold, Hold, RegisterClient
from billy_core.kafka.topics import TopicNames
from billy_core.ops import logs
from billy_core.ops.health import LIVENESS_STALE_S, PROGRESS_STALE_S, Health
from billy_core.stream.commit_kafka import MIRROR_METADATA, KafkaCommitStep
from billy_core.stream.record import Record


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


# --- health --------------------------------------------------------------------------------


def test_readiness_follows_dependencies_and_progress() -> None:
    clock = Clock()
    health = Health(clock=clock)
    health.start_role("ledger")
    ok, body = health.readiness()
    assert not ok and body["roles"]["ledger"] == ["kafka unknown", "postgresql unknown"]
    health.set_dependency("kafka", True)
    health.set_dependency("postgresql", True)
    assert health.readiness()[0]
    health.set_dependency("kafka", False, "connection refused")
    ok, body = health.readiness()
    assert not ok and body["roles"]["ledger"] == ["kafka down"]
    health.set_dependency("kafka", True)
    clock.now += PROGRESS_STALE_S + 1
    ok, body = health.readiness()
    assert not ok and body["roles"]["ledger"][0].startswith("no progress for")
    health.progressed("ledger")
    assert health.readiness()[0]


def test_liveness_is_the_loop_not_the_dependencies() -> None:
    clock = Clock()
    health = Health(clock=clock)
    health.start_role("relay")
    health.set_dependency("postgresql", False, "down")
    assert health.liveness()[0]
    clock.now += LIVENESS_STALE_S + 1
    assert not health.liveness()[0]
    health.beat("relay")
    assert health.liveness()[0]


def test_one_line_down_and_one_line_back(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    health = Health(clock=clock)
    health.start_role("ledger")
    with caplog.at_level(logging.INFO, logger="billy.health"):
        health.set_dependency("kafka", True)
        for _ in range(5):  # probes every 5 s while it is down: one line only
            health.set_dependency("kafka", False, "Connection refused", "BILLY_KAFKA_BOOTSTRAP=x")
            clock.now += 5
        for _ in range(3):
            health.set_dependency("kafka", True)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "dependency down: kafka (BILLY_KAFKA_BOOTSTRAP=x): Connection refused",
        "dependency back: kafka after 25 s down",
    ]
    assert [getattr(r, "event", None) for r in caplog.records] == ["down", "up"]
    assert REGISTRY.get_sample_value("billy_dependency_up", {"dependency": "kafka"}) == 1


def test_json_log_lines_carry_fields_and_nothing_else() -> None:
    record = logging.LogRecord("billy.ledger", logging.WARNING, __file__, 1, "x %s", ("y",), None)
    record.topic, record.partition, record.offset = "billy.autoru.commands", 3, 17
    record.command_id, record.tenant = "c-1", "autoru"
    record.email = "someone@example.ru"  # not a field: never written
    line = json.loads(logs.JsonFormatter().format(record))
    assert line["msg"] == "x y" and line["level"] == "WARNING"
    assert {k: line[k] for k in ("topic", "partition", "offset", "command_id", "tenant")} == {
        "topic": "billy.autoru.commands",
        "partition": 3,
        "offset": 17,
        "command_id": "c-1",
        "tenant": "autoru",
    }
    assert "email" not in line and "example.ru" not in json.dumps(line)


def test_engine_lines_get_topic_and_partition() -> None:
    record = logging.LogRecord(
        "billy.ledger",
        logging.WARNING,
        __file__,
        1,
        "poison flood on %s/%d: %s",
        ("t", 4, "x"),
        None,
    )
    line = json.loads(logs.JsonFormatter().format(record))
    assert (line["topic"], line["partition"], line["msg"]) == ("t", 4, "poison flood on t/4: x")


def test_counters_are_exported_at_zero_from_the_start() -> None:
    metrics.export_zero(("ledger", "gateway"), ("autoru",))
    text = __import__("prometheus_client").generate_latest(REGISTRY).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert samples[("billy_dlq_records_total", (("source", "gateway"),))] == 0
    assert samples[("billy_offset_mismatches_total", (("role", "ledger"),))] == 0
    assert ("billy_duplicates_total", (("tenant", "autoru"),)) in samples
    assert ("billy_offset_conflicts_total", ()) in samples


# --- the Kafka offset mirror -----------------------------------------------------------------


class FakeConsumer:
    def __init__(self, group_offsets: dict[tuple[str, int], tuple[int, str | None]]) -> None:
        self.group = group_offsets
        self.commits: list[list[tuple[str, int, int]]] = []

    def committed(self, tps: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        found = []
        for t in tps:
            offset, metadata = self.group.get((t.topic, t.partition), (-1001, None))
            extra = {"metadata": metadata} if metadata is not None else {}
            found.append(TopicPartition(t.topic, t.partition, offset, **extra))
        return found

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        assert asynchronous
        self.commits.append(sorted((o.topic, o.partition, o.offset) for o in offsets))
        for o in offsets:
            self.group[(o.topic, o.partition)] = (o.offset, o.metadata)


def test_mirror_commits_stored_positions_and_overwrites_a_reset(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    step = KafkaCommitStep("ledger-test", "g", logging.getLogger("billy.test"), clock=clock)
    consumer = FakeConsumer(
        {
            ("t", 0): (5, MIRROR_METADATA),
            ("t", 1): (999, None),  # reset with Kafka's tool (no metadata)
            ("t", 2): (30, MIRROR_METADATA),  # billy's copy, behind after a crash: no warning
        }
    )
    before = REGISTRY.get_sample_value("billy_offset_mismatches_total", {"role": "ledger-test"})
    step.assigned({("t", 0): 5, ("t", 1): 40, ("t", 2): 35})
    with caplog.at_level(logging.WARNING, logger="billy.test"):
        step.after_poll(consumer, polled=False, waiting=False)  # type: ignore[arg-type]
    assert consumer.commits == [[("t", 0, 5), ("t", 1, 40), ("t", 2, 35)]]  # the stored ones
    assert consumer.group[("t", 1)] == (40, MIRROR_METADATA)
    assert caplog.text.count("reset with Kafka's tool") == 1
    after = REGISTRY.get_sample_value("billy_offset_mismatches_total", {"role": "ledger-test"})
    assert (after or 0) - (before or 0) == 1
    assert "says offset 999, billy's stored position is 40" in caplog.text
    step.committed(("t", 0), 9)
    step.after_poll(consumer, polled=True, waiting=False)  # type: ignore[arg-type]
    assert len(consumer.commits) == 1  # at most one commit per interval
    clock.now += 1.0
    step.after_poll(consumer, polled=True, waiting=False)  # type: ignore[arg-type]
    assert consumer.commits[-1] == [("t", 0, 9)]
    clock.now += 1.0
    step.after_poll(consumer, polled=True, waiting=False)  # type: ignore[arg-type]
    assert len(consumer.commits) == 2  # nothing moved: no commit
    step.revoked([("t", 0)])
    step.committed(("t", 0), 12)  # a batch that finished after the revoke: not mirrored
    clock.now += 1.0
    step.after_poll(consumer, polled=True, waiting=False)  # type: ignore[arg-type]
    assert len(consumer.commits) == 2


# --- positions and decoding --------------------------------------------------------------------


def test_positions_parse() -> None:
    parse = reading.Position.parse
    assert parse("beginning") == reading.Position("beginning")
    assert parse("end") == reading.Position("end")
    assert parse("1200") == reading.Position("offset", 1200)
    assert parse("-10") == reading.Position("last", 10)
    assert parse("2026-11-27T08:00:00Z") == reading.Position("time", 1_795_766_400_000)
    with pytest.raises(reading.BadPosition, match="ISO time"):
        parse("yesterday")


def test_decode_shows_avro_json_and_undecodable() -> None:
    command = Command("c-1", "client-1", 1_795_766_400_000, Charge("vas", 100, "RUB"))
    avro = decode_value(encode_command(command))
    assert avro["schema"].endswith("Command") and avro["value"]["command_id"] == "c-1"
    assert decode_value(b'{"v": 1}') == {"json": {"v": 1}}
    bad = decode_value(b"\x00\x01garbage")
    assert "undecodable" in bad and bad["value"] == {"base64": "AAFnYXJiYWdl"}
    record = Record("billy.autoru.commands", 2, 7, 1_795_766_400_000, b"client-1",
                    encode_command(command), (("h", b"v"), ("bin", b"\xff")))  # fmt: skip
    out = render(record)
    assert out["key"] == "client-1" and out["timestamp"] == "2026-11-27T08:00:00Z"
    assert out["headers"] == [["h", "v"], ["bin", {"base64": "/w=="}]]
    json.dumps(out)  # JSON all the way down


# --- the rebuild's decisions -------------------------------------------------------------------


def test_rebuilder_follows_the_ledgers_rules() -> None:
    topics = TopicNames("billy")
    rb = Rebuilder(topics, frozenset({"autoru"}))
    t, admin = topics.commands("autoru"), topics.admin_commands
    offsets = {t: 0, admin: 0}

    def feed(command: Command, ts: int, *, topic: str = t, key: str | None = None) -> None:
        value = encode_command(command)
        k = (key or command.client_id).encode()
        rb.feed(Record(topic, 0, offsets[topic], ts, k, value))
        offsets[topic] += 1

    feed(Command("r1", "c1", 1, RegisterClient("N", "e@x.ru", "RUB")), 1)
    feed(Command("a1", "c1", 2, Adjust(1000, "RUB", "fund", "op")), 2, topic=admin, key="autoru/c1")
    feed(Command("ch1", "c1", 3, Charge("vas", 300, "RUB")), 3)
    feed(Command("ch1", "c1", 3, Charge("vas", 300, "RUB")), 4)  # a resend: duplicate
    feed(Command("ch1", "c1", 3, Charge("vas", 999, "RUB")), 5)  # another payload: conflict
    feed(Command("z", "c1", 3, Charge("vas", 0, "RUB")), 6)  # invalid: never remembered
    feed(Command("h1", "c1", 7, Hold("hold-1", "vas", 200, "RUB", 100)), 7)
    feed(Command("cf1", "c1", 200, ConfirmHold("hold-1", None)), 200)  # expired first
    rb.feed(Record(t, 0, 99, 201, b"c1", b"garbage"))
    wallet = rb.states[("autoru", "c1")].wallet
    assert wallet is not None
    assert (wallet.available_minor, wallet.held_minor) == (700, 0)
    assert wallet.version == 5  # registered, adjusted, charged, held, expired
    hold = rb.states[("autoru", "c1")].holds["hold-1"]
    assert hold.status == "expired"
    assert rb.counts["duplicate"] == 1
    assert rb.counts["idempotency_conflict"] == 1
    assert rb.counts["invalid"] == 1
    assert rb.counts["hold_expired"] == 1
    assert rb.counts["poison"] == 1
