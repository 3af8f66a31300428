"""The `billy` command (click): run roles, prepare the database and topics, read wallets.

    billy run [--roles ledger,relay,sweeper,api]   every role in one process (local use)
    billy ledger | relay | sweeper | api           one role per process (production)
    billy migrate                                  apply database migrations
    billy topics                                   create topics from schemas/topics (idempotent)
    billy wallet TENANT CLIENT                     a wallet and its open holds
    billy applied-services TENANT CLIENT [--from ISO --to ISO] [--limit N]
    billy adjustments TENANT CLIENT                the billing team's corrections (audit)
    billy balance TENANT CLIENT                    Balance ids, payers, contracts, invoices
    billy consumption report [--month M]          report to Balance now, wait until accepted
    billy reconcile --month M                      import a month's acts, reconcile, print
    billy acts TENANT CLIENT                       a client's acts and reconciliation status
    billy demo                                     a few clients funded, charged, held, refunded
    billy tail | decode | offsets | dlq | replay | rebuild    operator tools (billy/ops/cli.py)
    billy tenants add|list|remove|rotate-token     onboarding: topics, credentials, ACLs, token
    billy security init                            principals of the roles, billing, warehouse

Exit codes: 0 ok, 1 failure at run time, 2 bad arguments or settings (the field named).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click
from pydantic import ValidationError

from billy.acts_cli import register as register_acts
from billy.ops.cli import register as register_ops
from billy.roles import ROLES, StartupError, run_roles
from billy_core.settings import Settings, load

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


class _Context:
    """Settings are loaded on first use, so `billy --help` works with bad settings."""

    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load()
            except ValidationError as exc:
                for err in exc.errors():
                    name = "BILLY_" + "_".join(str(p) for p in err["loc"]).upper()
                    click.echo(f"billy: setting {name}: {err['msg']}", err=True)
                raise SystemExit(2) from None
        return self._settings


pass_context = click.make_pass_decorator(_Context, ensure=True)


class _Billy(click.Group):
    """Dependencies that do not answer end an operator's command with one line naming the
    setting that points at them, not a traceback (roles have their own waits and logs)."""

    def invoke(self, ctx: click.Context) -> object:
        import psycopg
        from confluent_kafka import KafkaException

        try:
            return super().invoke(ctx)
        except KafkaException as exc:
            click.echo(f"billy: Kafka (BILLY_KAFKA_BOOTSTRAP): {exc.args[0]}", err=True)
        except psycopg.OperationalError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            click.echo(f"billy: PostgreSQL (BILLY_DATABASE_URL): {first}", err=True)
        raise SystemExit(1)


@click.group(cls=_Billy, help=__doc__.split("\n")[0] if __doc__ else None)
@click.option(
    "--log-level",
    default="INFO",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
    show_default=True,
)
@click.option(
    "--log-format",
    default="json",
    envvar="BILLY_LOG_FORMAT",
    type=click.Choice(["json", "text"]),
    show_default=True,
    help="json: one object a line (billy_core.ops.logs)",
)
def main(log_level: str, log_format: str) -> None:
    from billy_core.ops import logs

    logs.configure(log_level, json_lines=log_format == "json")


def _run(ctx: _Context, roles: list[str]) -> None:
    try:
        code = run_roles(ctx.settings, roles)
    except StartupError as exc:
        click.echo(f"billy: {exc}", err=True)
        raise SystemExit(1) from None
    raise SystemExit(code)


def _roles_option(value: str) -> list[str]:
    roles = [r.strip() for r in value.split(",") if r.strip()]
    for role in roles:
        if role not in ROLES:
            raise click.BadParameter(f"unknown role {role!r}; choose from {', '.join(ROLES)}")
    return roles


@main.command(help="Every role in one process (local use).")
@click.option("--roles", default=",".join(ROLES), show_default=True, help="comma list of roles")
@pass_context
def run(ctx: _Context, roles: str) -> None:
    _run(ctx, _roles_option(roles))


def _role_command(role: str) -> click.Command:
    @click.command(name=role, help=f"The {role} role alone (one role per process).")
    @pass_context
    def command(ctx: _Context) -> None:
        _run(ctx, [role])

    return command


for _role in ROLES:
    main.add_command(_role_command(_role))


@main.command(
    name="resume-partition",
    help="Resume a partition the poison cap paused: its records up to the partition's end"
    " now are applied or dead-lettered without the cap (nothing is skipped).",
)
@click.argument("topic")
@click.argument("partition", type=click.IntRange(min=0))
@click.option("--group", default=None, help="consumer group (default: BILLY_LEDGER_GROUP)")
@pass_context
def resume_partition(ctx: _Context, topic: str, partition: int, group: str | None) -> None:
    import psycopg
    from confluent_kafka import Consumer, TopicPartition

    from billy_core.kafka import config as kafka_config
    from billy_core.stream import positions

    settings = ctx.settings
    group = group or settings.ledger_group
    consumer = Consumer(kafka_config.reader(settings, group_id=f"{group}-resume"))
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
    finally:
        consumer.close()
    with psycopg.connect(settings.database_url) as conn:
        through = positions.request_resume(conn, group, topic, partition, high)
    click.echo(
        f"{topic}/{partition}: group {group} resumes within a few seconds; records below offset"
        f" {through} are applied or dead-lettered without the poison cap"
    )


@main.command(help="Apply database migrations (once, under a lock).")
@pass_context
def migrate(ctx: _Context) -> None:
    from billy_core.store import migrate as migrations

    migrations.upgrade(ctx.settings.sqlalchemy_url)


@main.command(help="Create billy's topics from schemas/topics (idempotent).")
@pass_context
def topics(ctx: _Context) -> None:
    from billy_core.kafka.admin import ensure_topics

    for line in ensure_topics(ctx.settings):
        click.echo(line)


@main.command(help="Show a wallet and its open holds.")
@click.argument("tenant")
@click.argument("client")
@pass_context
def wallet(ctx: _Context, tenant: str, client: str) -> None:
    from billy_core import reads

    raise SystemExit(reads.print_wallet(ctx.settings, tenant, client))


@main.command(help="Show what Balance holds for a client: ids, payers, contracts, invoices.")
@click.argument("tenant")
@click.argument("client")
@pass_context
def balance(ctx: _Context, tenant: str, client: str) -> None:
    from billy_core import reads

    raise SystemExit(reads.print_balance(ctx.settings, tenant, client))


@main.command(help="List a client's payments from Balance (amount, time, invoice, Tid).")
@click.argument("tenant")
@click.argument("client")
@pass_context
def payments(ctx: _Context, tenant: str, client: str) -> None:
    from billy_core import payment_reads

    raise SystemExit(payment_reads.print_payments(ctx.settings, tenant, client))


@main.command(help="List a client's corrections by the billing team (operator, reason).")
@click.argument("tenant")
@click.argument("client")
@pass_context
def adjustments(ctx: _Context, tenant: str, client: str) -> None:
    from billy_core import reads

    raise SystemExit(reads.print_adjustments(ctx.settings, tenant, client))


@main.command(name="applied-services", help="List a client's applied services.")
@click.argument("tenant")
@click.argument("client")
@click.option("--from", "since", help="ISO time, inclusive")
@click.option("--to", "until", help="ISO time, exclusive")
@click.option("--limit", type=int, default=100, show_default=True)
@pass_context
def applied_services(
    ctx: _Context, tenant: str, client: str, since: str | None, until: str | None, limit: int
) -> None:
    from billy_core import reads

    raise SystemExit(
        reads.print_applied_services(ctx.settings, tenant, client, since, until, limit)
    )


@main.command(help="Run billy with a short demo workload, in a database and topics of its own.")
@click.option("--tenant", default="autoru", show_default=True)
@pass_context
def demo(ctx: _Context, tenant: str) -> None:
    from billy.demo import run_demo

    try:
        raise SystemExit(run_demo(ctx.settings, tenant))
    except StartupError as exc:
        click.echo(f"billy: {exc}", err=True)
        raise SystemExit(1) from None


@main.group(help="Onboard and remove tenants: topics, Kafka credentials, ACLs, read tokens.")
def tenants() -> None:
    pass


def _security_engine(ctx: _Context) -> Engine:
    from billy_core import reads
    from billy_core.store import migrate as migrations

    migrations.upgrade(ctx.settings.sqlalchemy_url)
    return reads.create_engine_for(ctx.settings, pool_size=1)


@tenants.command(name="add", help="Create a tenant's topics, credentials, ACLs and read token.")
@click.argument("name")
@pass_context
def tenants_add(ctx: _Context, name: str) -> None:
    from billy_core.security import tenants as onboarding

    try:
        onboarding.check_name(name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="NAME") from None
    engine = _security_engine(ctx)
    try:
        done = onboarding.add(ctx.settings, engine, name)
    finally:
        engine.dispose()
    click.echo(f"tenant {name}: {done.acl_count} ACLs, topics ready")
    click.echo("Shown once; hand them to the tenant's service through a secret store:")
    click.echo(f"  kafka principal  {done.principal}  (SCRAM-SHA-512)")
    click.echo(f"  kafka password   {done.password}")
    click.echo(f"  read-API token   {done.token}")
    if name not in ctx.settings.tenants:
        click.echo(f"Add {name} to BILLY_TENANTS and restart the ledger to read its commands.")


@tenants.command(name="list", help="Tenants: onboarded, configured, live read tokens.")
@pass_context
def tenants_list(ctx: _Context) -> None:
    from billy_core.security import tenants as onboarding

    engine = _security_engine(ctx)
    try:
        rows = onboarding.listing(ctx.settings, engine)
    finally:
        engine.dispose()
    click.echo(f"{'tenant':<20} {'principal':<32} {'tokens':>6}  configured  onboarded")
    for r in rows:
        when = r.created_at.isoformat(timespec="seconds") if r.created_at else "-"
        configured = "yes" if r.configured else "no"
        click.echo(f"{r.tenant:<20} {r.principal:<32} {r.tokens_live:>6}  {configured:<10}  {when}")


@tenants.command(name="remove", help="Revoke a tenant: ACLs, credentials, tokens (data kept).")
@click.argument("name")
@pass_context
def tenants_remove(ctx: _Context, name: str) -> None:
    from billy_core.security import tenants as onboarding

    engine = _security_engine(ctx)
    try:
        gone = onboarding.remove(ctx.settings, engine, name)
    finally:
        engine.dispose()
    click.echo(
        f"tenant {name}: revoked {gone['acls']} ACLs, {gone['credentials']} credential,"
        f" {gone['tokens']} tokens; topics and ledger kept"
    )


@tenants.command(name="rotate-token", help="A new read token; old ones valid --overlap-s more.")
@click.argument("name")
@click.option("--overlap-s", type=click.FloatRange(min=0), default=3600.0, show_default=True)
@pass_context
def tenants_rotate_token(ctx: _Context, name: str, overlap_s: float) -> None:
    from billy_core.security import tenants as onboarding

    engine = _security_engine(ctx)
    try:
        token = onboarding.rotate_token(engine, name, overlap_s)
    finally:
        engine.dispose()
    click.echo(f"tenant {name}: new read-API token (shown once); old ones end in {overlap_s:g} s")
    click.echo(f"  {token}")


@main.group(help="Kafka principals of this deployment (needs BILLY_KAFKA_ADMIN_SASL_*).")
def security() -> None:
    pass


@security.command(name="init", help="Principals and ACLs of the roles, billing and warehouse.")
@click.option("--rotate", is_flag=True, help="New passwords for existing principals too")
@pass_context
def security_init(ctx: _Context, rotate: bool) -> None:
    from billy_core.security import tenants as onboarding

    made = onboarding.init_deployment(ctx.settings, rotate=rotate)
    click.echo(f"principals of deployment {ctx.settings.topic_prefix}: ACLs granted")
    if made:
        click.echo("New passwords, shown once (set BILLY_KAFKA_SASL_USERNAME/PASSWORD per role):")
    for principal, password in sorted(made.items()):
        click.echo(f"  {principal:<32} {password}")


register_ops(main, pass_context)
register_acts(main, pass_context)

if __name__ == "__main__":
    sys.exit(main())
