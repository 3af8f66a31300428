"""The ledger's side of Balance: intents out to the gateway, outcomes back in as results.

    command (Balance-bound) --decide: pending--> balance_pending row
                                                + outbox: <prefix>.internal.balance-requests
    <prefix>.internal.events (outcome) --------> processed_commands row with the Result,
                                                mapping rows, wallet credit (TransferCredit),
                                                outbox: the Result (and one per resend)

Both halves run inside the engine's partition transaction (no network, no commit).

Idempotency while pending: the `balance_pending` row is the command's idempotency record
until the outcome comes. A resend with the same payload is answered with NOTHING at once:
its record is remembered in `resends` and, when the outcome comes, gets the command's Result
with `duplicate = true` (one result per record, in the client's order of Balance results).
Another payload under the same id is REJECTED `idempotency_conflict` at once, as always.
After the outcome, `processed_commands` holds the Result and a resend is an ordinary
duplicate.

The outcome's Result event id is the original command record's (`result:<topic>:<partition>:
<offset>`), so it is deterministic whichever ledger applies the outcome.

Without a gateway (setting `balance_gateway` false: a deployment or test without Balance),
nothing is pending: RegisterClient is answered at once (the wallet), and the other
Balance-bound commands REJECTED `unsupported`, as before the gateway existed.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from billy_core.codec import WalletSnapshot, encode_result, encode_wallet_snapshot
from billy_core.commands import Command, RegisterClient, TransferCredit
from billy_core.idempotency import payload_hash
from billy_core.kafka.topics import TopicNames
from billy_core.ledger import accounts
from billy_core.ledger.decision import Decision
from billy_core.ledger.invariants import InvariantViolation
from billy_core.ledger.state import ClientState
from billy_core.limits import BALANCE_MINOR_MAX
from billy_core.results import Code, Result, Status
from billy_core.store import ledger_store as store
from billy_core.stream import Batch, Outbox, Poison, Record, Summary
from consumers.gateway.wire import (
    BalanceOutcome,
    BalanceRequest,
    WireError,
    decode_outcome,
    encode_request,
)
from consumers.ledger import payments

log = logging.getLogger("billy.ledger.balance")

PENDING_RESULT = b""
"""Stands for the result in the ledger's idempotency map while a command waits for Balance
(a real stored Result is never empty)."""

_CODES = {c.value: c for c in Code}


@dataclass(frozen=True, slots=True)
class OutcomeItem:
    """A decoded record of `<prefix>.internal.events`."""

    record: Record
    outcome: BalanceOutcome


def decode_outcome_record(record: Record) -> OutcomeItem | Poison:
    """Pure; a record that is not an outcome of this version is poison (dead-lettered)."""
    try:
        outcome = decode_outcome(record.value)
    except WireError as exc:
        return Poison(record, f"value: {exc}")
    key = record.key.decode("utf-8", "replace") if record.key is not None else None
    if key != outcome.key:
        return Poison(record, "key: does not match the outcome's tenant/client_id")
    return OutcomeItem(record, outcome)


def is_pending(prior: tuple[bytes, bytes]) -> bool:
    return prior[1] == PENDING_RESULT


def load_pending(
    cur: psycopg.Cursor, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], tuple[bytes, bytes]]:
    """(tenant, command_id) -> (payload_hash, PENDING_RESULT) for commands waiting for Balance."""
    tenants, ids = [], []
    for tenant, command_id in keys:
        tenants.append(tenant)
        ids.append(command_id)
    if not ids:
        return {}
    cur.execute(
        "SELECT p.tenant, p.command_id, p.payload_hash FROM balance_pending p"
        " JOIN unnest(%b::text[], %b::text[]) AS k(tenant, command_id)"
        " USING (tenant, command_id)",
        (tenants, ids),
    )
    return {(t, c): (bytes(h), PENDING_RESULT) for t, c, h in cur}


def without_gateway(command: Command, decision: Decision) -> Decision:
    """The answer to a pending decision when billy runs without the Balance gateway."""
    if isinstance(command.body, RegisterClient):
        return dataclasses.replace(decision, message="client registered", pending=False)
    return Decision(Status.REJECTED, Code.UNSUPPORTED, "billy runs without the Balance gateway")


class Intents:
    """The intents one partition batch records; `write` stores them (caller's transaction)."""

    def __init__(self, topics: TopicNames, outbox: Outbox) -> None:
        self.topics = topics
        self.outbox = outbox
        self.enabled = True  # the ledger's `balance_gateway` setting
        self.rows: dict[tuple[str, str], list[Any]] = {}  # new pending rows, by id
        self.resends: list[tuple[str, str, list[Any]]] = []  # for rows stored earlier

    def add(
        self,
        tenant: str,
        record: Record,
        command: Command,
        state: ClientState,
        writes: store.Writes,
    ) -> tuple[bytes, bytes]:
        """Record a pending command: its idempotency row, its request to the gateway, and
        for RegisterClient the client row. Returns what the batch's `seen` map keeps."""
        wallet = state.wallet
        if wallet is None:  # the core decides pending only for a client with a wallet
            raise InvariantViolation(f"{tenant}/{command.client_id}: pending without a wallet")
        digest = payload_hash(command)
        body = command.body
        self.rows[(tenant, command.command_id)] = [
            tenant,
            command.command_id,
            command.client_id,
            digest,
            command.kind,
            record.topic,
            record.partition,
            record.offset,
            [],
            # A top-up's amount: the payment rule holds it back while pending (module payments)
            body.amount_minor if isinstance(body, TransferCredit) else None,
        ]
        if isinstance(body, RegisterClient):
            writes.clients.append((tenant, command.client_id, body.name, body.email))
        request = BalanceRequest(
            tenant=tenant,
            client_id=command.client_id,
            command_id=command.command_id,
            kind=command.kind,
            body=dataclasses.asdict(body),
            currency=wallet.currency,
        )
        self.outbox.at(record).add(
            self.topics.balance_requests,
            request.key,
            encode_request(request),
            f"balance-request:{tenant}:{command.command_id}",
        )
        return digest, PENDING_RESULT

    def resend(self, tenant: str, command_id: str, record: Record) -> None:
        """A resend while pending: answered when the outcome comes (module doc)."""
        where = [record.topic, record.partition, record.offset]
        row = self.rows.get((tenant, command_id))
        if row is not None:
            row[8].append(where)
        else:
            self.resends.append((tenant, command_id, where))

    def write(self, cur: psycopg.Cursor) -> None:
        if self.rows:
            with cur.copy(
                "COPY balance_pending (tenant, command_id, client_id, payload_hash, kind,"
                " source_topic, source_partition, source_offset, resends, credit_minor)"
                " FROM STDIN"
            ) as copy:
                for row in self.rows.values():
                    copy.write_row((*row[:8], Jsonb(row[8]), row[9]))
        for tenant, command_id, where in self.resends:
            cur.execute(
                "UPDATE balance_pending SET resends = resends || %s"
                " WHERE tenant = %s AND command_id = %s",
                (Jsonb([where]), tenant, command_id),
            )


# --- outcomes ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Pending:
    tenant: str
    command_id: str
    client_id: str
    payload_hash: bytes
    kind: str
    topic: str
    partition: int
    offset: int
    resends: list[list[Any]]


def apply_outcomes(
    cur: psycopg.Cursor, batch: Batch[OutcomeItem], outbox: Outbox, topics: TopicNames
) -> Summary:
    """Answer each outcome's command exactly once (the engine's position makes this batch
    apply once; the pending row makes a stray second outcome for one command a no-op)."""
    items: Sequence[OutcomeItem] = batch.items
    pending = _load_pending_rows(cur, [(i.outcome.tenant, i.outcome.command_id) for i in items])
    states = store.load_states(
        cur, {(i.outcome.tenant, i.outcome.client_id) for i in items}, (), ()
    )
    writes = store.Writes()
    changed: dict[tuple[str, str], None] = {}
    outcomes: list[tuple[str, str]] = []
    answered: list[tuple[str, str]] = []
    topups: list[tuple[str, str, str, int, int | None]] = []  # resolved TransferCredits
    now_ms = time.time_ns() // 1_000_000
    for item in items:
        o = item.outcome
        p = pending.pop((o.tenant, o.command_id), None)
        if p is None:
            log.warning(
                "outcome for %s/%s: no pending command (answered before)", o.tenant, o.command_id
            )
            continue
        if p.client_id != o.client_id:
            raise InvariantViolation(f"{o.tenant}/{o.command_id}: outcome of another client")
        key = (o.tenant, o.client_id)
        state = states[key]
        wallet = state.wallet
        if wallet is None:
            raise InvariantViolation(f"{o.tenant}/{o.client_id}: outcome for a client w/o wallet")
        applied = o.status == Status.APPLIED.value
        if p.kind == "TransferCredit":
            credited = o.credit_minor if applied and o.credit_minor else 0
            order_sum = o.order_sum_minor if applied else None
            topups.append((o.tenant, o.client_id, o.command_id, credited, order_sum))
        if applied and o.credit_minor:
            if o.currency != wallet.currency or o.credit_minor < 0:
                raise InvariantViolation(f"{o.tenant}/{o.client_id}: bad credit in an outcome")
            if wallet.available_minor + o.credit_minor > BALANCE_MINOR_MAX:
                raise InvariantViolation(f"{o.tenant}/{o.client_id}: credit would overflow")
            wallet.available_minor += o.credit_minor
            wallet.version += 1
            changed[key] = None
            writes.transfers.append(
                (
                    o.tenant,
                    o.client_id,
                    o.command_id,
                    accounts.credit(o.tenant),
                    accounts.available(o.tenant, o.client_id),
                    o.credit_minor,
                    wallet.currency,
                    max(item.record.timestamp_ms, 0),
                )
            )
        result = Result(
            command_id=o.command_id,
            client_id=o.client_id,
            status=Status(o.status),
            code=_CODES.get(o.code, o.code),
            message=o.message,
            currency=wallet.currency,
            available_minor=wallet.available_minor,
            held_minor=wallet.held_minor,
            wallet_version=wallet.version,
            duplicate=False,
            processed_at_ms=now_ms,
            details=dict(o.details),
        )
        result_bytes = encode_result(result)
        results_topic = topics.results(o.tenant)
        outbox.add(
            results_topic, o.client_id, result_bytes, f"result:{p.topic}:{p.partition}:{p.offset}"
        )
        if p.resends:
            again = encode_result(dataclasses.replace(result, duplicate=True))
            for topic, partition, offset in p.resends:
                outbox.add(
                    results_topic, o.client_id, again, f"result:{topic}:{partition}:{offset}"
                )
        writes.processed.append(
            (
                o.tenant,
                o.command_id,
                o.client_id,
                p.payload_hash,
                applied,
                result_bytes,
                p.topic,
                p.partition,
                p.offset,
            )
        )
        _store_mapping(cur, o)
        answered.append((o.tenant, o.command_id))
        outcomes.append((f"{o.tenant}/{o.kind}", o.code))
    if answered:
        cur.execute(
            "DELETE FROM balance_pending p USING unnest(%b::text[], %b::text[])"
            " AS k(tenant, command_id) WHERE p.tenant = k.tenant AND p.command_id = k.command_id",
            ([t for t, _ in answered], [c for _, c in answered]),
        )
    for key in changed:
        wallet = states[key].wallet
        assert wallet is not None
        writes.changed_wallets.append(wallet)
        snapshot = WalletSnapshot(
            tenant=key[0],
            client_id=key[1],
            currency=wallet.currency,
            available_minor=wallet.available_minor,
            held_minor=wallet.held_minor,
            wallet_version=wallet.version,
            updated_at_ms=now_ms,
        )
        outbox.add(
            topics.wallets,
            f"{key[0]}/{key[1]}",
            encode_wallet_snapshot(snapshot),
            f"wallet:{key[0]}:{key[1]}:{wallet.version}",
        )
    store.write(cur, writes)
    # After the top-ups' credits and the deletion of their pending rows: a payment held back
    # while they were pending may be owed now (billy_core.ledger.payments).
    settled = payments.settle_topups(cur, topups, outbox, topics, now_ms)
    return Summary(tuple(outcomes) + settled.outcomes)


def _load_pending_rows(
    cur: psycopg.Cursor, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], _Pending]:
    if not keys:
        return {}
    cur.execute(
        "SELECT p.tenant, p.command_id, p.client_id, p.payload_hash, p.kind, p.source_topic,"
        " p.source_partition, p.source_offset, p.resends FROM balance_pending p"
        " JOIN unnest(%b::text[], %b::text[]) AS k(tenant, command_id)"
        " USING (tenant, command_id) ORDER BY p.tenant, p.command_id FOR UPDATE OF p",
        ([t for t, _ in keys], [c for _, c in keys]),
    )
    rows = {}
    for tenant, command_id, client_id, digest, kind, topic, partition, offset, resends in cur:
        rows[(tenant, command_id)] = _Pending(
            tenant,
            command_id,
            client_id,
            bytes(digest),
            kind,
            topic,
            partition,
            offset,
            list(resends or []),
        )
    return rows


def _store_mapping(cur: psycopg.Cursor, o: BalanceOutcome) -> None:
    """What the outcome says Balance holds for the client, for reads."""
    if o.account is not None:
        cur.execute(
            "INSERT INTO balance_accounts (tenant, client_id, balance_client_id, service_order_id,"
            " status) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (tenant, client_id) DO UPDATE SET"
            " balance_client_id = coalesce(EXCLUDED.balance_client_id,"
            " balance_accounts.balance_client_id), service_order_id = coalesce("
            "EXCLUDED.service_order_id, balance_accounts.service_order_id),"
            " status = EXCLUDED.status, updated_at = now()",
            (
                o.tenant,
                o.client_id,
                o.account.get("balance_client_id"),
                o.account.get("service_order_id"),
                o.account.get("status", "registered"),
            ),
        )
    for column, entry, id_field in (
        ("payers", o.payer, "payer_id"),
        ("contracts", o.contract, "contract_id"),
    ):
        if entry is None:
            continue
        cur.execute(
            f"INSERT INTO balance_accounts (tenant, client_id, status, {column})"
            " VALUES (%s, %s, 'registered', %s) ON CONFLICT (tenant, client_id) DO UPDATE SET"
            f" {column} = balance_accounts.{column} || EXCLUDED.{column}, updated_at = now()",
            (o.tenant, o.client_id, Jsonb({str(entry[id_field]): entry})),
        )
    if o.invoice is not None:
        inv = o.invoice
        cur.execute(
            "INSERT INTO balance_invoices (tenant, client_id, command_id, invoice_id, request_id,"
            " kind, amount_minor, currency, payer_id, contract_id, payment_link, status)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (
                o.tenant,
                o.client_id,
                o.command_id,
                inv["invoice_id"],
                inv["request_id"],
                inv["kind"],
                inv["amount_minor"],
                inv["currency"],
                inv["payer_id"],
                inv.get("contract_id"),
                inv.get("payment_link"),
                inv["status"],
            ),
        )
    if o.client is not None and o.status == Status.APPLIED.value:
        cur.execute(
            "UPDATE clients SET name = %s, email = %s WHERE tenant = %s AND client_id = %s",
            (o.client["name"], o.client["email"], o.tenant, o.client_id),
        )
