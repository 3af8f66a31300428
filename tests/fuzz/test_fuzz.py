"""The fuzz tier (issue 10, item 6): bad records of every kind, interleaved with good commands,
through the real broker into billy running as supervised processes (ledger, relay, sweeper),
spoken to only in wire bytes. Checks:

- every good command answered once and right (its code, in order per client);
- every bad record either REJECTED (a result with its command_id) or dead-lettered (a DLQ
  entry whose source headers name it), once, never both: lost = 0, doubled = 0;
- no role restarted (every process started once, no unplanned exit);
- no partition stalled: every stored position at its partition's end.

Profiles (BILLY_FUZZ_PROFILE): `short` (CI, part of `make test`, about a minute) and `long`
(on demand, >= 10,000 bad records, every control character in every text field). The report,
counts per kind, lands in .state/fuzz-reports/<profile>-latest.json and is printed.

BILLY_DLQ_RATIO_MAX is 0.95 here: the fuzz proves the route of each bad record, not the
poison cap (which has its own tests: tests/contract/test_bad_input_flood.py).
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from tests.contract import wire
from tests.fault.processes import Supervisor
from tests.fuzz.generate import KINDS, Generator, Sent

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PROFILE = os.environ.get("BILLY_FUZZ_PROFILE", "short")
PROFILES: dict[str, dict[str, Any]] = {
    "short": {"good_clients": 150, "bad": 4_000, "seed": 10, "all_control_chars": True},
    "long": {"good_clients": 1_000, "bad": 15_000, "seed": 11, "all_control_chars": True},
}
WEIGHTS = {  # bad records per kind, relative
    "random_bytes": 10,
    "bit_flip": 14,
    "truncation": 8,
    "extreme_value": 10,
    "huge_string": 6,
    "control_char": 14,
    "oversized_key": 3,
    "oversized_headers": 3,
    "wrong_schema": 3,
    "not_utf8_key": 3,
    "tombstone": 3,
    "key_mismatch": 5,
    "admin_garbage": 3,
    "admin_invalid": 3,
}
PARTITIONS = 3
QUIET_S = 90.0  # give up when nothing new arrives for this long


def _security() -> dict[str, str]:
    try:
        from tests.contract.conftest import kafka_security  # type: ignore[attr-defined]
    except ImportError:
        return {}
    return dict(kafka_security())


def _records(profile: dict[str, Any]) -> tuple[list[Sent], list[list[Sent]]]:
    """The bad records and the good sequences, interleaved into one sending order later."""
    gen = Generator(profile["seed"])
    good = gen.good(profile["good_clients"])
    bad: list[Sent] = []
    if profile["all_control_chars"]:
        bad += gen.every_control_char_in_every_field()
    rng = random.Random(profile["seed"])
    kinds, weights = zip(*WEIGHTS.items(), strict=True)
    while len(bad) < profile["bad"]:
        bad.append(gen.bad(rng.choices(kinds, weights)[0]))
    assert set(WEIGHTS) == set(KINDS)
    return bad, good


def _interleave(bad: list[Sent], good: list[list[Sent]], seed: int) -> list[Sent]:
    rng = random.Random(seed)
    queues = [list(reversed(q)) for q in good] + [list(reversed(bad))]
    out: list[Sent] = []
    while queues:  # each next record from a queue chosen by what it has left: well mixed
        queue = rng.choices(queues, weights=[len(q) for q in queues])[0]
        out.append(queue.pop())
        if not queue:
            queues = [q for q in queues if q]
    return out


def _wait_for_topics(bootstrap: str, prefix: str, timeout_s: float = 120) -> None:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "fz-meta", **_security()})
    wanted = [f"{prefix}.{t}" for t in ("autoru.commands", "admin.commands", "dlq")]
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            topics = consumer.list_topics(timeout=10).topics
            if all(t in topics and len(topics[t].partitions) == PARTITIONS for t in wanted):
                return
            assert time.monotonic() < deadline, "billy did not create its topics"
            time.sleep(0.5)
    finally:
        consumer.close()


def _send(bootstrap: str, prefix: str, records: list[Sent]) -> None:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",  # Java's default, as the contract asks
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": "lz4",
            "message.max.bytes": 4_000_000,  # the broker judges the compressed batch
            "linger.ms": 5,
            **_security(),
        }
    )
    failed: list[str] = []

    def delivered(sent: Sent, error: Any, message: Any) -> None:
        if error is not None:
            failed.append(f"{sent.kind}: {error}")
        else:
            sent.partition, sent.offset = message.partition(), message.offset()

    for sent in records:
        alone = sent.size > 100_000  # a big record in a batch of its own: the broker judges
        if alone:  # the compressed batch against its limit, a record at a time is safe
            producer.flush(60)
        while True:
            try:
                producer.produce(
                    f"{prefix}.{sent.topic}",
                    key=sent.key,
                    value=sent.value,
                    headers=sent.headers or None,
                    on_delivery=lambda e, m, s=sent: delivered(s, e, m),
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        if alone:
            producer.flush(60)
    assert producer.flush(120) == 0
    assert not failed, failed[:5]


class Outputs:
    """Every result and DLQ entry billy published, indexed the ways the checks need."""

    def __init__(self) -> None:
        self.results: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        self.dlq: dict[tuple[str, int, int], int] = Counter()
        self.null_results = 0
        self.dlq_stand_ins = 0  # DLQ copies too big to send, replaced by bounded stand-ins
        self.shortened_ids = 0  # results whose command_id or client_id was shortened
        self.count = 0

    def add(self, prefix: str, m: Any) -> None:
        self.count += 1
        topic = m.topic()[len(prefix) + 1 :]
        if topic == "dlq":
            h = dict(m.headers() or [])
            origin = h["billy-source-topic"].decode()[len(prefix) + 1 :]
            self.dlq_stand_ins += "billy-dlq-omitted" in h
            self.dlq[(origin, int(h["billy-source-partition"]), int(h["billy-source-offset"]))] += 1
        elif m.value() is None:
            self.null_results += 1  # a stand-in: never expected for a result
        else:
            r = wire.decode(m.value(), "Result")
            self.shortened_ids += "...sha256:" in r["command_id"] + r["client_id"]
            self.results[(topic, r["command_id"])].append(r)


def _read(bootstrap: str, prefix: str, done: Any, out: Outputs) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"fz-{uuid.uuid4().hex}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            **_security(),
        }
    )
    try:
        names = [f"{prefix}.{t}" for t in ("autoru.results", "admin.results", "dlq")]
        meta = consumer.list_topics(timeout=10).topics
        consumer.assign(
            [TopicPartition(n, p, OFFSET_BEGINNING) for n in names for p in meta[n].partitions]
        )
        last_new = time.monotonic()
        while not done(out):
            assert time.monotonic() - last_new < QUIET_S, "outputs stopped before all came"
            for m in consumer.consume(1000, 0.5):
                if m.error() is None:
                    out.add(prefix, m)
                    last_new = time.monotonic()
        end = time.monotonic() + 3  # anything doubled would show now
        while time.monotonic() < end:
            for m in consumer.consume(1000, 0.5):
                if m.error() is None:
                    out.add(prefix, m)
    finally:
        consumer.close()


def _results_topic(sent: Sent) -> str:
    return "admin.results" if sent.topic == "admin.commands" else "autoru.results"


def _judge(sent: Sent, out: Outputs) -> str:
    """What happened to a bad record: rejected, applied, dead_lettered, lost or doubled."""
    origin = (sent.topic, sent.partition, sent.offset)
    dead = out.dlq.get(origin, 0)
    answered = out.results.get((_results_topic(sent), sent.command_id or ""), [])
    if sent.kind == "admin_garbage":  # dead-lettered and answered as dlq:<partition>:<offset>
        answer = out.results.get(("admin.results", f"dlq:{sent.partition}:{sent.offset}"), [])
        return {(1, 1): "dead_lettered", (0, 0): "lost"}.get((dead, len(answer)), "doubled")
    if sent.expect == "dlq" or (sent.expect == "either" and not answered):
        return {0: "lost", 1: "dead_lettered"}.get(dead, "doubled") if not answered else "doubled"
    if dead or len(answered) > 1:
        return "doubled"
    if not answered:
        return "lost"
    if sent.expect == "result" and answered[0]["status"] != "REJECTED":
        return "wrongly_applied"
    return "rejected" if answered[0]["status"] == "REJECTED" else "applied"


def _stalled(database_url: str, bootstrap: str, prefix: str) -> dict[str, int]:
    """Records behind per command topic: stored positions against high watermarks."""
    with psycopg.connect(database_url) as conn:
        stored = {
            (t, p): o
            for t, p, o in conn.execute(
                "SELECT topic, partition, next_offset FROM consumer_offsets"
                " WHERE consumer_group = %s",
                (f"{prefix}-ledger",),
            ).fetchall()
        }
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "fz-lag", **_security()})
    behind: dict[str, int] = {}
    try:
        for short in ("autoru.commands", "realty.commands", "admin.commands"):
            name = f"{prefix}.{short}"
            for p in range(PARTITIONS):
                _, high = consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)
                behind[short] = behind.get(short, 0) + max(0, high - stored.get((name, p), 0))
    finally:
        consumer.close()
    return behind


@pytest.mark.timeout(3600 if PROFILE == "long" else 600)
def test_fuzz(stack: dict[str, str], fresh_database: str, tmp_path: Path) -> None:
    profile = PROFILES[PROFILE]
    bad, good = _records(profile)
    records = _interleave(bad, good, profile["seed"])
    prefix = f"z{uuid.uuid4().hex[:10]}"
    bootstrap = stack["kafka"]
    env = {
        "BILLY_KAFKA_BOOTSTRAP": bootstrap,
        "BILLY_DATABASE_URL": fresh_database,
        "BILLY_TOPIC_PREFIX": prefix,
        "BILLY_LEDGER_GROUP": f"{prefix}-ledger",
        "BILLY_TENANTS": "autoru,realty",
        "BILLY_TOPIC_PARTITIONS_MAX": str(PARTITIONS),
        "BILLY_BATCH_WAIT_MS": "10",
        "BILLY_BALANCE_GATEWAY": "false",
        "BILLY_DLQ_RATIO_MAX": "0.95",
    }
    supervisor = Supervisor(env, tmp_path)
    started = time.monotonic()
    try:
        for role in ("ledger", "relay", "sweeper"):
            supervisor.start(role, role)
        _wait_for_topics(bootstrap, prefix)
        _send(bootstrap, prefix, records)
        sent_s = time.monotonic() - started
        wanted_answers = Counter(s.command_id for s in records if s.expect == "good")

        def done(out: Outputs) -> bool:
            if any(
                len(out.results.get(("autoru.results", cid or ""), [])) < n
                for cid, n in wanted_answers.items()
            ):
                return False
            return all(_judge(s, out) != "lost" for s in bad)

        out = Outputs()
        _read(bootstrap, prefix, done, out)
        behind = _stalled(fresh_database, bootstrap, prefix)
        roles = {
            name: {"starts": r.starts, "unplanned_exits": list(r.unplanned_exits)}
            for name, r in supervisor.roles.items()
        }
    finally:
        supervisor.close()
    elapsed_s = time.monotonic() - started

    # Good commands: answered once and right, in order per client.
    wrong_good: list[str] = []
    for sequence in good:
        reg, charge, release, _ = sequence
        got = {
            s.command_id: out.results.get(("autoru.results", s.command_id or ""), [])
            for s in (reg, charge, release)
        }
        answers = [
            [(r["status"], r["code"], r["duplicate"]) for r in got[s.command_id]]
            for s in (reg, charge, release)
        ]
        wanted = [
            [reg.good_answer, sequence[3].good_answer],
            [charge.good_answer],
            [release.good_answer],
        ]
        if answers != wanted:
            wrong_good.append(f"{reg.key!r}: {answers}")

    counts: dict[str, Counter[str]] = defaultdict(Counter)
    trouble: list[dict[str, Any]] = []  # what went wrong, a few of each, for the report
    for sent in bad:
        verdict = _judge(sent, out)
        counts[sent.kind]["sent"] += 1
        counts[sent.kind][verdict] += 1
        if verdict in ("lost", "doubled", "wrongly_applied") and len(trouble) < 20:
            answered = out.results.get((_results_topic(sent), sent.command_id or ""), [])
            trouble.append(
                {
                    "kind": sent.kind,
                    "verdict": verdict,
                    "command_id": (sent.command_id or "")[:80],
                    "origin": [sent.topic, sent.partition, sent.offset],
                    "answers": [(r["status"], r["code"], r["message"][:120]) for r in answered],
                }
            )
    totals: Counter[str] = Counter()
    for c in counts.values():
        totals.update(c)
    report = {
        "profile": PROFILE,
        "bad records": len(bad),
        "good commands": sum(len(s) for s in good),
        "largest record (bytes)": max(s.size for s in records),
        "per kind": {k: dict(v) for k, v in sorted(counts.items())},
        "totals": dict(totals),
        "good answered wrong or not once": len(wrong_good),
        "trouble": trouble,
        "null-valued results (stand-ins)": out.null_results,
        "DLQ stand-ins (copies over 900 KiB)": out.dlq_stand_ins,
        "results with shortened ids": out.shortened_ids,
        "roles": roles,
        "records behind at the end": behind,
        "sending took (s)": round(sent_s, 1),
        "run took (s)": round(elapsed_s, 1),
    }
    reports = REPO / ".state" / "fuzz-reports"
    reports.mkdir(parents=True, exist_ok=True)
    (reports / f"{PROFILE}-latest.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))

    assert not wrong_good, wrong_good[:5]
    assert totals["lost"] == totals["doubled"] == totals["wrongly_applied"] == 0, report
    assert out.null_results == 0
    assert all(r["starts"] == 1 and not r["unplanned_exits"] for r in roles.values()), roles
    assert not any(behind.values()), behind
