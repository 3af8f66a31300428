"""The payment event: a confirmed Balance notification on `<prefix>.internal.events`.

    intake (HTTP, Balance) --PaymentEvent--> <prefix>.internal.events --> ledger

Keyed `<tenant>/<client id>` like the gateway's outcomes on the same topic, so one client's
top-up outcomes and payments reach the ledger in one partition's order. Internal to billy:
versioned JSON with `type: "payment"` (the gateway's outcomes carry no `type`); a reader
refuses another version or type (`PaymentEventError`, the record is dead-lettered).
`tid` travels as a digit string (Balance's Tids pass 2^53, which JSON readers may round).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = ["PaymentEvent", "PaymentEventError", "decode", "encode", "is_payment_event"]

VERSION = 1
TYPE = "payment"
_MARK = b'"type":"payment"'


class PaymentEventError(ValueError):
    """Bytes that are not a payment event of this version; the message names the field."""


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    tenant: str
    client_id: str
    service_order_id: int
    tid: int
    order_sum_minor: int  # the notification's cumulative ConsumeSum, confirmed by Balance
    currency: str
    received_at_ms: int  # when the intake took it

    @property
    def key(self) -> str:
        return f"{self.tenant}/{self.client_id}"

    @property
    def command_id(self) -> str:
        """The id of the payment's result: deterministic per order and Tid."""
        return f"billy-payment:{self.service_order_id}:{self.tid}"


def encode(event: PaymentEvent) -> bytes:
    data = {
        "v": VERSION,
        "type": TYPE,
        "tenant": event.tenant,
        "client_id": event.client_id,
        "service_order_id": event.service_order_id,
        "tid": str(event.tid),
        "order_sum_minor": event.order_sum_minor,
        "currency": event.currency,
        "received_at_ms": event.received_at_ms,
    }
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


def is_payment_event(value: bytes | None) -> bool:
    """Cheap: tells a payment event from a gateway outcome on the shared topic (encode
    writes compact, sorted JSON, so the mark is there verbatim)."""
    return value is not None and _MARK in value


def decode(value: bytes | None) -> PaymentEvent:
    if value is None:
        raise PaymentEventError("value: empty")
    try:
        data = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PaymentEventError(f"value: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise PaymentEventError("value: not a JSON object")
    if data.get("v") != VERSION or data.get("type") != TYPE:
        raise PaymentEventError(f"v/type: not a payment event of version {VERSION}")
    tid = data.get("tid")
    if not isinstance(tid, str) or not tid.isascii() or not tid.isdigit() or len(tid) > 38:
        raise PaymentEventError("tid: not a string of digits")
    return PaymentEvent(
        tenant=_str(data, "tenant"),
        client_id=_str(data, "client_id"),
        service_order_id=_int(data, "service_order_id"),
        tid=int(tid),
        order_sum_minor=_int(data, "order_sum_minor"),
        currency=_str(data, "currency"),
        received_at_ms=_int(data, "received_at_ms"),
    )


def _str(data: dict[str, object], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise PaymentEventError(f"{name}: not a non-empty string")
    return value


def _int(data: dict[str, object], name: str) -> int:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PaymentEventError(f"{name}: not an integer >= 0")
    return value
