"""`billy rebuild`: recompute every wallet from the retained command topics and compare it
with the live tables, client by client.

Design (deploy/RUNBOOK.md, "Rebuild"):

1. The cut. The ledger group's stored positions (`consumer_offsets`) say, per partition,
   exactly which records the live ledger has applied: offsets below `next_offset`. The
   rebuild reads each command partition (every tenant's and the admin topic) from its first
   retained offset up to that position, and nothing after it.
2. The decisions. Each record goes through the same code the live ledger runs, minus the
   I/O: `consumers.ledger.decode` (poison is skipped: it changed nothing; so is every record
   `billy.dlq` names as its source, such as values PostgreSQL refused), the expiry that
   a ConfirmHold/ReleaseHold finds due (`expiry_due`), then the pure core's `decide` on an
   in-memory `ClientState` per client, with the command ids seen so far standing in for
   `processed_commands` (duplicates and conflicts change nothing; invalid ones are never
   remembered). Within a partition, records go in offset order, as the ledger applies them;
   partitions are merged by record timestamp, which matters only for a client whose records
   sit on two partitions (the admin topic's Adjusts, or records off their key's partition):
   there the live order was the order the ledger happened to commit them in.
3. The comparison. The rebuilt wallets, holds and charges are COPYed into a scratch schema
   (`billy_rebuild_<pid>`, dropped afterwards unless `--keep`), and SQL compares them with
   the live tables (full outer joins, every column the core decides): a client missing on
   either side, or any differing value, is one difference, printed.
4. Consistency. The live tables must be at the cut: run it with the ledger stopped, or on a
   quiet system. The stored positions are read again in the comparing transaction; if the
   ledger moved meanwhile, the report says so (exit 3) rather than blame the ledger.

Not covered: money moved by the Balance gateway's outcomes (TransferCredit credits,
payments), which arrive on `<prefix>.internal.events`; with `balance_gateway` on, clients
with such credits differ by them. The commands topics' retention must cover the ledger's
whole history (they are kept forever in billy's topic specs) for a rebuild to be possible.

Exit codes (`print_report`): 0 no difference, 1 differences found, 2 the topics no longer
hold the whole history (`HistoryGone`), 3 the live tables moved during the rebuild.
"""

from __future__ import annotations

import heapq
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import click
import psycopg

from billy.ops import reading
from billy_core.commands import Command
from billy_core.idempotency import payload_hash
from billy_core.kafka.topics import ADMIN_TENANT, TopicNames
from billy_core.ledger import ClientState, Duplicate, decide, expiry_due
from billy_core.settings import Settings
from billy_core.stream import dlq
from billy_core.stream.record import Poison, Record
from consumers.ledger.balance_intents import without_gateway
from consumers.ledger.decode import Decoded, decode

if TYPE_CHECKING:
    from rich.progress import Progress

ClientKey = tuple[str, str]
TP = tuple[str, int]


@dataclass(slots=True)
class Rebuilder:
    """The ledger's decisions without I/O: feed records in the ledger's order."""

    topics: TopicNames
    tenants: frozenset[str]
    balance_gateway: bool = False
    states: dict[ClientKey, ClientState] = field(default_factory=dict)
    seen: dict[tuple[str, str], bytes] = field(default_factory=dict)  # id -> payload hash
    counts: Counter[str] = field(default_factory=Counter)
    # Records the live ledger dead-lettered (from billy.dlq's source headers): skipped, even
    # when they decode (PostgreSQL refused the values they carry).
    dead: frozenset[tuple[str, int, int]] = frozenset()

    def feed(self, record: Record) -> None:
        self.counts["records"] += 1
        if (record.topic, record.partition, record.offset) in self.dead:
            self.counts["poison"] += 1
            return
        d = decode(record, self.topics, self.tenants)
        if isinstance(d, Poison):
            self.counts["poison"] += 1
            return
        key = (d.tenant, d.command.client_id)
        state = None
        if d.client_sound:
            state = self.states.get(key)
            if state is None:
                state = self.states[key] = ClientState(tenant=key[0], client_id=key[1])
        fresh = d.invalid is None and (d.namespace, d.command.command_id) not in self.seen
        if state is not None and fresh:
            expiry = expiry_due(state, d.command, record.timestamp_ms)
            if expiry is not None:
                self._decide(d, expiry, state)
        self._decide(d, d.command, state)

    def _decide(self, d: Decoded, command: Command, state: ClientState | None) -> None:
        id_key = (d.namespace, command.command_id)
        invalid = d.invalid if command is d.command else None
        prior = None if invalid is not None else self.seen.get(id_key)
        if state is None:
            state = ClientState(tenant=d.tenant, client_id=command.client_id)
        decision = decide(state, command, d.record.timestamp_ms, invalid=invalid, prior_hash=prior)
        if isinstance(decision, Duplicate):
            self.counts["duplicate"] += 1
            return
        if decision.pending:
            if self.balance_gateway:  # answered later from the gateway's outcome
                self.counts["pending"] += 1
                self.seen[id_key] = payload_hash(command)
                return
            decision = without_gateway(command, decision)
        self.counts[decision.code.value] += 1
        if invalid is None and prior is None:
            self.seen[id_key] = payload_hash(command)


def command_topics(settings: Settings) -> list[str]:
    topics = TopicNames(settings.topic_prefix)
    return [topics.commands(t) for t in (*settings.tenants, ADMIN_TENANT)]


def stored_positions(conn: psycopg.Connection, group: str) -> dict[TP, int]:
    rows = conn.execute(
        "SELECT topic, partition, next_offset FROM consumer_offsets WHERE consumer_group = %s",
        (group,),
    ).fetchall()
    return {(t, p): int(o) for t, p, o in rows}


def _dead_lettered(settings: Settings, topics: TopicNames) -> Iterator[tuple[str, int, int]]:
    """(topic, partition, offset) of every record in the DLQ, by its billy-source-* headers."""
    for record in reading.read(settings, topics.dlq, purpose="rebuild"):
        found = dict(record.headers)
        try:
            yield (
                (found[dlq.SOURCE_TOPIC] or b"").decode(),
                int(found[dlq.SOURCE_PARTITION] or b"-1"),
                int(found[dlq.SOURCE_OFFSET] or b"-1"),
            )
        except (KeyError, ValueError):
            continue


class HistoryGone(Exception):
    """A partition's first retained offset is past 0: the rebuild cannot be complete."""


def _history_gone(settings: Settings, parts: dict[TP, int]) -> dict[TP, int]:
    c = reading.consumer(settings, "rebuild")
    try:
        lows = {tp: reading.watermarks(c, *tp)[0] for tp in parts}
    finally:
        c.close()
    return {tp: low for tp, low in lows.items() if low > 0}


def _merged(per_partition: list[list[Record]]) -> Iterator[Record]:
    """Offset order within a partition; by timestamp across partitions (stable)."""
    return heapq.merge(*per_partition, key=lambda r: r.timestamp_ms)


_SCRATCH_TABLES = {
    "wallets": "tenant text, client_id text, currency text, available_minor bigint,"
    " held_minor bigint, version bigint, PRIMARY KEY (tenant, client_id)",
    "holds": "tenant text, client_id text, hold_id text, product_id text, amount_minor bigint,"
    " currency text, expires_at_ms bigint, status text, confirmed_minor bigint,"
    " settled_by text, PRIMARY KEY (tenant, client_id, hold_id)",
    "charges": "tenant text, client_id text, command_id text, product_id text,"
    " amount_minor bigint, currency text, refunded_minor bigint,"
    " PRIMARY KEY (tenant, client_id, command_id)",
}
_KEYS = {
    "wallets": ("tenant", "client_id"),
    "holds": ("tenant", "client_id", "hold_id"),
    "charges": ("tenant", "client_id", "command_id"),
}
# Where each rebuilt table's live rows are: charges are the applied-services log's CHARGE rows.
_LIVE = {
    "wallets": "wallets",
    "holds": "holds",
    "charges": "applied_services WHERE kind = 'CHARGE'",
}


def _columns(table: str) -> list[str]:
    return [c.split()[0] for c in _SCRATCH_TABLES[table].split(", PRIMARY KEY")[0].split(", ")]


def write_scratch(
    conn: psycopg.Connection, schema: str, states: dict[ClientKey, ClientState]
) -> None:
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(f'CREATE SCHEMA "{schema}"')
        for table, columns in _SCRATCH_TABLES.items():
            cur.execute(f'CREATE TABLE "{schema}".{table} ({columns})')
        rows: dict[str, list[tuple[object, ...]]] = {t: [] for t in _SCRATCH_TABLES}
        for (tenant, client_id), st in states.items():
            w = st.wallet
            if w is None:
                continue
            rows["wallets"].append(
                (tenant, client_id, w.currency, w.available_minor, w.held_minor, w.version)
            )
            for h in st.holds.values():
                rows["holds"].append(
                    (tenant, client_id, h.hold_id, h.product_id, h.amount_minor, h.currency,
                     h.expires_at_ms, h.status, h.confirmed_minor, h.settled_by)
                )  # fmt: skip
            for c in st.charges.values():
                rows["charges"].append(
                    (tenant, client_id, c.command_id, c.product_id, c.amount_minor, c.currency,
                     c.refunded_minor)
                )  # fmt: skip
        for table, table_rows in rows.items():
            names = ", ".join(_columns(table))
            with cur.copy(f'COPY "{schema}".{table} ({names}) FROM STDIN') as copy:
                for row in table_rows:
                    copy.write_row(row)


def differences(conn: psycopg.Connection, schema: str, limit: int) -> list[str]:
    """Rows that differ between the live tables and the rebuilt ones, as printable lines."""
    found: list[str] = []
    for table in _SCRATCH_TABLES:
        keys = _KEYS[table]
        columns = _columns(table)
        values = [c for c in columns if c not in keys]
        live = ", ".join(f"l.{c}" for c in values)
        rebuilt = ", ".join(f"r.{c}" for c in values)
        key_sql = ", ".join(f"coalesce(l.{k}, r.{k})" for k in keys)
        on = " AND ".join(f"l.{k} = r.{k}" for k in keys)
        rows = conn.execute(
            f"SELECT {key_sql}, l.tenant IS NOT NULL, r.tenant IS NOT NULL,"
            f" json_build_array({live}), json_build_array({rebuilt})"
            f" FROM (SELECT {', '.join(columns)} FROM {_LIVE[table]}) l"
            f' FULL JOIN "{schema}".{table} r ON {on}'
            f" WHERE l.tenant IS NULL OR r.tenant IS NULL OR ({live}) IS DISTINCT FROM ({rebuilt})"
            f" ORDER BY 1, 2 LIMIT %s",
            (limit,),
        ).fetchall()
        for row in rows:
            where = "/".join(str(v) for v in row[: len(keys)])
            in_live, in_rebuilt, live_values, rebuilt_values = row[len(keys) :]
            if not in_live:
                found.append(f"{table} {where}: only in the rebuild {rebuilt_values}")
            elif not in_rebuilt:
                found.append(f"{table} {where}: only in the live table {live_values}")
            else:
                pairs = [
                    f"{name} live={a!r} rebuilt={b!r}"
                    for name, a, b in zip(values, live_values, rebuilt_values, strict=True)
                    if a != b
                ]
                found.append(f"{table} {where}: " + ", ".join(pairs))
    return found


@dataclass(slots=True)
class Report:
    records: int
    seconds: float
    decide_seconds: float
    clients: int
    differences: list[str]
    moved: bool
    counts: Counter[str]

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


def rebuild(
    settings: Settings, *, keep: bool = False, limit: int = 100, progress: bool = True
) -> Report:
    started = time.perf_counter()
    topics = TopicNames(settings.topic_prefix)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        cut = stored_positions(conn, settings.ledger_group)
    names = set(command_topics(settings))
    parts = {tp: end for tp, end in cut.items() if tp[0] in names and end > 0}
    gone = _history_gone(settings, parts)
    if gone:
        raise HistoryGone(
            "the topics no longer hold every applied record (retention): "
            + ", ".join(f"{t}/{p} starts at {low}" for (t, p), low in sorted(gone.items()))
        )
    total = sum(parts.values())
    by_partition: dict[TP, list[Record]] = {tp: [] for tp in parts}
    bar = _bar(progress)
    with bar:
        task = bar.add_task("reading commands", total=total)
        for topic in sorted({t for t, _ in parts}):
            ends = {p: end for (t, p), end in parts.items() if t == topic}
            for n, record in enumerate(
                reading.read(settings, topic, stop_at=ends, purpose="rebuild"), 1
            ):
                by_partition[(topic, record.partition)].append(record)
                if n % 1000 == 0:
                    bar.update(task, advance=1000)
            bar.update(task, completed=sum(len(r) for r in by_partition.values()))
    per_partition = [by_partition[tp] for tp in sorted(by_partition)]
    dead = frozenset(_dead_lettered(settings, topics))
    rebuilder = Rebuilder(topics, frozenset(settings.tenants), settings.balance_gateway, dead=dead)
    decide_started = time.perf_counter()
    for record in _merged(per_partition):
        rebuilder.feed(record)
    decide_seconds = time.perf_counter() - decide_started
    schema = f"billy_rebuild_{os.getpid()}"
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        write_scratch(conn, schema, rebuilder.states)
        try:
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                found = differences(conn, schema, limit)
                moved = stored_positions(conn, settings.ledger_group) != cut
        finally:
            if not keep:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    return Report(
        records=rebuilder.counts["records"],
        seconds=time.perf_counter() - started,
        decide_seconds=decide_seconds,
        clients=sum(1 for s in rebuilder.states.values() if s.wallet is not None),
        differences=found,
        moved=moved,
        counts=rebuilder.counts,
    )


def _bar(enabled: bool) -> Progress:
    """A progress bar with the count, the rate and the time left (on stderr)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class _Rate(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("" if speed is None else f"{speed:,.0f} records/s")

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _Rate(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )


def print_report(report: Report) -> int:
    click.echo(
        f"rebuilt {report.clients} wallets from {report.records} command records in"
        f" {report.seconds:.1f} s ({report.rate:,.0f} commands/s end to end; deciding alone"
        f" {report.records / report.decide_seconds if report.decide_seconds else 0:,.0f}/s)"
    )
    click.echo("outcomes: " + ", ".join(f"{k}={v}" for k, v in sorted(report.counts.items())))
    for line in report.differences:
        click.echo(f"DIFFERENCE {line}")
    click.echo(f"{len(report.differences)} differences")
    if report.moved:
        click.echo(
            "the ledger moved during the rebuild: run it with the ledger stopped or quiet",
            err=True,
        )
        return 3
    return 1 if report.differences else 0
