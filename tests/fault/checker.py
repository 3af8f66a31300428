"""Reads everything back after a fault run and checks TESTING.md's invariants.

Inputs are read from the command topics, outputs from the output topics (read_committed) and
the database. A pure reference model (tests/unit/reference_model.py) replays each client's
commands in the order the ledger must apply them and predicts every result.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import psycopg
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from billy_core.codec import decode_applied_service, decode_result, decode_wallet_snapshot
from billy_core.commands import Command, ConfirmHold, ExpireHold, ReleaseHold, expire_command_id
from billy_core.idempotency import payload_hash
from billy_core.kafka import config as kafka_config
from billy_core.kafka.topics import TopicNames
from billy_core.results import Code, Status
from billy_core.settings import Settings
from billy_core.stream import Poison, Record
from consumers.ledger.decode import Decoded, decode
from tests.unit.reference_model import ReferenceModel


@dataclass
class Report:
    violations: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    counts: Counter = field(default_factory=Counter)

    def fail(self, invariant: str, message: str) -> None:
        if len(self.violations[invariant]) < 20:  # enough to debug, not a flood
            self.violations[invariant].append(message)
        self.counts[f"violations {invariant}"] += 1

    @property
    def total_violations(self) -> int:
        return sum(v for k, v in self.counts.items() if k.startswith("violations"))


def read_topics(settings: Settings, topics: list[str], timeout_s: float = 120.0) -> list:
    """Every committed record of `topics`, from the beginning to the end."""
    consumer = Consumer(
        {**kafka_config.reader(settings, "fault-checker"), "enable.partition.eof": True}
    )
    try:
        parts = []
        metadata = consumer.list_topics(timeout=30).topics
        for topic in topics:
            parts += [
                TopicPartition(topic, p, OFFSET_BEGINNING) for p in metadata[topic].partitions
            ]
        consumer.assign(parts)
        waiting = {(tp.topic, tp.partition) for tp in parts}
        records = []
        deadline = time.monotonic() + timeout_s
        while waiting:
            if time.monotonic() > deadline:
                raise TimeoutError(f"end of {sorted(waiting)} not reached")
            for m in consumer.consume(1000, 0.5):
                if m.error() is not None:
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        waiting.discard((m.topic(), m.partition()))
                        continue
                    raise RuntimeError(str(m.error()))
                records.append(m)
        return records
    finally:
        consumer.close()


def end_offsets(settings: Settings, topics: list[str]) -> dict[tuple[str, int], int]:
    consumer = Consumer(kafka_config.reader(settings, "fault-checker-ends"))
    try:
        metadata = consumer.list_topics(timeout=30).topics
        ends = {}
        for topic in topics:
            for p in metadata[topic].partitions:
                ends[(topic, p)] = consumer.get_watermark_offsets(TopicPartition(topic, p), 30)[1]
        return ends
    finally:
        consumer.close()


# Errors a broker answers while it settles after a restart: ask again later.
_SETTLING = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
    }
)


def is_quiet(settings: Settings, topics: TopicNames, tenants) -> tuple[bool, str]:
    """Invariant 10's condition: no lag, an empty outbox."""
    inputs = [topics.commands(t) for t in tenants] + [topics.admin_commands]
    try:
        ends = end_offsets(settings, inputs)
    except KafkaException as exc:
        # Right after a broker restart leadership may still be moving (NOT_LEADER_FOR_PARTITION):
        # the question is asked again, not answered with a crash.
        error = exc.args[0] if exc.args else None
        if isinstance(error, KafkaError) and (error.retriable() or error.code() in _SETTLING):
            return False, f"broker not ready: {error.str()}"
        raise
    with psycopg.connect(settings.database_url) as conn:
        stored = dict(
            ((t, p), o)
            for t, p, o in conn.execute(
                "SELECT topic, partition, next_offset FROM consumer_offsets"
                " WHERE consumer_group = %s",
                (settings.ledger_group,),
            )
        )
        outbox = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
    lag = sum(
        max(0, end - stored.get(tp, 0))
        for tp, end in ends.items()
        if end > 0 and stored.get(tp, 0) < end
    )
    # A partition ending in transaction markers only never reaches `end` by records; the
    # workload producer is not transactional, so here end == the next record's offset.
    return lag == 0 and outbox == 0, f"lag {lag}, outbox {outbox}"


def check(
    settings: Settings,
    topics: TopicNames,
    tenants: tuple[str, ...],
    main_start: dict[tuple[str, int], int],
) -> Report:
    report = Report()
    inputs = read_topics(settings, [topics.commands(t) for t in tenants] + [topics.admin_commands])
    results = read_topics(settings, [topics.results(t) for t in tenants] + [topics.admin_results])
    applied = read_topics(settings, [topics.applied_services])
    wallets = read_topics(settings, [topics.wallets])
    dlq = read_topics(settings, [topics.dlq])
    report.counts.update(
        inputs=len(inputs),
        results=len(results),
        applied=len(applied),
        wallet_snapshots=len(wallets),
        dlq=len(dlq),
    )

    # --- classify inputs; order each client's commands as the ledger must apply them ------
    per_client: dict[tuple[str, str], list[tuple[tuple, Decoded]]] = defaultdict(list)
    poison: set[tuple[str, int, int]] = set()
    for m in inputs:
        record = Record(m.topic(), m.partition(), m.offset(), m.timestamp()[1], m.key(), m.value())
        item = decode(record, topics, frozenset(tenants))
        if isinstance(item, Poison):
            poison.add((m.topic(), m.partition(), m.offset()))
            continue
        if item.admin:
            order = (1, m.offset())
        else:
            order = (
                0 if m.offset() < main_start.get((m.topic(), m.partition()), 0) else 2,
                m.offset(),
            )
        per_client[(item.tenant, item.command.client_id)].append((order, item))
    report.counts["poison inputs"] = len(poison)

    by_event: dict[str, list] = defaultdict(list)
    for m in results:
        by_event[dict(m.headers())["billy-event-id"].decode()].append(m)

    # --- 4 and 7: one result per record, as the reference model predicts --------------------
    expected_lines: dict[tuple[str, str], tuple] = {}
    fresh_ids = 0
    for (tenant, client), items in per_client.items():
        model = ReferenceModel()
        seen: dict[str, tuple[bytes, object]] = {}
        for _, d in sorted(items, key=lambda x: x[0]):
            r, command = d.record, d.command
            fresh_ids += _check_expiry_first(report, model, d, seen, by_event)
            event = f"result:{r.topic}:{r.partition}:{r.offset}"
            got = by_event.pop(event, [])
            if len(got) != 1:
                report.fail("4 one result per record", f"{event}: {len(got)} results")
                if not got:
                    continue
            actual = decode_result(got[0].value())
            digest = payload_hash(command)
            prior = seen.get(command.command_id)
            available, held = model.balances(tenant, client)
            version = model.version(tenant, client)
            if prior is not None and prior[0] == digest:
                want = (*prior[1], True)
            elif prior is not None:
                want = (Status.REJECTED, Code.IDEMPOTENCY_CONFLICT, available, held, version, False)
            elif d.invalid is not None:
                # Invalid: never remembered; the wallet's figures when the client id is sound.
                figures = (available, held, version) if d.client_sound else (0, 0, 0)
                want = (Status.REJECTED, Code.INVALID, *figures, False)
            else:
                outcome = model.step(tenant, command, r.timestamp_ms)
                want = (
                    outcome.status,
                    outcome.code,
                    outcome.available_minor,
                    outcome.held_minor,
                    outcome.version,
                    False,
                )
                seen[command.command_id] = (digest, want[:5])
                fresh_ids += 1
                for kind, product, amount, currency, refund_of in outcome.lines:
                    expected_lines[(tenant, command.command_id)] = (
                        kind,
                        product,
                        amount,
                        currency,
                        refund_of,
                    )
            have = (
                actual.status,
                actual.code,
                actual.available_minor,
                actual.held_minor,
                actual.wallet_version,
                actual.duplicate,
            )
            if tuple(map(str, have)) != tuple(map(str, want)):
                report.fail(
                    "7 reference model agrees",
                    f"{tenant}/{client} {command.kind} {command.command_id}: "
                    f"billy {have} model {want}",
                )
            report.counts[f"code {actual.code}"] += 1
            if actual.duplicate:
                report.counts["duplicates answered"] += 1
    for event in by_event:
        report.fail("4 one result per record", f"{event}: result for no input record")
    report.counts["fresh commands"] = fresh_ids

    # --- 6: per client, results in input order and versions only grow ----------------------
    last: dict[bytes, tuple[int, int]] = {}
    for m in results:
        event_id = dict(m.headers())["billy-event-id"].decode()
        if not event_id.startswith("result:"):
            continue  # a hold's expiry event: checked in order with the command it preceded
        _, topic, partition, offset = event_id.rsplit(":", 3)
        result = decode_result(m.value())
        if result.duplicate:  # the stored result, replayed as it was: an older version
            continue
        version = result.wallet_version
        key = (topic + "|").encode() + m.key()
        prev = last.get(key)
        if prev is not None and (int(offset) <= prev[0] or version < prev[1]):
            report.fail("6 per-client order", f"{m.key()!r}: offset {offset} after {prev}")
        last[key] = (int(offset), version)

    # --- 5: each applied charge or refund exactly once in the applied-services log ---------
    seen_lines = Counter()
    for m in applied:
        line = decode_applied_service(m.value())
        seen_lines[(line.tenant, line.command_id)] += 1
        want = expected_lines.get((line.tenant, line.command_id))
        have = (str(line.kind), line.product_id, line.amount_minor, line.currency, line.refund_of)
        if want is None or tuple(map(str, want)) != tuple(map(str, have)):
            report.fail("5 applied services once", f"{line.command_id}: {have} expected {want}")
    for key in expected_lines:
        if seen_lines[key] != 1:
            report.fail("5 applied services once", f"{key}: {seen_lines[key]} log records")

    # --- 1, 2, 3 and 6 against the database -------------------------------------------------
    with psycopg.connect(settings.database_url) as conn:
        _check_database(conn, report, fresh_ids)
        db_wallets = {
            (t, c): (a, h, v)
            for t, c, a, h, v in conn.execute(
                "SELECT tenant, client_id, available_minor, held_minor, version FROM wallets"
            )
        }
    latest = {}
    for m in wallets:
        snap = decode_wallet_snapshot(m.value())
        if snap.wallet_version >= latest.get((snap.tenant, snap.client_id), (0, 0, 0))[2]:
            latest[(snap.tenant, snap.client_id)] = (
                snap.available_minor,
                snap.held_minor,
                snap.wallet_version,
            )
    for key, row in db_wallets.items():
        if latest.get(key) != row:
            report.fail(
                "6 wallet topic equals database", f"{key}: topic {latest.get(key)} db {row}"
            )

    # --- 9: every poison record in the DLQ, once, with its origin ---------------------------
    origins = Counter()
    for m in dlq:
        h = {k: v.decode() for k, v in m.headers()}
        origins[
            (
                h["billy-source-topic"],
                int(h["billy-source-partition"]),
                int(h["billy-source-offset"]),
            )
        ] += 1
        if not h.get("billy-dlq-reason"):
            report.fail("9 poison in DLQ", f"DLQ record without a reason: {h}")
    if set(origins) != poison or any(n != 1 for n in origins.values()):
        report.fail(
            "9 poison in DLQ",
            f"{len(poison)} poison inputs, DLQ origins {len(origins)},"
            f" repeated {sum(n > 1 for n in origins.values())}",
        )
    return report


def _check_expiry_first(report, model, d, seen, by_event) -> int:
    """A confirm or release that finds its hold open but past expires_at is preceded by the
    hold's expiry, an event of its own with its own result (`expiry:<namespace>:<id>`)."""
    body, r = d.command.body, d.record
    if d.invalid is not None or not isinstance(body, ConfirmHold | ReleaseHold):
        return 0
    tenant, client = d.tenant, d.command.client_id
    if d.command.command_id in seen:
        return 0  # a resend or a conflict: the shell decides nothing for it
    hold = model._hold(tenant, client, body.hold_id)
    if hold is None or hold[3] != "open" or r.timestamp_ms < hold[2]:
        return 0
    expiry_id = expire_command_id(client, body.hold_id)
    expiry = Command(expiry_id, client, r.timestamp_ms, ExpireHold(body.hold_id))
    event = f"expiry:{d.namespace}:{expiry.command_id}"
    got = by_event.pop(event, [])
    if len(got) != 1:
        report.fail("4 one result per record", f"{event}: {len(got)} expiry results")
    outcome = model.step(tenant, expiry, r.timestamp_ms)
    want = (
        outcome.status,
        outcome.code,
        outcome.available_minor,
        outcome.held_minor,
        outcome.version,
    )
    seen[expiry.command_id] = (payload_hash(expiry), want)
    report.counts["expiries before a command"] += 1
    if got:
        actual = decode_result(got[0].value())
        have = (
            actual.status,
            actual.code,
            actual.available_minor,
            actual.held_minor,
            actual.wallet_version,
        )
        if tuple(map(str, have)) != tuple(map(str, want)):
            report.fail("7 reference model agrees", f"{event}: billy {have} model {want}")
    return 1


def _check_database(conn: psycopg.Connection, report: Report, fresh_ids: int) -> None:
    # 1: every wallet's cached balance equals the sum of its entries.
    rows = conn.execute("""
        WITH moves AS (
            SELECT target AS account, amount_minor AS delta FROM transfers
            UNION ALL SELECT source, -amount_minor FROM transfers)
        SELECT w.tenant, w.client_id, w.available_minor, w.held_minor,
               coalesce((SELECT sum(delta) FROM moves
                  WHERE account = 'w:' || w.tenant || '/' || w.client_id || ':available'), 0),
               coalesce((SELECT sum(delta) FROM moves
                         WHERE account = 'w:' || w.tenant || '/' || w.client_id || ':held'), 0),
               coalesce((SELECT sum(amount_minor) FROM holds h WHERE h.tenant = w.tenant
                         AND h.client_id = w.client_id AND h.status = 'open'), 0)
        FROM wallets w""").fetchall()
    for tenant, client, available, held, sum_available, sum_held, open_holds in rows:
        if (available, held) != (sum_available, sum_held):
            report.fail(
                "1 double entry",
                f"{tenant}/{client}: cached {(available, held)}"
                f" entries {(sum_available, sum_held)}",
            )
        if held != open_holds:
            report.fail("3 holds", f"{tenant}/{client}: held {held} open holds {open_holds}")
    report.counts["wallets"] = len(rows)
    # 2: a command id is applied at most once (one processed row, its transfers once).
    processed = conn.execute("SELECT count(*) FROM processed_commands").fetchone()[0]
    if processed != fresh_ids:
        report.fail("2 applied once", f"{processed} processed rows, {fresh_ids} fresh commands")
    twice = conn.execute("""
        SELECT count(*) FROM (SELECT tenant, command_id, source, target FROM transfers
        GROUP BY 1, 2, 3, 4 HAVING count(*) > 1) x""").fetchone()[0]
    if twice:
        report.fail("2 applied once", f"{twice} commands with a repeated transfer")
    # 3: holds settle once and never confirm more than they held (constraints back this).
    bad = conn.execute("""SELECT count(*) FROM holds WHERE confirmed_minor > amount_minor
        OR (status = 'open') <> (settled_by IS NULL)""").fetchone()[0]
    if bad:
        report.fail("3 holds", f"{bad} holds break the settle rules")
    report.counts["transfers"] = conn.execute("SELECT count(*) FROM transfers").fetchone()[0]
