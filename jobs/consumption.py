"""Report each order's cumulative consumed money to Balance (`UpdateCampaigns`).

    count: ledger revenue up to a cutoff -> per client and month, a report row (only when the
           client's total changed since its latest report)           one transaction per step
    send:  waiting report rows -> UpdateCampaigns (no transaction open) -> accepted rows marked

What a client consumed is the ledger's revenue from it (charges and confirmed holds, less
refunds), cumulative since its first charge, in minor units; Balance takes it as a decimal
total, so sending the same report twice changes nothing (idempotent by construction). A row
is marked accepted only after Balance answered 1 for that very report, so a restart sends
again what was not accepted and nothing else. A refused report (0: a `dt` Balance thinks is
in the future, an order it does not know) is logged, counted and sent again next time.

Cutoffs are whole seconds at least `consumption_settle_s` in the past (a ledger transaction
that started before a cutoff has committed by then) and never step over a Balance month
boundary (billy_core.acts.months): each month ends with a report of exactly its total,
dated its last second, which is what Balance's act for the month is made from.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import groupby

import psycopg

from billy_core import metrics, retry
from billy_core.acts import months
from billy_core.acts import store as acts_store
from billy_core.acts.totals import to_report as totals_to_report
from billy_core.balance import BalanceClient, BalanceError, ConsumptionReport
from billy_core.ops.health import HEALTH
from billy_core.settings import Settings

log = logging.getLogger("billy.consumption")

ROLE = "consumption"  # its name in health and billy_progress_timestamp_seconds
_BATCH_MAX = 1000  # UpdateCampaigns items per call (the adapter's CAMPAIGN_REPORTS_MAX)
_LOOKBACK = dt.timedelta(minutes=5)  # revenue committed late, behind an earlier cutoff
Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(slots=True)
class Sent:
    accepted: int = 0
    refused: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


class ConsumptionReporter:
    def __init__(self, settings: Settings, balance: BalanceClient, clock: Clock = utc_now) -> None:
        self.settings = settings
        self.balance = balance
        self.clock = clock
        self.settle_s = settings.consumption_settle_s

    # --- the periodic job (the sweeper role) ----------------------------------------------
    def run(self, stop: threading.Event) -> None:
        HEALTH.start_role(ROLE)
        conn: psycopg.Connection | None = None
        try:
            while self._wait(stop):
                for attempt in retry.transient(ROLE, "reporting consumption", stop_event=stop):
                    with attempt:
                        try:
                            if conn is None or conn.closed:
                                conn = self._connect()
                            self.count(conn)
                            sent = self.send(conn)
                            HEALTH.beat(ROLE)
                            if not (sent.failed or sent.refused):
                                # Progress: everything counted is accepted by Balance (what
                                # BillyConsumptionStale watches).
                                HEALTH.progressed(ROLE)
                        except psycopg.OperationalError:
                            conn = None
                            raise
        finally:
            if conn is not None:
                conn.close()

    def _wait(self, stop: threading.Event) -> bool:
        """Wait one interval, beating (liveness) at least every 30 s; False once stopped."""
        deadline = time.monotonic() + self.settings.consumption_interval_s
        while (left := deadline - time.monotonic()) > 0:
            if stop.wait(min(left, 30.0)):
                return False
            HEALTH.beat(ROLE)
        return not stop.is_set()

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(self.settings.database_url, autocommit=True, connect_timeout=5)

    # --- counting ---------------------------------------------------------------------------
    def count(self, conn: psycopg.Connection, until: dt.datetime | None = None) -> dt.datetime:
        """Count revenue into report rows, one step (one transaction) at a time, up to
        `now - settle` (or `until`, if earlier). Returns the watermark reached."""
        while True:
            with conn.transaction(), conn.cursor() as cur:
                counted_until = self._watermark(cur)
                now = self.clock()
                if until is not None:
                    now = min(now, until + dt.timedelta(seconds=self.settle_s))
                cutoff = months.next_cutoff(counted_until, now, self.settle_s)
                if cutoff <= counted_until:
                    return counted_until
                made = self._step(cur, counted_until, cutoff)
                acts_store.set_watermark(cur, cutoff)
            if made:
                log.info("consumption: %d report(s) made up to %s", made, cutoff.isoformat())

    def _watermark(self, cur: psycopg.Cursor) -> dt.datetime:
        """The watermark row, locked (one counter at a time); made at the first run: the
        start of the month of the ledger's first revenue (or of this month)."""
        found = acts_store.watermark(cur, lock=True)
        if found is not None:
            return found
        first = acts_store.first_revenue_at(cur) or self.clock()
        start, _ = months.month_bounds(months.month_of(first))
        acts_store.set_watermark(cur, start)
        found = acts_store.watermark(cur, lock=True)
        assert found is not None
        return found

    def _step(self, cur: psycopg.Cursor, counted_until: dt.datetime, cutoff: dt.datetime) -> int:
        since = counted_until - _LOOKBACK
        changed = sorted(
            {
                *acts_store.clients_with_revenue(cur, since, cutoff),
                *acts_store.clients_registered(cur, since, cutoff),
            }
        )
        if not changed:
            return 0
        totals = acts_store.revenue_totals(cur, changed, cutoff)
        orders = acts_store.reportable(cur, changed)
        latest = acts_store.latest_totals(cur, changed)
        report_dt = months.report_dt(cutoff)
        month = months.month_of(report_dt)
        made = 0
        for key in totals_to_report(totals, latest, orders):
            order_id, currency = orders[key]
            acts_store.put_report(
                cur,
                acts_store.Report(
                    key[0], key[1], month, order_id, totals[key], currency, report_dt
                ),
            )
            made += 1
        return made

    # --- sending ---------------------------------------------------------------------------
    def send(self, conn: psycopg.Connection, month_max: str | None = None) -> Sent:
        """Send every waiting report (up to `month_max`), oldest month first, one call per
        month and currency; mark what Balance accepted. Never inside a transaction."""
        sent = Sent()
        with conn.cursor() as cur:
            waiting = acts_store.waiting_reports(cur, 100 * _BATCH_MAX, month_max)
        groups = groupby(waiting, key=lambda r: (r.month, r.currency))
        for (_month, currency), rows in groups:
            batch = list(rows)
            for i in range(0, len(batch), _BATCH_MAX):
                if not self._send_batch(conn, batch[i : i + _BATCH_MAX], currency, sent):
                    return sent  # Balance away: the rest waits for the next run
        return sent

    def _send_batch(
        self, conn: psycopg.Connection, batch: list[acts_store.Report], currency: str, sent: Sent
    ) -> bool:
        reports = [
            ConsumptionReport(
                service_order_id=r.service_order_id, at=r.report_dt, consumed_minor=r.total_minor
            )
            for r in batch
        ]
        try:
            taken = self.balance.update_campaigns(reports, currency)
        except BalanceError as exc:
            sent.failed += len(batch)
            sent.errors.append(f"{type(exc).__name__}: {exc}")
            metrics.consumption_reports.labels("failed").inc(len(batch))
            log.warning("consumption: UpdateCampaigns failed for %d order(s): %s", len(batch), exc)
            return False
        with conn.transaction(), conn.cursor() as cur:
            for report in batch:
                if taken.get(report.service_order_id):
                    acts_store.mark_accepted(cur, report)
                    sent.accepted += 1
                else:
                    acts_store.mark_refused(cur, report)
                    sent.refused += 1
                    log.warning(
                        "consumption: Balance refused the report of order %d (month %s, dt %s);"
                        " it is sent again next time",
                        report.service_order_id,
                        report.month,
                        report.report_dt.isoformat(),
                    )
        metrics.consumption_reports.labels("accepted").inc(sent.accepted)
        metrics.consumption_reports.labels("refused").inc(sent.refused)
        return True

    # --- on demand: `billy consumption report` ----------------------------------------------
    def report_month(
        self,
        conn: psycopg.Connection,
        month: str,
        timeout_s: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> tuple[dt.datetime, Sent]:
        """Count up to the end of `month` (or up to now, for the month under way), then send
        until Balance has accepted every report of it and earlier months. Returns the
        watermark and what was sent; raises TimeoutError after `timeout_s`."""
        _, end = months.month_bounds(months.parse_month(month))
        target = min(end, self.clock().replace(microsecond=0) + dt.timedelta(seconds=1))
        deadline = time.monotonic() + timeout_s
        total = Sent()
        while self.count(conn, until=target) < target:
            if time.monotonic() > deadline:
                raise TimeoutError(f"revenue not counted up to {target.isoformat()} in time")
            sleep(min(1.0, max(0.1, self.settle_s / 4)))
        attempt = 0
        while True:
            sent = self.send(conn, month_max=month)
            total.accepted += sent.accepted
            total.refused += sent.refused
            total.failed += sent.failed
            total.errors += sent.errors
            with conn.cursor() as cur:
                if not acts_store.waiting_reports(cur, 1, month):
                    return target, total
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"Balance has not accepted every report up to {month}: {total.errors[-3:]}"
                )
            attempt += 1
            sleep(retry.backoff_s(attempt))
