"""`billy replay TOPIC`: re-feed a range of a command topic through the live system.

Each record of the range (by offsets or by time, `--from`/`--to`, optionally some
partitions) is produced again to the same topic and partition, with its key, value, headers
and original timestamp, plus `billy-replay-of: <topic>:<partition>:<offset>`. The ledger then
applies it like any record, and idempotency makes that harmless: a command it remembers is
answered with its stored result, `duplicate = true`, and changes nothing.

What is not remembered is answered as it was the first time and changes nothing either: an
invalid command (`invalid` again), another payload under a used id (`idempotency_conflict`
again), a poison record (a new DLQ copy). Only a command the ledger never applied (its id
in neither `processed_commands` nor `balance_pending`) would change something: the dry run
(the default) classifies every record of the range with the ledger's own decoder against
the database, prints those, and says what would happen; `--execute` sends.
"""

from __future__ import annotations

from collections import Counter

import click
import psycopg
from confluent_kafka import Producer

from billy.ops import reading
from billy_core.idempotency import payload_hash
from billy_core.kafka import config as kafka_config
from billy_core.kafka.logs import KAFKA_LOG
from billy_core.kafka.topics import TopicNames
from billy_core.settings import Settings
from billy_core.stream.record import Poison, Record
from consumers.ledger.decode import decode

REPLAY_OF = "billy-replay-of"
_SHOW_MAX = 20


def classify(
    settings: Settings, records: list[Record]
) -> tuple[Counter[str], list[tuple[Record, str]]]:
    """What replaying each record would do, by the ledger's rules; and the records that
    would change something (never applied before)."""
    topics = TopicNames(settings.topic_prefix)
    tenants = frozenset(settings.tenants)
    decoded = [(r, decode(r, topics, tenants)) for r in records]
    ids = {(d.namespace, d.command.command_id) for _, d in decoded if not isinstance(d, Poison)}
    known: dict[tuple[str, str], bytes] = {}
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        for table in ("processed_commands", "balance_pending"):
            tenants_col, ids_col = [t for t, _ in ids], [c for _, c in ids]
            rows = conn.execute(
                f"SELECT p.tenant, p.command_id, p.payload_hash FROM {table} p"
                " JOIN unnest(%s::text[], %s::text[]) AS k(tenant, command_id)"
                " USING (tenant, command_id)",
                (tenants_col, ids_col),
            ).fetchall()
            known.update({(t, c): bytes(h) for t, c, h in rows})
    counts: Counter[str] = Counter()
    fresh: list[tuple[Record, str]] = []
    for record, d in decoded:
        if isinstance(d, Poison):
            counts["poison (a new DLQ copy)"] += 1
        elif d.invalid is not None:
            counts["invalid (answered invalid again)"] += 1
        else:
            stored = known.get((d.namespace, d.command.command_id))
            if stored is None:
                counts["never applied: WOULD APPLY NOW"] += 1
                fresh.append((record, d.command.command_id))
            elif stored == payload_hash(d.command):
                counts["duplicate (stored result, duplicate=true)"] += 1
            else:
                counts["idempotency_conflict (answered again)"] += 1
    return counts, fresh


def replay(
    settings: Settings,
    topic: str,
    *,
    start: reading.Position,
    end: reading.Position | None,
    partitions: list[int] | None,
    execute: bool,
) -> int:
    if TopicNames(settings.topic_prefix).tenant_of(topic) is None:
        raise click.BadParameter(f"{topic!r} is not one of billy's command topics")
    records = list(
        reading.read(settings, topic, start=start, end=end, partitions=partitions, purpose="replay")
    )
    counts, fresh = classify(settings, records)
    click.echo(f"{len(records)} records in the range of {topic}:")
    for what, n in sorted(counts.items()):
        click.echo(f"  {n:>8}  {what}")
    for record, command_id in fresh[:_SHOW_MAX]:
        click.echo(f"  would apply: {record.partition}@{record.offset} command {command_id}")
    if not execute:
        click.echo("dry run: nothing sent (--execute sends)")
        return 0
    producer = Producer(kafka_config.plain_producer(settings, "billy-replay"), logger=KAFKA_LOG)
    failed: list[str] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            failed.append(str(err))

    for r in records:
        if r.timestamp_ms < 0:
            continue  # cannot be produced again without one (poison: its DLQ copy exists)
        while True:
            try:
                producer.produce(
                    topic,
                    key=r.key,
                    value=r.value,
                    partition=r.partition,  # same partition: the client's order is kept
                    headers=[*r.headers, (REPLAY_OF, f"{topic}:{r.partition}:{r.offset}".encode())],
                    timestamp=max(r.timestamp_ms, 0),
                    on_delivery=on_delivery,
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(60)
    if failed or left:
        click.echo(f"replay incomplete: {len(failed)} failed, {left} unconfirmed", err=True)
        return 1
    click.echo(f"replayed {len(records)} records to {topic}")
    return 0
