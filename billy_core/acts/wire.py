"""The output records of acts and reconciliations (schemas BalanceAct, Reconciliation) and
their deterministic event ids. Encoded with the process's framing (billy_core.codec)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from billy_core.codec import messages

__all__ = [
    "ActRecord",
    "ReconciliationRecord",
    "act_event_id",
    "act_from_avro",
    "act_to_avro",
    "decode_act",
    "decode_reconciliation",
    "encode_act",
    "encode_reconciliation",
    "reconciliation_event_id",
    "reconciliation_from_avro",
    "reconciliation_to_avro",
    "to_ms",
]


@dataclass(frozen=True, slots=True)
class ActRecord:
    tenant: str
    client_id: str
    act_id: int
    external_id: str
    month: str
    act_date: dt.date
    contract_id: int | None
    amount_minor: int
    amount_nds_minor: int
    paid_amount_minor: int
    currency: str
    imported_at_ms: int


@dataclass(frozen=True, slots=True)
class ReconciliationRecord:
    tenant: str
    client_id: str
    month: str
    currency: str
    act_amount_minor: int
    ledger_amount_minor: int
    difference_minor: int
    act_count: int
    status: str
    revision: int
    checked_at_ms: int


def act_event_id(act_id: int) -> str:
    return f"act:{act_id}"


def reconciliation_event_id(tenant: str, client_id: str, month: str, revision: int) -> str:
    return f"reconciliation:{tenant}/{client_id}:{month}:{revision}"


def to_ms(moment: dt.datetime) -> int:
    """An aware instant as UTC milliseconds since the epoch (integers only)."""
    if moment.tzinfo is None:
        raise ValueError(f"expected an aware instant, got naive {moment.isoformat()}")
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _from_ms(value: Any) -> int:
    """fastavro hands timestamp-millis back as an aware datetime; a dict built by hand has
    the integer."""
    return to_ms(value) if isinstance(value, dt.datetime) else int(value)


def act_to_avro(act: ActRecord) -> dict[str, Any]:
    return {
        "tenant": act.tenant,
        "client_id": act.client_id,
        "act_id": act.act_id,
        "external_id": act.external_id,
        "month": act.month,
        "act_date": act.act_date.isoformat(),
        "contract_id": act.contract_id,
        "amount_minor": act.amount_minor,
        "amount_nds_minor": act.amount_nds_minor,
        "paid_amount_minor": act.paid_amount_minor,
        "currency": act.currency,
        "imported_at": act.imported_at_ms,
    }


def act_from_avro(d: dict[str, Any]) -> ActRecord:
    return ActRecord(
        tenant=d["tenant"],
        client_id=d["client_id"],
        act_id=d["act_id"],
        external_id=d["external_id"],
        month=d["month"],
        act_date=dt.date.fromisoformat(d["act_date"]),
        contract_id=d["contract_id"],
        amount_minor=d["amount_minor"],
        amount_nds_minor=d["amount_nds_minor"],
        paid_amount_minor=d["paid_amount_minor"],
        currency=d["currency"],
        imported_at_ms=_from_ms(d["imported_at"]),
    )


def reconciliation_to_avro(rec: ReconciliationRecord) -> dict[str, Any]:
    return {
        "tenant": rec.tenant,
        "client_id": rec.client_id,
        "month": rec.month,
        "currency": rec.currency,
        "act_amount_minor": rec.act_amount_minor,
        "ledger_amount_minor": rec.ledger_amount_minor,
        "difference_minor": rec.difference_minor,
        "act_count": rec.act_count,
        "status": rec.status,
        "revision": rec.revision,
        "checked_at": rec.checked_at_ms,
    }


def reconciliation_from_avro(d: dict[str, Any]) -> ReconciliationRecord:
    return ReconciliationRecord(
        tenant=d["tenant"],
        client_id=d["client_id"],
        month=d["month"],
        currency=d["currency"],
        act_amount_minor=d["act_amount_minor"],
        ledger_amount_minor=d["ledger_amount_minor"],
        difference_minor=d["difference_minor"],
        act_count=d["act_count"],
        status=d["status"],
        revision=d["revision"],
        checked_at_ms=_from_ms(d["checked_at"]),
    )


def encode_act(act: ActRecord) -> bytes:
    return messages.default().framing.encode("BalanceAct", act_to_avro(act))


def encode_reconciliation(rec: ReconciliationRecord) -> bytes:
    return messages.default().framing.encode("Reconciliation", reconciliation_to_avro(rec))


def _decode(data: bytes, name: str) -> dict[str, Any]:
    found, datum = messages.default().framing.decode(data)
    if found != name:
        raise ValueError(f"expected a {name} record, got {found}")
    return datum


def decode_act(data: bytes) -> ActRecord:
    return act_from_avro(_decode(data, "BalanceAct"))


def decode_reconciliation(data: bytes) -> ReconciliationRecord:
    return reconciliation_from_avro(_decode(data, "Reconciliation"))
