"""`billy dlq list|show|redrive`: the dead letters, and sending a fixed one back, once.

A DLQ record is an exact copy of the poison record (key, value, its headers first) plus
billy's headers: `billy-dlq-reason`, `billy-source-topic`, `-partition`, `-offset`,
`-timestamp-ms` (billy_core.stream.dlq). It is named `<partition>:<offset>` in the DLQ topic.

Redrive: the original key, the value (as it was: it decodes after a deploy; or fixed bytes
an operator gives with --value-file/--value-hex), the original headers without billy's, plus
`billy-redrive-of: <dlq topic>:<partition>:<offset>`, produced to the source topic with the
key's partition (the contract's partitioner) and the original timestamp (so a hold's
expiry is judged as it would have been). Before producing, the record is decoded exactly as
the ledger will (`consumers.ledger.decode`): still poison is refused (nothing is sent).

Exactly once: a redrive is a command like any other, so the ledger's idempotency applies
it at most once: a second redrive of the same record (or a resend) is answered
`duplicate = true` and changes nothing. `redrive` also looks the command id up first and
says "already applied" instead of sending again (override with --force).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import click
import psycopg
from confluent_kafka import KafkaError, Message, Producer, TopicPartition

from billy.ops import decode as render
from billy.ops import reading
from billy_core.kafka import config as kafka_config
from billy_core.kafka.logs import KAFKA_LOG
from billy_core.kafka.topics import TopicNames
from billy_core.settings import Settings
from billy_core.stream import dlq
from billy_core.stream.record import Header, Poison, Record
from consumers.ledger.decode import Decoded, decode

REDRIVE_OF = "billy-redrive-of"
OMITTED = "billy-dlq-omitted"  # an oversized record's bounded stand-in (schemas/topics/dlq.json)
_BILLY_HEADERS = frozenset({*dlq.HEADERS, "billy-event-id"})


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: Record  # as read from the DLQ topic

    def header(self, name: str) -> str | None:
        for key, value in reversed(self.record.headers):  # billy's come last
            if key == name:
                return None if value is None else value.decode("utf-8", "replace")
        return None

    @property
    def name(self) -> str:
        return f"{self.record.partition}:{self.record.offset}"

    @property
    def reason(self) -> str:
        return self.header(dlq.REASON) or "?"

    @property
    def source(self) -> tuple[str, int, int, int]:
        """(topic, partition, offset, timestamp ms) the record came from."""
        return (
            self.header(dlq.SOURCE_TOPIC) or "?",
            int(self.header(dlq.SOURCE_PARTITION) or -1),
            int(self.header(dlq.SOURCE_OFFSET) or -1),
            int(self.header(dlq.SOURCE_TIMESTAMP) or -1),
        )

    def original(self, value: bytes | None = None, *, fixed: bool = False) -> Record:
        """The source record again: its key, its value (or `value` when `fixed`), its own
        headers without billy's, plus where it was redriven from."""
        topic, partition, offset, ts = self.source
        own: list[Header] = [(k, v) for k, v in self.record.headers if k not in _BILLY_HEADERS]
        own.append((REDRIVE_OF, f"{self.record.topic}:{self.name}".encode()))
        return Record(
            topic,
            partition,
            offset,
            ts,
            self.record.key,
            value if fixed else self.record.value,
            tuple(own),
        )


def source_record(settings: Settings, letter: DeadLetter) -> Record:
    """The original record from its source topic (for a stand-in, whose copy is not exact)."""
    topic, partition, offset, _ = letter.source
    for record in reading.read(
        settings,
        topic,
        start=reading.Position("offset", offset),
        stop_at={partition: offset + 1},
        purpose="dlq",
    ):
        if record.offset == offset:
            return record
    raise click.ClickException(
        f"dlq {letter.name} is a stand-in and its original {topic}/{partition}@{offset} is"
        " gone (retention): redrive it with --value-file"
    )


def parse_name(name: str) -> tuple[int, int]:
    partition, sep, offset = name.partition(":")
    if not sep or not partition.isdigit() or not offset.isdigit():
        raise click.BadParameter(f"{name!r}: a DLQ record is named PARTITION:OFFSET (see dlq list)")
    return int(partition), int(offset)


def read_one(settings: Settings, name: str) -> DeadLetter:
    partition, offset = parse_name(name)
    topic = TopicNames(settings.topic_prefix).dlq
    for record in reading.read(
        settings,
        topic,
        start=reading.Position("offset", offset),
        stop_at={partition: offset + 1},
        purpose="dlq",
    ):
        if record.offset == offset:
            return DeadLetter(record)
    raise click.ClickException(f"no record {name} in {topic}")


def list_letters(
    settings: Settings,
    *,
    start: reading.Position,
    tenant: str | None,
    reason: str | None,
    as_json: bool,
) -> int:
    topics = TopicNames(settings.topic_prefix)
    now_ms = datetime.now(UTC).timestamp() * 1000
    shown = 0
    for record in reading.read(settings, topics.dlq, start=start, purpose="dlq"):
        letter = DeadLetter(record)
        source_topic, source_partition, source_offset, _ = letter.source
        if tenant is not None and topics.tenant_of(source_topic) != tenant:
            continue
        if reason is not None and reason.lower() not in letter.reason.lower():
            continue
        shown += 1
        age_s = (now_ms - record.timestamp_ms) / 1000 if record.timestamp_ms >= 0 else -1
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "dlq": letter.name,
                        "age_s": round(age_s),
                        "source": f"{source_topic}/{source_partition}/{source_offset}",
                        "reason": letter.reason,
                    }
                )
            )
        else:
            click.echo(
                f"{letter.name:>10}  {_age(age_s):>7}  "
                f"{source_topic}/{source_partition}@{source_offset}  {letter.reason}"
            )
    click.echo(f"{shown} dead letters", err=True)
    return 0


def _age(seconds: float) -> str:
    if seconds < 0:
        return "?"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def show(settings: Settings, name: str) -> int:
    letter = read_one(settings, name)
    out = render.render(letter.record)
    verdict = judge(settings, letter.original())
    out["redrive_now"] = verdict if isinstance(verdict, str) else "decodes: would be applied"
    click.echo(json.dumps(out, ensure_ascii=False, indent=2))
    return 0


def judge(settings: Settings, record: Record) -> Decoded | str:
    """The ledger's own verdict on the record (Decoded), or why it is still poison."""
    topics = TopicNames(settings.topic_prefix)
    decoded = decode(record, topics, frozenset(settings.tenants))
    if isinstance(decoded, Poison):
        return f"still poison: {decoded.reason}"
    return decoded


def already_applied(settings: Settings, decoded: Decoded) -> bool:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT 1 FROM processed_commands WHERE tenant = %s AND command_id = %s"
            " UNION ALL SELECT 1 FROM balance_pending WHERE tenant = %s AND command_id = %s",
            (decoded.namespace, decoded.command.command_id) * 2,
        ).fetchone()
    return row is not None


def redrive(
    settings: Settings,
    name: str,
    *,
    value: bytes | None,
    fixed: bool,
    execute: bool,
    force: bool,
) -> int:
    letter = read_one(settings, name)
    if letter.header(OMITTED) is not None and not fixed:  # a stand-in: take the original
        source = source_record(settings, letter)
        letter = DeadLetter(
            Record(letter.record.topic, letter.record.partition, letter.record.offset,
                   letter.record.timestamp_ms, source.key, source.value,
                   (*source.headers, *letter.record.headers))
        )  # fmt: skip
    record = letter.original(value, fixed=fixed)
    verdict = judge(settings, record)
    where = f"{record.topic} (key partition; was {record.partition}@{record.offset})"
    if isinstance(verdict, str):
        click.echo(f"refused: dlq {name} is {verdict}; fix the bytes (--value-file)", err=True)
        return 1
    command_id = verdict.command.command_id
    if already_applied(settings, verdict) and not force:
        click.echo(f"dlq {name}: command {command_id} is already applied; nothing sent")
        return 0
    if not execute:
        click.echo(f"dry run: would send dlq {name} (command {command_id}) to {where}")
        return 0
    producer = Producer(kafka_config.plain_producer(settings, "billy-redrive"), logger=KAFKA_LOG)
    delivered: list[TopicPartition] = []
    errors: list[str] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            delivered.append(
                TopicPartition(msg.topic() or "", msg.partition() or 0, msg.offset() or 0)
            )

    producer.produce(
        record.topic,
        key=record.key,
        value=record.value,
        headers=list(record.headers),
        timestamp=record.timestamp_ms if record.timestamp_ms >= 0 else 0,
        on_delivery=on_delivery,
    )
    producer.flush(30)
    if errors:
        raise click.ClickException(f"redrive not delivered: {errors[0]}")
    if not delivered:
        raise click.ClickException("redrive not confirmed by the broker within 30 s")
    tp = delivered[0]
    click.echo(
        f"redriven dlq {name} (command {command_id}) to {tp.topic}/{tp.partition}@{tp.offset}"
    )
    return 0
