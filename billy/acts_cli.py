"""Consumption, acts and reconciliation commands, added to the `billy` group by `register`.

    billy consumption report [--month YYYY-MM] [--timeout-s S]
        count the ledger's revenue up to the month's end (or now, for the month under way),
        report it to Balance and wait until Balance accepted every report of the month: run it
        right before Balance closes the month.
    billy reconcile --month YYYY-MM [--no-import]
        import the month's acts from Balance (each once), reconcile every client with an act
        or with revenue in the month against the ledger, publish what is new or changed, and
        print the table. Exit code 0 when every client matches, 3 when one differs.
    billy acts TENANT CLIENT
        a client's imported acts with their reconciliation status.

Month: YYYY-MM in Balance's time zone (Moscow), default the month under way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

EXIT_DIFFERENCES = 3


def _month(value: str | None) -> str:
    from billy_core.acts import months

    if value is None:
        import datetime as dt

        return months.month_of(dt.datetime.now(dt.UTC))
    try:
        return months.parse_month(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--month") from None


def register(
    main: click.Group, pass_context: Callable[[Callable[..., None]], Callable[..., None]]
) -> None:
    @main.group(help="Consumption reports to Balance (UpdateCampaigns).")
    def consumption() -> None:
        pass

    @consumption.command(
        name="report", help="Report consumption now and wait until Balance accepted it."
    )
    @click.option("--month", default=None, help="YYYY-MM (default: the month under way)")
    @click.option("--timeout-s", type=click.FloatRange(min=1), default=300, show_default=True)
    @pass_context
    def consumption_report(ctx: Any, month: str | None, timeout_s: float) -> None:
        import psycopg

        from jobs.balance_jobs import balance_client
        from jobs.consumption import ConsumptionReporter

        settings = ctx.settings
        chosen = _month(month)
        reporter = ConsumptionReporter(settings, balance_client(settings))
        with psycopg.connect(settings.database_url, autocommit=True, connect_timeout=10) as conn:
            try:
                counted, sent = reporter.report_month(conn, chosen, timeout_s)
            except TimeoutError as exc:
                click.echo(f"billy: consumption of {chosen} not reported: {exc}", err=True)
                raise SystemExit(1) from None
        click.echo(
            f"consumption {chosen}: counted up to {counted.isoformat()}; sent now: accepted"
            f" {sent.accepted}, refused {sent.refused}, failed {sent.failed};"
            f" every report of {chosen} is accepted by Balance"
        )

    @main.command(help="Import a month's acts and reconcile them against the ledger.")
    @click.option("--month", default=None, help="YYYY-MM (default: the month under way)")
    @click.option("--no-import", is_flag=True, help="only reconcile the acts already imported")
    @pass_context
    def reconcile(ctx: Any, month: str | None, no_import: bool) -> None:
        import psycopg

        from billy_core.money import Money
        from jobs.acts import ActsImporter
        from jobs.balance_jobs import balance_client

        settings = ctx.settings
        chosen = _month(month)
        importer = ActsImporter(settings, balance_client(settings))
        with psycopg.connect(settings.database_url, autocommit=True, connect_timeout=10) as conn:
            if not no_import:
                imported = importer.import_month(conn, chosen)
                click.echo(
                    f"acts {chosen}: {imported.new_acts} new from {imported.clients} client(s)"
                )
                for failure in imported.failures:
                    click.echo(f"  not read now: {failure}", err=True)
            lines = importer.reconcile_month(conn, chosen)
        if not lines:
            click.echo(f"reconcile {chosen}: no client has an act or revenue in the month")
            return
        header = ("client", "act", "ledger", "difference", "status")
        rows = [
            (
                f"{x.tenant}/{x.client_id}",
                str(Money(x.act_minor, x.currency)),
                str(Money(x.ledger_minor, x.currency)),
                str(Money(x.difference_minor, x.currency)),
                x.status,
            )
            for x in lines
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        differing = [x for x in lines if x.difference_minor]
        click.echo(
            f"reconcile {chosen}: {len(lines)} client(s), {len(differing)} with a difference"
        )
        if differing:
            raise SystemExit(EXIT_DIFFERENCES)

    @main.command(help="List a client's acts with their reconciliation status.")
    @click.argument("tenant")
    @click.argument("client")
    @pass_context
    def acts(ctx: Any, tenant: str, client: str) -> None:
        from billy_core.acts.reads import print_acts

        raise SystemExit(print_acts(ctx.settings, tenant, client))
