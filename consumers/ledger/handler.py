"""The ledger handler: command records in, wallet ledger rows and outputs out.

`decode` (pure, `consumers.ledger.decode`) turns a record into a command or poison. `apply`
runs inside the engine's partition transaction: it loads the wallets, holds, charges and
idempotency records the batch names, runs each command through the pure ledger core in
offset order, and writes the rows; results, applied-services lines and wallet snapshots go
to the outbox it is given. The engine does the rest (positions, DLQ, retries, commit).
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
import time
from collections.abc import Sequence
from typing import cast

import psycopg

from billy_core import metrics
from billy_core.codec import (
    AppliedService,
    ServiceKind,
    WalletSnapshot,
    decode_result,
    encode_applied_service,
    encode_result,
    encode_wallet_snapshot,
)
from billy_core.commands import (
    BALANCE_BODIES,
    Adjust,
    Command,
    ConfirmHold,
    ExpireHold,
    Hold,
    Refund,
    RegisterClient,
    ReleaseHold,
    expire_command_id,
)
from billy_core.errors import InvariantViolation
from billy_core.idempotency import payload_hash
from billy_core.kafka.topics import ADMIN_TENANT, TopicNames
from billy_core.ledger.core import Duplicate, decide, expiry_due
from billy_core.ledger.decision import Decision
from billy_core.ledger.invariants import check_held_matches
from billy_core.ledger.state import ClientState, Wallet
from billy_core.payment_events import is_payment_event
from billy_core.results import Code, Result, Status
from billy_core.store import ledger_store as store
from billy_core.stream import Batch, Outbox, Poison, Record, Summary
from billy_core.text import bounded, shorten_id, shorten_key
from consumers.ledger import balance_intents, payments
from consumers.ledger.balance_intents import OutcomeItem
from consumers.ledger.decode import Decoded, decode
from consumers.ledger.payments import PaymentItem

# A dict, not ServiceKind(kind): an enum's call costs ~1 µs, once per applied line.
_SERVICE_KINDS = {kind.value: kind for kind in ServiceKind}

log = logging.getLogger("billy.ledger")

# Idempotency by insert (`LedgerHandler.apply`): from this many commands in a batch, ids
# are not looked up first; the processed_commands primary key finds a resend instead. Below
# it, the savepoint's two round trips cost more than the lookup saves.
INSERT_FIRST_MIN = 64
# After a resend was found that way, every id is looked up first for this long: a client
# that resends a lot makes the ledger do each of its batches once, not twice.
LOOK_UP_FIRST_S = 30.0
_PROCESSED_KEY = "processed_commands_pkey"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class LedgerHandler:
    """The ledger's `billy_core.stream.Handler`."""

    name = "ledger"

    def __init__(
        self,
        topics: TopicNames,
        tenants: frozenset[str],
        group: str,
        *,
        balance_gateway: bool = True,
    ) -> None:
        self.topics = topics
        self.tenants = tenants
        self.group = group
        self.balance_gateway = balance_gateway  # False: no Balance (balance_intents doc)
        self._look_up_until = 0.0  # monotonic time; see LOOK_UP_FIRST_S

    def subscription(self) -> list[str]:
        # Balance outcomes from the gateway come back on the internal events topic.
        return [self.topics.commands_pattern(self.tenants), self.topics.internal_events]

    def decode(self, record: Record) -> Decoded | OutcomeItem | PaymentItem | Poison:
        if record.topic == self.topics.internal_events:
            if is_payment_event(record.value):  # from the intake; the rest from the gateway
                item = payments.decode_payment_record(record)
                if isinstance(item, PaymentItem):
                    return item
                outcome = balance_intents.decode_outcome_record(record)  # the mark was a field
                return outcome if isinstance(outcome, OutcomeItem) else item
            return balance_intents.decode_outcome_record(record)
        return decode(record, self.topics, self.tenants)

    def mergeable(self, topic: str) -> bool:
        """Commands topics: yes, every output is routed by its record (`_Batch`). Balance
        events: no, their appliers write to the outbox they are given."""
        return topic != self.topics.internal_events

    def answer_poison(self, poison: Poison, outbox: Outbox) -> None:
        """A dead-lettered admin record is also answered on billy.admin.results (the billing
        team's tools wait there), under the id `dlq:<partition>:<offset>`. A tenant's poison
        has no answer besides its DLQ copy: it has no command id to answer to."""
        r = poison.record
        if self.topics.tenant_of(r.topic) != ADMIN_TENANT:
            return
        key = r.key.decode("utf-8", "replace") if r.key is not None else ""
        result = Result(
            command_id=f"dlq:{r.partition}:{r.offset}",
            client_id=shorten_id(key.partition("/")[2]),
            status=Status.REJECTED,
            code=Code.INVALID,
            message=bounded(f"dead-lettered: {poison.reason}"),
            currency=None,
            available_minor=0,
            held_minor=0,
            wallet_version=0,
            duplicate=False,
            processed_at_ms=_now_ms(),
        )
        outbox.add(
            self.topics.admin_results,
            None if r.key is None else shorten_key(r.key),
            encode_result(result),
            f"result:{r.topic}:{r.partition}:{r.offset}",
        )

    def observe(self, topic: str, summary: Summary) -> None:
        tenant = self.topics.tenant_of(topic) or "?"
        if topic == self.topics.internal_events:  # Balance outcomes: ("<tenant>/<kind>", code)
            for where, code in summary.outcomes:
                tenant, _, kind = where.partition("/")
                if kind == "payment":  # a Balance notification applied (consumers.ledger.payments)
                    metrics.payments.labels(tenant, code).inc()
                else:
                    metrics.commands.labels(tenant, kind, code).inc()
            return
        # Counted first: a label lookup costs ~1 µs, a batch has thousands of outcomes and
        # a handful of distinct ones.
        for (kind, code), n in collections.Counter(summary.outcomes).items():
            metrics.commands.labels(tenant, kind, code).inc(n)
        if summary.duplicates:
            metrics.duplicates.labels(tenant).inc(summary.duplicates)

    def apply(
        self,
        cur: psycopg.Cursor,
        batch: Batch[Decoded | OutcomeItem | PaymentItem],
        outbox: Outbox,
    ) -> Summary:
        if batch.topic == self.topics.internal_events:  # one topic per batch: Balance events
            return self._apply_events(cur, batch, outbox)
        fresh = cast(Sequence[Decoded], batch.items)
        if len(fresh) >= INSERT_FIRST_MIN and time.monotonic() >= self._look_up_until:
            # Idempotency by insert. Looking up every id of a big batch cost PostgreSQL
            # ~5 µs a command, and a resend is rare: the batch is applied as if none had been
            # seen, in a savepoint. A resend then inserts its id into processed_commands a
            # second time; the primary key refuses it, the savepoint is rolled back with what
            # the batch added to the outbox, and the batch is applied again the careful way,
            # with every id looked up. Every command decided anew writes a processed row
            # (rejected ones too), except those `_keys_not_found_by_insert` names: their
            # ids are looked up either way.
            rewind = outbox.checkpoint()
            try:
                with cur.connection.transaction():
                    return self._apply_commands(cur, fresh, outbox, careful=False)
            except psycopg.errors.UniqueViolation as exc:
                if exc.diag.constraint_name != _PROCESSED_KEY:
                    raise
                rewind()
                self._look_up_until = time.monotonic() + LOOK_UP_FIRST_S
                log.info(
                    "%s/%d: a command seen before; applying the batch with its ids looked up",
                    batch.topic,
                    batch.partition,
                )
        return self._apply_commands(cur, fresh, outbox, careful=True)

    def _apply_commands(
        self, cur: psycopg.Cursor, fresh: Sequence[Decoded], outbox: Outbox, *, careful: bool
    ) -> Summary:
        """Apply the commands with the processed records of their ids loaded (`careful`), or
        of only the ids an insert would not find (idempotency by insert, `apply`)."""
        keys = _idempotency_keys(fresh)
        processed = store.load_processed(cur, keys if careful else _keys_not_found_by_insert(fresh))
        processed.update(balance_intents.load_pending(cur, keys))
        states = store.load_states(cur, *_references(fresh))
        loaded_holds = {(*k, h) for k, st in states.items() for h in st.holds}
        rows = _Batch(self.topics, outbox)
        rows.intents.enabled = self.balance_gateway
        for item in fresh:
            rows.command(item, processed, states)
        rows.snapshots(states, loaded_holds)
        store.write(cur, rows.writes)
        rows.intents.write(cur)
        # Postcondition, on in production: every changed wallet's held balance is the sum
        # of its open holds. A breach raises InvariantViolation: nothing commits.
        totals = store.open_hold_totals(cur, rows.changed)
        for key in rows.changed:
            check_held_matches(_wallet(states, key), totals.get(key, 0))
        return Summary(tuple(rows.by_kind), rows.duplicates)

    def _apply_events(
        self,
        cur: psycopg.Cursor,
        batch: Batch[Decoded | OutcomeItem | PaymentItem],
        outbox: Outbox,
    ) -> Summary:
        """Gateway outcomes and intake payments, in offset order: each run of one kind is
        applied before the next (a top-up's outcome and a payment of one client interact)."""
        outcomes: list[tuple[str, str]] = []
        for is_payment, run in itertools.groupby(
            batch.items, key=lambda item: isinstance(item, PaymentItem)
        ):
            items = list(run)
            if is_payment:
                done = payments.apply_payments(
                    cur, cast(list[PaymentItem], items), outbox, self.topics
                )
            else:
                part = Batch(batch.topic, batch.partition, cast(list[OutcomeItem], items))
                done = balance_intents.apply_outcomes(cur, part, outbox, self.topics)
            outcomes.extend(done.outcomes)
        return Summary(tuple(outcomes))


ClientKey = tuple[str, str]
HoldKey = tuple[str, str, str]  # (tenant, client_id, hold_id or charge command_id)


def _wallet(states: dict[ClientKey, ClientState], key: ClientKey) -> Wallet:
    """The wallet of a client the batch changed: it exists, or the ledger is broken."""
    wallet = states[key].wallet
    if wallet is None:
        raise InvariantViolation(f"{key[0]}/{key[1]}: changed, but has no wallet")
    return wallet


def _references(fresh: Sequence[Decoded]) -> tuple[set[ClientKey], set[HoldKey], set[HoldKey]]:
    """The clients, holds and charges a batch's sound commands name (invalid ones are never
    looked up: their ids may not even be storable)."""
    clients: set[ClientKey] = set()
    holds: set[HoldKey] = set()
    charges: set[HoldKey] = set()
    for d in fresh:
        key = (d.tenant, d.command.client_id)
        if d.client_sound:
            clients.add(key)
        if d.invalid is not None:
            continue
        body = d.command.body
        if isinstance(body, Hold | ConfirmHold | ReleaseHold | ExpireHold):
            holds.add((*key, body.hold_id))
        elif isinstance(body, Refund):
            charges.add((*key, body.charge_command_id))
    return clients, holds, charges


def _idempotency_keys(fresh: Sequence[Decoded]) -> set[tuple[str, str]]:
    """(namespace, command_id) of every sound command, and of the expiry events a confirm or
    release may apply first (a resent expiry must be found as a duplicate)."""
    keys = set()
    for d in fresh:
        if d.invalid is not None:
            continue
        keys.add((d.namespace, d.command.command_id))
        body = d.command.body
        if isinstance(body, ConfirmHold | ReleaseHold):
            keys.add((d.namespace, expire_command_id(d.command.client_id, body.hold_id)))
    return keys


def _keys_not_found_by_insert(fresh: Sequence[Decoded]) -> set[tuple[str, str]]:
    """The ids a batch applied by insert (`LedgerHandler.apply`) still looks up, because
    deciding their resend anew would not reach the processed_commands primary key:
    Balance-bound commands go pending (no processed row); a charge whose refund is in the
    batch meets its own charge record, loaded for the refund, first (the core's "applied
    twice" invariant, which stops the process)."""
    keys = _idempotency_keys([d for d in fresh if isinstance(d.command.body, BALANCE_BODIES)])
    for d in fresh:
        body = d.command.body
        if d.invalid is None and isinstance(body, Refund):
            keys.add((d.namespace, body.charge_command_id))
    return keys


class _Batch:
    """Accumulates the rows one partition batch writes; the decisions stay in the core."""

    def __init__(self, topics: TopicNames, outbox: Outbox) -> None:
        self.topics = topics
        # Every output goes to the outbox of the record it answers (`outbox.at`): a batch
        # may hold several partitions' records (`LedgerHandler.mergeable`).
        self.outbox = outbox
        self.writes = store.Writes()
        # Clients whose wallet changed, in order, with the record that changed it last.
        self.changed: dict[tuple[str, str], Record] = {}
        self.seen: dict[tuple[str, str], tuple[bytes, bytes]] = {}
        self.results = self.duplicates = 0
        self.by_kind: list[tuple[str, str]] = []
        self.now_ms = _now_ms()
        self.intents = balance_intents.Intents(topics, outbox)

    def _publish_result(self, d: Decoded, result_bytes: bytes, event_id: str) -> None:
        topic = self.topics.admin_results if d.admin else self.topics.results(d.tenant)
        # An id past OUTPUT_ID_CHARS_MAX (only an invalid command has one) is shortened to a
        # prefix and its digest, in the key as in the result: every result fits the broker.
        client = shorten_id(d.command.client_id)
        key = f"{shorten_id(d.tenant)}/{client}" if d.admin else client
        self.outbox.at(d.record).add(topic, key, result_bytes, event_id)
        self.results += 1

    def command(
        self,
        d: Decoded,
        processed: dict[tuple[str, str], tuple[bytes, bytes]],
        states: dict[ClientKey, ClientState],
    ) -> None:
        """Decide and write one record's command; first the expiry of the hold it touches,
        when that hold is past `expires_at` at the record's time (an event of its own)."""
        r = d.record
        state = states.get((d.tenant, d.command.client_id)) if d.client_sound else None
        id_key = (d.namespace, d.command.command_id)
        # Only a sound, fresh command can find an expiry due: a resend triggers nothing.
        fresh = d.invalid is None and id_key not in self.seen and id_key not in processed
        if state is not None and fresh:
            expiry = expiry_due(state, d.command, r.timestamp_ms)
            if expiry is not None:
                event = f"expiry:{d.namespace}:{expiry.command_id}"
                self._decide(d, expiry, state, processed, event)
        self._decide(d, d.command, state, processed, f"result:{r.topic}:{r.partition}:{r.offset}")

    def _decide(
        self,
        d: Decoded,
        command: Command,
        state: ClientState | None,
        processed: dict[tuple[str, str], tuple[bytes, bytes]],
        event_id: str,
    ) -> None:
        r = d.record
        id_key = (d.namespace, command.command_id)
        invalid = d.invalid if command is d.command else None
        prior = None if invalid is not None else self.seen.get(id_key) or processed.get(id_key)
        if state is None:  # an invalid client id: nothing is loaded or written for it
            state = ClientState(tenant=d.tenant, client_id=command.client_id)
        version_before = state.wallet.version if state.wallet else 0
        decision = decide(
            state,
            command,
            r.timestamp_ms,
            invalid=invalid,
            prior_hash=prior[0] if prior is not None else None,
        )
        if isinstance(decision, Duplicate):
            assert prior is not None
            self.duplicates += 1
            if balance_intents.is_pending(prior):  # answered with the outcome, not now
                self.intents.resend(d.tenant, command.command_id, r)
                return
            stored = decode_result(prior[1])
            replayed = encode_result(dataclasses.replace(stored, duplicate=True))
            self._publish_result(d, replayed, event_id)
            return
        if state.wallet is not None and state.wallet.version != version_before:
            self.changed[(d.tenant, command.client_id)] = r
        if decision.pending:  # Balance-bound: an intent now, the result with its outcome
            if self.intents.enabled:
                self.seen[id_key] = self.intents.add(d.tenant, r, command, state, self.writes)
                return
            decision = balance_intents.without_gateway(command, decision)
        self.by_kind.append((command.kind, decision.code.value))
        result_bytes = self._result(command, state, decision)
        self._publish_result(d, result_bytes, event_id)
        if invalid is not None or prior is not None:
            return  # invalid or a conflict: never remembered, the id stays free
        self._write(d, command, decision, result_bytes)

    def _write(self, d: Decoded, command: Command, decision: Decision, result: bytes) -> None:
        r = d.record
        applied = decision.status is Status.APPLIED
        digest = payload_hash(command)
        self.seen[(d.namespace, command.command_id)] = (digest, result)
        w = self.writes
        w.processed.append(
            (
                d.namespace,
                command.command_id,
                command.client_id,
                digest,
                applied,
                result,
                r.topic,
                r.partition,
                r.offset,
            )
        )
        for t in decision.transfers:
            w.transfers.append(
                (
                    d.tenant,
                    command.client_id,
                    command.command_id,
                    t.source,
                    t.target,
                    t.amount_minor,
                    t.currency,
                    r.timestamp_ms,
                )
            )
        if not applied:
            return
        body = command.body
        if isinstance(body, RegisterClient):
            w.clients.append((d.tenant, command.client_id, body.name, body.email))
        if isinstance(body, Adjust):
            w.adjustments.append(
                (
                    d.tenant,
                    command.client_id,
                    command.command_id,
                    body.amount_minor,
                    body.currency,
                    body.operator or "",
                    body.reason,
                    r.timestamp_ms,
                )
            )
        for line in decision.applied:
            w.applied.append(
                (
                    d.tenant,
                    command.client_id,
                    command.command_id,
                    line.kind,
                    line.product_id,
                    line.amount_minor,
                    line.currency,
                    line.refund_of,
                    r.timestamp_ms,
                )
            )
            record = AppliedService(
                tenant=d.tenant,
                client_id=command.client_id,
                command_id=command.command_id,
                kind=_SERVICE_KINDS[line.kind],
                product_id=line.product_id,
                amount_minor=line.amount_minor,
                currency=line.currency,
                applied_at_ms=r.timestamp_ms,
                refund_of=line.refund_of,
            )
            self.outbox.at(r).add(
                self.topics.applied_services,
                f"{d.tenant}/{command.client_id}",
                encode_applied_service(record),
                f"applied:{d.tenant}:{command.command_id}",
            )

    def _result(self, command: Command, state: ClientState, decision: Decision) -> bytes:
        wallet = state.wallet
        return encode_result(
            Result(
                # Bounded by construction: ids shortened past OUTPUT_ID_CHARS_MAX (invalid
                # commands only), the message cut at MESSAGE_CHARS_MAX.
                command_id=shorten_id(command.command_id),
                client_id=shorten_id(command.client_id),
                status=decision.status,
                code=decision.code,
                message=bounded(decision.message),
                currency=wallet.currency if wallet else None,
                available_minor=wallet.available_minor if wallet else 0,
                held_minor=wallet.held_minor if wallet else 0,
                wallet_version=wallet.version if wallet else 0,
                duplicate=False,
                processed_at_ms=self.now_ms,
                details=dict(decision.details),
            )
        )

    def snapshots(
        self,
        states: dict[ClientKey, ClientState],
        loaded_holds: set[HoldKey],
    ) -> None:
        """The changed rows (new ones apart from loaded ones), and one snapshot per changed
        wallet per batch: the compacted topic keeps the last."""
        w = self.writes
        for key, changed_by in self.changed.items():
            state = states[key]
            wallet = _wallet(states, key)
            (w.new_wallets if state.new_wallet else w.changed_wallets).append(wallet)
            for hold_id in sorted(state.dirty_holds):
                hold = (key[0], key[1], state.holds[hold_id])
                loaded = (*key, hold_id) in loaded_holds
                (w.changed_holds if loaded else w.new_holds).append(hold)
            for command_id in sorted(state.dirty_charges):
                # A new charge's row is its applied-services CHARGE line; only a refund
                # changes what is stored.
                charge = state.charges[command_id]
                if charge.refunded_minor:
                    w.refunded_charges.append((key[0], key[1], charge))
            record = WalletSnapshot(
                tenant=key[0],
                client_id=key[1],
                currency=wallet.currency,
                available_minor=wallet.available_minor,
                held_minor=wallet.held_minor,
                wallet_version=wallet.version,
                updated_at_ms=self.now_ms,
            )
            self.outbox.at(changed_by).add(
                self.topics.wallets,
                f"{key[0]}/{key[1]}",
                encode_wallet_snapshot(record),
                f"wallet:{key[0]}:{key[1]}:{wallet.version}",
            )
