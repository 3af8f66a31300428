"""The operator commands, added to the `billy` group by `register(main)`.

    billy tail TOPIC [--from X] [--to Y] [--client C] [--follow] [--partition P]...
    billy decode [FILE|-] [--hex]            one value (Avro single-object, JSON...) as JSON
    billy offsets show [--group G]           stored positions, Kafka's mirror, end, lag
    billy offsets set TOPIC PARTITION OFFSET [--execute] [--allow-skip]
    billy dlq list [--tenant T] [--reason R] [--from X] [--json]
    billy dlq show PARTITION:OFFSET
    billy dlq redrive PARTITION:OFFSET [--value-file F | --value-hex H] [--execute] [--force]
    billy replay TOPIC [--from X] [--to Y] [--partition P]... [--execute]
    billy rebuild [--keep] [--limit N]

Positions (--from/--to): beginning, end, an offset, -N (the last N per partition), or an
ISO 8601 time. Every command that changes something is a dry run unless --execute.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from billy.ops import reading

_POSITION_HELP = "beginning, end, OFFSET, -N (last N) or an ISO time"


def _position(value: str | None) -> reading.Position | None:
    if value is None:
        return None
    try:
        return reading.Position.parse(value)
    except reading.BadPosition as exc:
        raise click.BadParameter(str(exc)) from None


def register(
    main: click.Group, pass_context: Callable[[Callable[..., None]], Callable[..., None]]
) -> None:
    """Add the operator commands to `main`; `pass_context` gives them the settings."""

    @main.command(help="Print a topic's records as JSON lines (Avro decoded, headers shown).")
    @click.argument("topic")
    @click.option("--from", "since", default="beginning", show_default=True, help=_POSITION_HELP)
    @click.option("--to", "until", default=None, help=_POSITION_HELP + " (exclusive)")
    @click.option("--client", default=None, help="only records whose key is this client")
    @click.option("--partition", "partitions", type=int, multiple=True)
    @click.option("--follow", "-f", is_flag=True, help="keep waiting for new records")
    @click.option("--limit", type=int, default=None, help="stop after this many lines")
    @pass_context
    def tail(
        ctx: Any,
        topic: str,
        since: str,
        until: str | None,
        client: str | None,
        partitions: tuple[int, ...],
        follow: bool,
        limit: int | None,
    ) -> None:
        from billy.ops.decode import line

        start = _position(since) or reading.Position("beginning")
        shown = 0
        try:
            for record in reading.read(
                ctx.settings,
                topic,
                start=start,
                end=_position(until),
                follow=follow,
                partitions=list(partitions) or None,
                purpose="tail",
            ):
                if client is not None:  # keys are `<client>` or `<tenant>/<client>`
                    key = record.key.decode("utf-8", "replace") if record.key else ""
                    if key != client and key.rpartition("/")[2] != client:
                        continue
                click.echo(line(record))
                shown += 1
                if limit is not None and shown >= limit:
                    break
        except KeyboardInterrupt:
            pass

    @main.command(help="Decode one value (a file, or stdin) and print it as JSON.")
    @click.argument("source", type=click.File("rb"), default="-")
    @click.option("--hex", "as_hex", is_flag=True, help="the input is hex text")
    def decode(source: Any, as_hex: bool) -> None:
        from billy.ops.decode import decode_value

        data = source.read()
        if as_hex:
            data = bytes.fromhex(data.decode().strip())
        click.echo(json.dumps(decode_value(data), ensure_ascii=False, indent=2))

    @main.group(help="Stored positions (PostgreSQL, the truth) and Kafka's mirror of them.")
    def offsets() -> None:
        pass

    @offsets.command(name="show", help="Stored position, Kafka group offset, end and lag.")
    @click.option("--group", default=None, help="default: the ledger's group")
    @pass_context
    def offsets_show(ctx: Any, group: str | None) -> None:
        from billy.ops import offsets as ops

        raise SystemExit(ops.show(ctx.settings, group or ctx.settings.ledger_group))

    @offsets.command(name="set", help="Move a stored position (compare-and-set; dry run first).")
    @click.argument("topic")
    @click.argument("partition", type=int)
    @click.argument("offset", type=int)
    @click.option("--group", default=None, help="default: the ledger's group")
    @click.option("--execute", is_flag=True)
    @click.option("--allow-skip", is_flag=True, help="allow moving forwards (records skipped)")
    @pass_context
    def offsets_set(
        ctx: Any,
        topic: str,
        partition: int,
        offset: int,
        group: str | None,
        execute: bool,
        allow_skip: bool,
    ) -> None:
        from billy.ops import offsets as ops

        group = group or ctx.settings.ledger_group
        raise SystemExit(
            ops.set_position(
                ctx.settings, group, topic, partition, offset, execute=execute,
                allow_skip=allow_skip,
            )
        )  # fmt: skip

    @main.group(help="Dead letters: list, show, redrive.")
    def dlq() -> None:
        pass

    @dlq.command(name="list", help="Dead letters: name, age, origin, reason.")
    @click.option("--tenant", default=None)
    @click.option("--reason", default=None, help="substring of the reason")
    @click.option("--from", "since", default="beginning", show_default=True, help=_POSITION_HELP)
    @click.option("--json", "as_json", is_flag=True)
    @pass_context
    def dlq_list(
        ctx: Any, tenant: str | None, reason: str | None, since: str, as_json: bool
    ) -> None:
        from billy.ops import dlq as ops

        start = _position(since) or reading.Position("beginning")
        raise SystemExit(
            ops.list_letters(ctx.settings, start=start, tenant=tenant, reason=reason,
                             as_json=as_json)
        )  # fmt: skip

    @dlq.command(name="show", help="One dead letter in full, and whether it decodes now.")
    @click.argument("name")
    @pass_context
    def dlq_show(ctx: Any, name: str) -> None:
        from billy.ops import dlq as ops

        raise SystemExit(ops.show(ctx.settings, name))

    @dlq.command(name="redrive", help="Send a dead letter back to its source topic, once.")
    @click.argument("name")
    @click.option("--value-file", type=click.File("rb"), default=None, help="fixed value bytes")
    @click.option("--value-hex", default=None, help="fixed value bytes, as hex")
    @click.option("--execute", is_flag=True)
    @click.option("--force", is_flag=True, help="send even if the command is already applied")
    @pass_context
    def dlq_redrive(
        ctx: Any,
        name: str,
        value_file: Any,
        value_hex: str | None,
        execute: bool,
        force: bool,
    ) -> None:
        from billy.ops import dlq as ops

        value = None
        if value_file is not None:
            value = value_file.read()
        elif value_hex is not None:
            value = bytes.fromhex(value_hex)
        fixed = value_file is not None or value_hex is not None
        raise SystemExit(
            ops.redrive(ctx.settings, name, value=value, fixed=fixed, execute=execute,
                        force=force)
        )  # fmt: skip

    @main.command(help="Re-feed a command topic range through the live system (dry run first).")
    @click.argument("topic")
    @click.option("--from", "since", default="beginning", show_default=True, help=_POSITION_HELP)
    @click.option("--to", "until", default=None, help=_POSITION_HELP + " (exclusive)")
    @click.option("--partition", "partitions", type=int, multiple=True)
    @click.option("--execute", is_flag=True)
    @pass_context
    def replay(
        ctx: Any,
        topic: str,
        since: str,
        until: str | None,
        partitions: tuple[int, ...],
        execute: bool,
    ) -> None:
        from billy.ops import replay as ops

        raise SystemExit(
            ops.replay(
                ctx.settings,
                topic,
                start=_position(since) or reading.Position("beginning"),
                end=_position(until),
                partitions=list(partitions) or None,
                execute=execute,
            )
        )

    @main.command(help="Recompute every wallet from the command topics; diff with the live tables.")
    @click.option("--keep", is_flag=True, help="keep the scratch schema billy_rebuild_<pid>")
    @click.option("--limit", type=int, default=100, show_default=True, help="differences shown")
    @pass_context
    def rebuild(ctx: Any, keep: bool, limit: int) -> None:
        from billy.ops import rebuild as ops

        try:
            report = ops.rebuild(ctx.settings, keep=keep, limit=limit, progress=sys.stderr.isatty())
        except ops.HistoryGone as exc:
            click.echo(f"billy rebuild: {exc}", err=True)
            raise SystemExit(2) from None
        raise SystemExit(ops.print_report(report))
