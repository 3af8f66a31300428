"""The `billy` command: run roles, prepare the database and topics, read wallets.

    billy run [--roles ledger,relay,sweeper,api]   every role in one process (local use)
    billy ledger | relay | sweeper | api           one role per process (production)
    billy migrate                                  apply database migrations
    billy topics                                   create topics from schemas/topics (idempotent)
    billy wallet TENANT CLIENT                     a wallet and its open holds
    billy applied-services TENANT CLIENT [--from ISO --to ISO] [--limit N]
    billy demo                                     a few clients funded, charged, held, refunded

Exit codes: 0 ok, 1 failure at run time, 2 bad arguments or settings (with the field named).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time

from pydantic import ValidationError

ROLES = ("ledger", "relay", "sweeper", "api")
_STARTUP_WAIT_S = 120


def _settings():
    from billy_core.settings import load

    try:
        return load()
    except ValidationError as exc:
        for err in exc.errors():
            field = "BILLY_" + "_".join(str(p) for p in err["loc"]).upper()
            print(f"billy: setting {field}: {err['msg']}", file=sys.stderr)
        raise SystemExit(2) from None


def prepare(settings) -> None:
    """Choose the codec framing, migrate the database and create missing topics; waits
    (bounded) for PostgreSQL and Kafka to answer."""
    import sqlalchemy.exc
    from confluent_kafka import KafkaException

    from billy_core.codec import configure
    from billy_core.kafka.admin import ensure_topics
    from billy_core.store import migrate

    configure(settings.schema_registry_url)
    # A role may start while PostgreSQL or the broker is still coming up: wait for them,
    # within a bound, rather than exit at once.
    deadline = time.monotonic() + _STARTUP_WAIT_S
    while True:
        try:
            migrate.upgrade(settings.sqlalchemy_url)
            ensure_topics(settings)
            return
        except (sqlalchemy.exc.OperationalError, KafkaException) as exc:
            if time.monotonic() > deadline:
                raise
            logging.getLogger("billy").warning("waiting for PostgreSQL and Kafka: %s", exc)
            time.sleep(2)


def _run_roles(settings, roles: list[str]) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    prepare(settings)
    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, addr=settings.api_host)
    threads = []
    failures: list[BaseException] = []
    for role in roles:
        target = role_target(settings, role)

        def guarded(target=target, role=role):
            try:
                target(stop)
            except BaseException as exc:  # a role that dies takes the process down
                logging.getLogger("billy").exception("role %s failed", role)
                failures.append(exc)
                stop.set()

        thread = threading.Thread(target=guarded, name=f"billy-{role}", daemon=True)
        thread.start()
        threads.append(thread)
    while not stop.wait(0.5):
        pass
    for thread in threads:
        thread.join(timeout=30)
    return 1 if failures else 0


def role_target(settings, role: str):
    """The callable `run(stop: threading.Event)` of one role; imports only that role."""
    if role == "ledger":
        from consumers.ledger.app import LedgerConsumer

        return LedgerConsumer(settings).run
    if role == "relay":
        from consumers.relay.app import Relay

        return Relay(settings).run
    if role == "sweeper":
        from consumers.sync.hold_expiry import HoldSweeper

        return HoldSweeper(settings).run
    if role == "api":
        from billy_core.api.server import serve

        return lambda stop: serve(settings, stop)
    raise SystemExit(f"billy: unknown role {role!r}; choose from {', '.join(ROLES)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="billy", description=__doc__.split("\n")[0])
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="every role in one process")
    run.add_argument("--roles", default=",".join(ROLES), help=f"comma list of {', '.join(ROLES)}")
    for role in ROLES:
        sub.add_parser(role, help=f"the {role} role alone")
    sub.add_parser("migrate", help="apply database migrations")
    sub.add_parser("topics", help="create billy's topics (idempotent)")
    wallet = sub.add_parser("wallet", help="show a wallet and its open holds")
    wallet.add_argument("tenant")
    wallet.add_argument("client")
    applied = sub.add_parser("applied-services", help="list a client's applied services")
    applied.add_argument("tenant")
    applied.add_argument("client")
    applied.add_argument("--from", dest="since", help="ISO time, inclusive")
    applied.add_argument("--to", dest="until", help="ISO time, exclusive")
    applied.add_argument("--limit", type=int, default=100)
    demo = sub.add_parser("demo", help="run billy and a short demo workload")
    demo.add_argument("--tenant", default="autoru")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    settings = _settings()
    if args.command == "run":
        roles = [r.strip() for r in args.roles.split(",") if r.strip()]
        for role in roles:
            if role not in ROLES:
                parser.error(f"--roles: unknown role {role!r}; choose from {', '.join(ROLES)}")
        return _run_roles(settings, roles)
    if args.command in ROLES:
        return _run_roles(settings, [args.command])
    if args.command == "migrate":
        from billy_core.store import migrate

        migrate.upgrade(settings.sqlalchemy_url)
        return 0
    if args.command == "topics":
        from billy_core.kafka.admin import ensure_topics

        for line in ensure_topics(settings):
            print(line)
        return 0
    if args.command == "wallet":
        from billy_core import reads

        return reads.print_wallet(settings, args.tenant, args.client)
    if args.command == "applied-services":
        from billy_core import reads

        return reads.print_applied_services(
            settings, args.tenant, args.client, args.since, args.until, args.limit
        )
    if args.command == "demo":
        from billy_core.demo import run_demo

        return run_demo(settings, args.tenant)
    return 2


if __name__ == "__main__":
    sys.exit(main())
