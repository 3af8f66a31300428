"""`billy offsets show|set`: where each partition resumes, billy's way.

PostgreSQL's `consumer_offsets` is the truth (the ledger's compare-and-set); the Kafka
group's offsets are a mirror for Kafka's tools (billy_core.stream.commit_kafka). `show`
prints both with the end of each partition and the lag. `set` moves a stored position with
the same compare-and-set the ledger uses, a dry run first:

- backwards: the records from the new position are read again; each is answered again
  (a remembered command with `duplicate = true`), nothing changes twice;
- forwards: the skipped records are never applied and never answered: refused unless
  `--allow-skip` (a poison flood that must be stepped over, say).

A running ledger notices at its partition's next batch (its compare-and-set fails: it
re-reads from the new position); restart the role to make it take effect at once.
"""

from __future__ import annotations

import click
import psycopg
from confluent_kafka import Consumer, KafkaException, TopicPartition

from billy.ops.reading import watermarks
from billy_core.kafka import config as kafka_config
from billy_core.kafka.logs import KAFKA_LOG
from billy_core.settings import Settings


def _group_reader(settings: Settings, group: str) -> Consumer:
    # Never subscribes and never commits: it only asks the group's committed offsets.
    config = kafka_config.reader(settings, group, "billy-offsets")
    return Consumer(config, logger=KAFKA_LOG)


def show(settings: Settings, group: str) -> int:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT topic, partition, next_offset, updated_at FROM consumer_offsets"
            " WHERE consumer_group = %s ORDER BY topic, partition",
            (group,),
        ).fetchall()
    if not rows:
        click.echo(f"no stored positions for group {group}")
        return 0
    c = _group_reader(settings, group)
    try:
        tps = [TopicPartition(t, p) for t, p, _, _ in rows]
        try:
            kafka = {(tp.topic, tp.partition): tp.offset for tp in c.committed(tps, timeout=10)}
        except KafkaException as exc:
            click.echo(f"cannot read the Kafka group's offsets: {exc}", err=True)
            kafka = {}
        click.echo(f"{'topic':<32} {'part':>4} {'stored':>10} {'kafka':>10} {'end':>10} {'lag':>8}")
        total = 0
        for topic, partition, stored, _ in rows:
            try:
                _, high = watermarks(c, topic, partition)
            except KafkaException:
                high = -1
            lag = max(0, high - stored) if high >= 0 else -1
            total += max(lag, 0)
            mirrored = kafka.get((topic, partition), -1)
            flag = "" if mirrored in (stored, -1) else "  (Kafka differs: billy overwrites it)"
            click.echo(
                f"{topic:<32} {partition:>4} {stored:>10} {_shown(mirrored):>10}"
                f" {_shown(high):>10} {_shown(lag):>8}{flag}"
            )
        click.echo(f"total lag {total}")
    finally:
        c.close()
    return 0


def _shown(value: int) -> str:
    return "-" if value < 0 else str(value)


def set_position(
    settings: Settings,
    group: str,
    topic: str,
    partition: int,
    offset: int,
    *,
    execute: bool,
    allow_skip: bool,
) -> int:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT next_offset FROM consumer_offsets"
            " WHERE consumer_group = %s AND topic = %s AND partition = %s",
            (group, topic, partition),
        ).fetchone()
        if row is None:
            click.echo(f"no stored position for {group} {topic}/{partition}", err=True)
            return 1
        current = int(row[0])
        if offset == current:
            click.echo(f"{topic}/{partition} already resumes at {offset}")
            return 0
        if offset > current:
            what = f"SKIPS {offset - current} records: never applied, never answered"
            if not allow_skip:
                click.echo(f"refused: {what} (--allow-skip to do it anyway)", err=True)
                return 1
        else:
            what = f"re-reads {current - offset} records: each answered again, nothing changes"
        click.echo(f"{group} {topic}/{partition}: {current} -> {offset}: {what}")
        if not execute:
            click.echo("dry run: nothing changed (--execute changes it)")
            return 0
        cur = conn.execute(
            "UPDATE consumer_offsets SET next_offset = %s, updated_at = now()"
            " WHERE consumer_group = %s AND topic = %s AND partition = %s AND next_offset = %s",
            (offset, group, topic, partition, current),
        )
        if cur.rowcount != 1:
            click.echo("the position moved meanwhile (the ledger is running): try again", err=True)
            return 1
    click.echo("done; a running ledger takes it at the partition's next batch")
    return 0
