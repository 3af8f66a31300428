"""Apply one partition's records in one PostgreSQL transaction, exactly once.

The transaction locks the partition's stored offset (compare-and-set against where this
consumer believes it stands), loads the wallets, holds, charges and idempotency records the
records name, runs each command through the pure ledger core in offset order, writes the
rows and the outbox records, and moves the offset. A consumer that lost the partition finds
the offset moved and writes nothing (OffsetConflict).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from billy_core.codec import (
    AppliedService,
    ServiceKind,
    WalletSnapshot,
    decode_result,
    encode_applied_service,
    encode_result,
    encode_wallet_snapshot,
)
from billy_core.commands import ConfirmHold, ExpireHold, Hold, Refund, RegisterClient, ReleaseHold
from billy_core.idempotency import payload_hash
from billy_core.kafka.topics import TopicNames
from billy_core.ledger.core import Decision, decide
from billy_core.ledger.invariants import check_held_matches
from billy_core.ledger.state import ClientState
from billy_core.results import Code, Result, Status
from billy_core.store import ledger_store as store
from consumers.ledger.records import Decoded, Poison


@dataclass(frozen=True, slots=True)
class Applied:
    """What a partition batch did, for metrics and the caller's position."""

    next_offset: int
    results: int
    duplicates: int
    poison: int
    by_kind: tuple[tuple[str, str], ...]  # (command kind, code) per fresh command


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class PartitionApplier:
    def __init__(self, topics: TopicNames, group: str) -> None:
        self.topics = topics
        self.group = group

    def apply(
        self,
        conn: psycopg.Connection,
        topic: str,
        partition: int,
        expected_offset: int,
        items: Sequence[Decoded | Poison],
    ) -> Applied:
        """Apply `items` (one partition, offset order, all >= expected_offset). Commits.

        Raises OffsetConflict (nothing written) when the stored offset is not
        `expected_offset`; psycopg errors propagate for the caller's retry.
        """
        with conn.transaction(), conn.cursor() as cur:
            before = store.lock_position(cur, self.group, topic, partition, expected_offset)
            batch = _Batch(self.topics, topic, partition, before.outbox_seq)
            fresh = [i for i in items if isinstance(i, Decoded)]
            processed = store.load_processed(cur, {(d.tenant, d.command.command_id) for d in fresh})
            states = store.load_states(cur, *_references(fresh))
            loaded_holds = {(*k, h) for k, st in states.items() for h in st.holds}
            loaded_charges = {(*k, c) for k, st in states.items() for c in st.charges}
            for item in items:
                if isinstance(item, Poison):
                    batch.dead_letter(item)
                else:
                    batch.command(item, processed, states)
            batch.snapshots(states, loaded_holds, loaded_charges)
            store.write(cur, batch.writes)
            # Postcondition, on in production: every changed wallet's held balance is the
            # sum of its open holds. A breach raises InvariantViolation: nothing commits.
            totals = store.open_hold_totals(cur, batch.changed)
            for key in batch.changed:
                check_held_matches(states[key].wallet, totals.get(key, 0))
            after = store.Position(items[-1].record.offset + 1, batch.seq)
            store.advance_position(cur, self.group, topic, partition, before, after)
        return Applied(
            after.next_offset, batch.results, batch.duplicates, batch.poison, tuple(batch.by_kind)
        )


def _references(fresh: Sequence[Decoded]):
    clients, holds, charges = set(), set(), set()
    for d in fresh:
        key = (d.tenant, d.command.client_id)
        clients.add(key)
        body = d.command.body
        if isinstance(body, (Hold, ConfirmHold, ReleaseHold, ExpireHold)):
            holds.add((*key, body.hold_id))
        elif isinstance(body, Refund):
            charges.add((*key, body.charge_command_id))
    return clients, holds, charges


class _Batch:
    """Accumulates the rows one partition batch writes; the decisions stay in the core."""

    def __init__(self, topics: TopicNames, topic: str, partition: int, seq: int) -> None:
        self.topics = topics
        self.shard = f"{topic}/{partition}"
        self.seq = seq
        self.writes = store.Writes()
        self.changed: dict[tuple[str, str], None] = {}  # clients whose wallet changed, in order
        self.seen: dict[tuple[str, str], tuple[bytes, bytes]] = {}
        self.results = self.duplicates = self.poison = 0
        self.by_kind: list[tuple[str, str]] = []
        self.now_ms = _now_ms()

    def _out(self, topic: str, key: str | bytes | None, value: bytes, event_id: str, headers=None):
        self.seq += 1
        if isinstance(key, str):
            key = key.encode()
        self.writes.outbox.append(
            (self.shard, self.seq, topic, key or b"", value, event_id, headers)
        )

    def dead_letter(self, item: Poison) -> None:
        r = item.record
        self.poison += 1
        self._out(
            self.topics.dlq,
            r.key,
            r.value or b"",
            f"dlq:{r.topic}:{r.partition}:{r.offset}",
            {
                "billy-dlq-reason": item.reason,
                "billy-source-topic": r.topic,
                "billy-source-partition": str(r.partition),
                "billy-source-offset": str(r.offset),
            },
        )

    def _publish_result(self, d: Decoded, result_bytes: bytes) -> None:
        r = d.record
        topic = self.topics.admin_results if d.admin else self.topics.results(d.tenant)
        key = f"{d.tenant}/{d.command.client_id}" if d.admin else d.command.client_id
        self._out(topic, key, result_bytes, f"result:{r.topic}:{r.partition}:{r.offset}")
        self.results += 1

    def command(self, d: Decoded, processed, states: dict[tuple[str, str], ClientState]) -> None:
        command, r = d.command, d.record
        id_key = (d.tenant, command.command_id)
        digest = payload_hash(command)
        prior = self.seen.get(id_key) or processed.get(id_key)
        state = states[(d.tenant, command.client_id)]
        if prior is not None:
            prior_hash, prior_result = prior
            if prior_hash == digest:
                self.duplicates += 1
                stored = decode_result(prior_result)
                self._publish_result(d, encode_result(dataclasses.replace(stored, duplicate=True)))
            else:
                self._publish_result(
                    d,
                    self._result(
                        d,
                        state,
                        _rejected(
                            Code.IDEMPOTENCY_CONFLICT,
                            "command_id was used before with another payload",
                        ),
                    ),
                )
            return
        if d.invalid is not None:
            decision = _rejected(Code.INVALID, d.invalid)
        else:
            version_before = state.wallet.version if state.wallet else 0
            decision = decide(state, command, r.timestamp_ms)
            if state.wallet is not None and state.wallet.version != version_before:
                self.changed[(d.tenant, command.client_id)] = None
        self.by_kind.append((command.kind, decision.code.value))
        result_bytes = self._result(d, state, decision)
        applied = decision.status is Status.APPLIED
        self.seen[id_key] = (digest, result_bytes)
        w = self.writes
        w.processed.append(
            (
                d.tenant,
                command.command_id,
                command.client_id,
                digest,
                applied,
                result_bytes,
                r.topic,
                r.partition,
                r.offset,
            )
        )
        self._publish_result(d, result_bytes)
        # Transfers are written whatever the status: a REJECTED hold_expired still returns
        # the expired hold's money from held to available.
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
        if isinstance(command.body, RegisterClient):
            w.clients.append((d.tenant, command.client_id, command.body.name, command.body.email))
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
                kind=ServiceKind(line.kind),
                product_id=line.product_id,
                amount_minor=line.amount_minor,
                currency=line.currency,
                applied_at_ms=r.timestamp_ms,
                refund_of=line.refund_of,
            )
            self._out(
                self.topics.applied_services,
                f"{d.tenant}/{command.client_id}",
                encode_applied_service(record),
                f"applied:{d.tenant}:{command.command_id}",
            )

    def _result(self, d: Decoded, state: ClientState, decision: Decision) -> bytes:
        wallet = state.wallet
        return encode_result(
            Result(
                command_id=d.command.command_id,
                client_id=d.command.client_id,
                status=decision.status,
                code=decision.code,
                message=decision.message,
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
        self, states: dict[tuple[str, str], ClientState], loaded_holds: set, loaded_charges: set
    ) -> None:
        """The changed rows (new ones apart from loaded ones), and one snapshot per changed
        wallet per batch: the compacted topic keeps the last."""
        w = self.writes
        for key in self.changed:
            state = states[key]
            wallet = state.wallet
            (w.new_wallets if state.new_wallet else w.changed_wallets).append(wallet)
            for hold_id in sorted(state.dirty_holds):
                row = (*key, state.holds[hold_id])
                (w.changed_holds if (*key, hold_id) in loaded_holds else w.new_holds).append(row)
            for command_id in sorted(state.dirty_charges):
                row = (*key, state.charges[command_id])
                loaded = (*key, command_id) in loaded_charges
                (w.changed_charges if loaded else w.new_charges).append(row)
            record = WalletSnapshot(
                tenant=key[0],
                client_id=key[1],
                currency=wallet.currency,
                available_minor=wallet.available_minor,
                held_minor=wallet.held_minor,
                wallet_version=wallet.version,
                updated_at_ms=self.now_ms,
            )
            self._out(
                self.topics.wallets,
                f"{key[0]}/{key[1]}",
                encode_wallet_snapshot(record),
                f"wallet:{key[0]}:{key[1]}:{wallet.version}",
            )


def _rejected(code: Code, message: str) -> Decision:
    return Decision(status=Status.REJECTED, code=code, message=message)
