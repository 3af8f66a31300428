"""The performer: pending requests out to Balance, outcomes back through the outbox.

    loop: take the oldest pending request of each client that is due and not in flight
          -> a worker thread performs it (flows.FLOWS; Balance calls, no transaction open)
          -> one transaction: request done + outcome row in the gateway's outbox shard

One client's requests are performed one at a time, in the order the ledger wrote them;
different clients in parallel on `gateway_workers` threads. Not in the engine's poll loop
and never inside a transaction: a slow or absent Balance holds up only Balance requests.

One performer per deployment at a time: it holds a PostgreSQL session advisory lock for
as long as it runs (a second gateway waits; a killed one loses the lock with its
connection). Losing the lock's connection stops the role, so two performers never run.

Transient trouble (Balance away, INTERNAL_ERROR faults) ends an attempt with `Later`: the
request keeps its progress and is tried again after a bounded backoff. After
`gateway_deadline_s` without success it is answered REJECTED `balance_error`, unless a
creating call's outcome is still unclear: then it waits (answering would risk a second
object later).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime

import psycopg

from billy_core import db, metrics, retry
from billy_core.balance import BalanceClient
from billy_core.kafka.topics import TopicNames
from billy_core.results import Code
from billy_core.settings import Settings
from consumers.gateway import flows, store
from consumers.gateway.calls import Caller, Later, Refused
from consumers.gateway.store import ClientKey, RequestRow
from consumers.gateway.wire import BalanceOutcome, encode_outcome

log = logging.getLogger("billy.gateway")

_LOCK_SQL = "SELECT pg_try_advisory_lock(hashtext(%s))"


def observe_call(method: str, outcome: str, seconds: float) -> None:
    """The adapter's call observer: every Balance call in the metrics."""
    metrics.balance_calls.labels(method, outcome).inc()
    metrics.balance_call_seconds.labels(method).observe(seconds)


class Performer:
    def __init__(
        self,
        settings: Settings,
        balance: BalanceClient,
        topics: TopicNames | None = None,
    ) -> None:
        self.settings = settings
        self.balance = balance
        self.topics = topics or TopicNames(settings.topic_prefix)
        self.workers = settings.gateway_workers
        self.pool = db.pool(
            settings.database_url, size=self.workers + 1, name="billy-gateway-performer"
        )

    def run(self, stop: threading.Event) -> None:
        caller = Caller(self.settings.gateway_call_attempts_max, stop=stop)
        self.pool.open(wait=False)
        lock_conn = self._take_lock(stop)
        if lock_conn is None:
            return
        busy: dict[ClientKey, Future[None]] = {}
        executor = ThreadPoolExecutor(self.workers, "billy-gateway-perform")
        try:
            lock_checked = time.monotonic()
            while not stop.is_set():
                if time.monotonic() - lock_checked > 5:
                    lock_conn.execute("SELECT 1")  # raises when the lock's session is gone
                    lock_checked = time.monotonic()
                for key, future in list(busy.items()):
                    if future.done():
                        del busy[key]
                        future.result()  # a bug in a flow stops the role
                free = self.workers - len(busy)
                due: list[RequestRow] = []
                if free > 0:
                    due = self._heads(set(busy), free)
                for request in due:
                    busy[request.client] = executor.submit(self._perform, request, caller)
                if busy and (not due or len(busy) >= self.workers):
                    wait(list(busy.values()), self.settings.gateway_idle_s, FIRST_COMPLETED)
                elif not busy:
                    stop.wait(self.settings.gateway_idle_s)
        finally:
            stop.set()  # unblocks the workers' waits
            executor.shutdown(wait=True)
            lock_conn.close()
            self.pool.close()

    def _take_lock(self, stop: threading.Event) -> psycopg.Connection | None:
        key = f"{self.topics.prefix}-gateway-performer"
        while not stop.is_set():
            try:
                conn = psycopg.connect(
                    self.settings.database_url, autocommit=True, connect_timeout=5
                )
            except psycopg.OperationalError as exc:
                log.warning("gateway: cannot reach PostgreSQL (%s); retrying", exc)
                stop.wait(1.0)
                continue
            row = conn.execute(_LOCK_SQL, (key,)).fetchone()
            if row and row[0]:
                log.info("gateway performer holds the lock %s", key)
                return conn
            conn.close()
            stop.wait(1.0)  # another performer runs: wait for it to go
        return None

    def _heads(self, busy: set[ClientKey], limit: int) -> list[RequestRow]:
        try:
            with self.pool.connection() as conn:
                conn.autocommit = True
                return store.heads(conn, self.topics.prefix, busy, limit)
        except Exception as exc:
            if not db.is_transient(exc):
                raise
            log.warning("gateway: reading pending requests failed (%s)", exc)
            return []

    def _perform(self, request: RequestRow, caller: Caller) -> None:
        """On a worker: perform one request; PostgreSQL trouble leaves it pending."""
        try:
            with self.pool.connection() as conn:
                conn.autocommit = True
                self._perform_on(conn, request, caller)
        except Exception as exc:
            if not db.is_transient(exc):
                raise
            log.warning("gateway: request %d left pending (%s)", request.id, exc)

    def _perform_on(self, conn: psycopg.Connection, request: RequestRow, caller: Caller) -> None:
        store.start_attempt(conn, request)
        view = store.load_view(conn, request.tenant, request.client_id)
        job = flows.Job(
            request,
            view,
            conn,
            self.balance,
            caller,
            self.topics.prefix,
            self.settings.gateway_unclear_settle_s,
        )
        flow = flows.FLOWS.get(request.kind)
        try:
            if flow is None:
                outcome = flows.rejected(
                    Code.INVALID, f"body: the gateway cannot perform {request.kind}"
                )
            else:
                outcome = flow(job)
        except Refused as exc:
            outcome = flows.refused(exc.error)
        except Later as exc:
            if self._past_deadline(request) and not job.outstanding_intent():
                outcome = flows.rejected(
                    Code.BALANCE_ERROR,
                    f"Balance stayed unreachable for {self.settings.gateway_deadline_s:.0f} s",
                    balance_code="UNAVAILABLE",
                )
            else:
                delay = max(
                    exc.delay_s,
                    retry.backoff_s(request.attempts, self.settings.gateway_retry_max_s),
                )
                log.info("gateway: request %d postponed %.1f s (%s)", request.id, delay, exc)
                store.postpone(conn, request, delay)
                return
        if request.kind == "RegisterClient" and outcome.status == "REJECTED":
            outcome = flows.registration_failed(job.view, outcome)
        self._finish(conn, request, outcome)

    def _past_deadline(self, request: RequestRow) -> bool:
        first = request.first_attempt_at
        if first is None:
            return False
        age_s = (datetime.now(UTC) - first).total_seconds()
        return age_s > self.settings.gateway_deadline_s

    def _finish(self, conn: psycopg.Connection, request: RequestRow, out: flows.Outcome) -> None:
        record = BalanceOutcome(
            tenant=request.tenant,
            client_id=request.client_id,
            command_id=request.command_id,
            kind=request.kind,
            status=out.status,
            code=out.code,
            message=out.message,
            details=out.details,
            account=out.account,
            payer=out.payer,
            contract=out.contract,
            invoice=out.invoice,
            credit_minor=out.credit_minor,
            currency=request.currency,
            client=out.client,
            order_sum_minor=out.order_sum_minor,
        )
        store.finish(
            conn,
            request,
            deployment=self.topics.prefix,
            topic=self.topics.internal_events,
            value=encode_outcome(record),
            code=out.code,
        )
        metrics.balance_requests.labels(request.kind, out.code).inc()
