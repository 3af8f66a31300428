"""Import Balance's acts after a month is closed, and reconcile them against the ledger.

    import:    per client registered in Balance, GetClientActs (no transaction open)
               -> one transaction: each new act stored (unique by act id) + a BalanceAct
                  record in the outbox (`<prefix>.acts`)
    reconcile: per client with an act or with revenue in the month, one transaction: the
               acts' sum against the ledger's revenue of the month -> `reconciliations` row
               + a Reconciliation record in the outbox (`<prefix>.reconciliation`) when it is
               new or its figures changed

The relay publishes both exactly once. The ledger side of a month is its revenue (charges
and confirmed holds, less refunds) applied within the month's bounds in Balance's time zone
(billy_core.acts.months), the same instants the month's consumption reports cover.

Balance makes all of a month's acts at once when it closes the month, and has no call that
says a month is closed: the periodic run (the sweeper role, every `acts_interval_s`) looks
at last month and reconciles it once it has found at least one act of it. `billy reconcile
--month` does both on demand, whether or not an act was found.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from billy_core import metrics, retry
from billy_core.acts import months, reconcile, wire
from billy_core.acts import store as acts_store
from billy_core.balance import Act, BalanceClient, BalanceError
from billy_core.kafka.topics import TopicNames
from billy_core.settings import Settings

log = logging.getLogger("billy.acts")

ROLE = "acts"  # in retry logs and billy_db_retries_total
Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class Imported:
    clients: int
    new_acts: int
    failures: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Line:
    """One client's month as `billy reconcile` prints it."""

    tenant: str
    client_id: str
    currency: str
    act_minor: int
    ledger_minor: int
    difference_minor: int
    act_count: int
    status: str


class ActsImporter:
    def __init__(
        self,
        settings: Settings,
        balance: BalanceClient,
        topics: TopicNames | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.settings = settings
        self.balance = balance
        self.topics = topics or TopicNames(settings.topic_prefix)
        self.clock = clock

    # --- the periodic job (the sweeper role) ----------------------------------------------
    def run(self, stop: threading.Event) -> None:
        # Not a health role: an hourly job would look stuck to liveness (300 s) and to
        # BillyRoleStuck; a failure here is logged and retried, and `billy reconcile` redoes it.
        conn: psycopg.Connection | None = None
        try:
            # The first look a minute after start (a role restarted more often than the
            # interval must still look), then every interval.
            wait_s = min(60.0, self.settings.acts_interval_s)
            while not stop.wait(wait_s):
                wait_s = self.settings.acts_interval_s
                for attempt in retry.transient(ROLE, "importing acts", stop_event=stop):
                    with attempt:
                        try:
                            if conn is None or conn.closed:
                                conn = psycopg.connect(
                                    self.settings.database_url, autocommit=True, connect_timeout=5
                                )
                            self.run_once(conn)
                        except psycopg.OperationalError:
                            conn = None
                            raise
        finally:
            if conn is not None:
                conn.close()

    def run_once(self, conn: psycopg.Connection) -> None:
        """Last month: import its acts; reconcile it once Balance has closed it."""
        month = months.previous_month(months.month_of(self.clock()))
        imported = self.import_month(conn, month)
        with conn.cursor() as cur:
            closed = acts_store.month_has_acts(cur, month)
        if closed:
            self.reconcile_month(conn, month)
        elif imported.clients:
            log.info("acts: no act of %s yet (is the month closed in Balance?)", month)

    # --- import -------------------------------------------------------------------------------
    def import_month(self, conn: psycopg.Connection, month: str) -> Imported:
        """Every client's acts of `month` stored and published once. A client whose acts
        cannot be read now is left for the next run (named in `failures`)."""
        months.parse_month(month)
        with conn.cursor() as cur:
            clients = acts_store.balance_clients(cur)
        new_acts, failures = 0, []
        for tenant, client_id, balance_client_id in clients:
            try:
                acts = self.balance.client_acts(balance_client_id)
            except BalanceError as exc:
                failures.append(f"{tenant}/{client_id}: {type(exc).__name__}: {exc}")
                log.warning("acts: GetClientActs failed for a client of %s: %s", tenant, exc)
                continue
            ours = [a for a in acts if f"{a.date.year:04d}-{a.date.month:02d}" == month]
            if ours:
                new_acts += self._store_acts(conn, (tenant, client_id), month, ours)
        metrics.acts_imported.inc(new_acts)
        if new_acts:
            log.info("acts: %d new act(s) of %s imported", new_acts, month)
        return Imported(len(clients), new_acts, tuple(failures))

    def _store_acts(
        self, conn: psycopg.Connection, key: acts_store.ClientKey, month: str, acts: list[Act]
    ) -> int:
        new = 0
        with conn.transaction(), conn.cursor() as cur:
            box = acts_store.outbox_for(cur, self.topics.prefix, key)
            for act in acts:
                imported_at = acts_store.insert_act(
                    cur,
                    key,
                    month,
                    act_id=act.act_id,
                    act_date=act.date,
                    external_id=act.external_id,
                    contract_id=act.contract_id,
                    amount_minor=act.amount_minor,
                    amount_nds_minor=act.amount_nds_minor,
                    paid_amount_minor=act.paid_amount_minor,
                    currency=act.currency,
                )
                if imported_at is None:
                    continue  # imported (and published) before
                record = wire.ActRecord(
                    tenant=key[0],
                    client_id=key[1],
                    act_id=act.act_id,
                    external_id=act.external_id,
                    month=month,
                    act_date=act.date,
                    contract_id=act.contract_id,
                    amount_minor=act.amount_minor,
                    amount_nds_minor=act.amount_nds_minor,
                    paid_amount_minor=act.paid_amount_minor,
                    currency=act.currency,
                    imported_at_ms=wire.to_ms(imported_at),
                )
                box.add(
                    self.topics.acts,
                    f"{key[0]}/{key[1]}",
                    wire.encode_act(record),
                    wire.act_event_id(act.act_id),
                )
                new += 1
            acts_store.finish_outbox(cur, box)
        return new

    # --- reconcile ----------------------------------------------------------------------------
    def reconcile_month(self, conn: psycopg.Connection, month: str) -> list[Line]:
        """Every client with an act or with revenue in `month`: act against ledger, stored
        and published when new or changed. Returns the month's table."""
        start, end = months.month_bounds(months.parse_month(month))
        with conn.cursor() as cur:
            clients = sorted(
                {
                    *acts_store.clients_with_acts(cur, month),
                    *acts_store.clients_with_revenue(cur, start, end),
                }
            )
        for key in clients:
            self._reconcile_client(conn, key, month, start, end)
        with conn.cursor() as cur:
            return [Line(*row) for row in acts_store.reconciliations_of(cur, month)]

    def _reconcile_client(
        self,
        conn: psycopg.Connection,
        key: acts_store.ClientKey,
        month: str,
        start: dt.datetime,
        end: dt.datetime,
    ) -> None:
        with conn.transaction(), conn.cursor() as cur:
            acts = acts_store.act_amounts(cur, key, month)
            ledger = acts_store.ledger_revenue(cur, key, start, end)
            outcome = reconcile.reconcile([a.amount_minor for a in acts], ledger)
            currency = acts[0].currency if acts else acts_store.wallet_currency(cur, key)
            changed = acts_store.put_reconciliation(
                cur,
                key,
                month,
                currency=currency,
                act_minor=outcome.act_minor,
                ledger_minor=outcome.ledger_minor,
                act_count=outcome.act_count,
                status=outcome.status.value,
            )
            if changed is None:
                return
            revision, checked_at = changed
            box = acts_store.outbox_for(cur, self.topics.prefix, key)
            record = wire.ReconciliationRecord(
                tenant=key[0],
                client_id=key[1],
                month=month,
                currency=currency,
                act_amount_minor=outcome.act_minor,
                ledger_amount_minor=outcome.ledger_minor,
                difference_minor=outcome.difference_minor,
                act_count=outcome.act_count,
                status=outcome.status.value,
                revision=revision,
                checked_at_ms=wire.to_ms(checked_at),
            )
            box.add(
                self.topics.reconciliation,
                f"{key[0]}/{key[1]}",
                wire.encode_reconciliation(record),
                wire.reconciliation_event_id(key[0], key[1], month, revision),
            )
            acts_store.finish_outbox(cur, box)
        metrics.reconciliations.labels(outcome.status.value).inc()
        if outcome.difference_minor:
            # Names the client: this is the line an operator looks for (ids, not names).
            log.warning(
                "reconciliation: %s/%s %s: act %d, ledger %d, difference %d (%s)",
                key[0],
                key[1],
                month,
                outcome.act_minor,
                outcome.ledger_minor,
                outcome.difference_minor,
                outcome.status.value,
            )
