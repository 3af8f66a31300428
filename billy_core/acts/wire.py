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
    "decode_act",
    "decode_reconciliation",
    "encode_act",
    "encode_reconciliation",
    "reconciliation_event_id",
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
    imported_at: dt.datetime


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
    checked_at: dt.datetime


def act_event_id(act_id: int) -> str:
    return f"act:{act_id}"


def reconciliation_event_id(tenant: str, client_id: str, month: str, revision: int) -> str:
    return f"reconciliation:{tenant}/{client_id}:{month}:{revision}"


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000) if moment.tzinfo else _naive(moment)


def _naive(moment: dt.datetime) -> int:
    raise ValueError(f"expected an aware instant, got naive {moment.isoformat()}")


def encode_act(act: ActRecord) -> bytes:
    datum: dict[str, Any] = {
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
        "imported_at": _ms(act.imported_at),
    }
    return messages.default().framing.encode("BalanceAct", datum)


def encode_reconciliation(rec: ReconciliationRecord) -> bytes:
    datum: dict[str, Any] = {
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
        "checked_at": _ms(rec.checked_at),
    }
    return messages.default().framing.encode("Reconciliation", datum)


def _decode(data: bytes, name: str) -> dict[str, Any]:
    found, datum = messages.default().framing.decode(data)
    if found != name:
        raise ValueError(f"expected a {name} record, got {found}")
    return datum


def decode_act(data: bytes) -> ActRecord:
    d = _decode(data, "BalanceAct")
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
        imported_at=_aware(d["imported_at"]),
    )


def decode_reconciliation(data: bytes) -> ReconciliationRecord:
    d = _decode(data, "Reconciliation")
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
        checked_at=_aware(d["checked_at"]),
    )


def _aware(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromtimestamp(int(value) / 1000, dt.UTC)
