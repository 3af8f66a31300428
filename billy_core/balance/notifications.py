"""Balance's notifications to billy (`NotifyOrder2`): signature, both forms, every field checked.

Balance calls billy back when an order's money changes, in one of two forms:

    JSON      POST <url>/BalanceClient/NotifyOrder2, body a JSON array of structs; 200 = taken
    XML-RPC   POST <url>, method BalanceClient.NotifyOrder2, one struct; answer [0, "ok"]

Every request carries `X-Balance-Signature: sha256=<hex HMAC-SHA256 of the raw body>` keyed
with the shared secret; `signature_valid` compares in constant time and runs BEFORE anything
parses the body (an unauthenticated body never reaches the XML parser).

`read_order` turns one struct into an `OrderNotification` or raises `NotificationError` naming
the field and the reason. `NotifyClient2` and `NotifyInvoice` are known methods billy answers
with success and ignores. This module only reads and writes bytes: the intake role
(`intake/`) does the HTTP, the confirmation with `GetOrdersInfo` and the Kafka part.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import xmlrpc.client
from collections.abc import Mapping
from dataclasses import dataclass
from xml.parsers.expat import ExpatError

from billy_core.balance.errors import BalanceValueError
from billy_core.balance.money import currency_from_balance, parse_decimal, to_minor

__all__ = [
    "IGNORED_METHODS",
    "NOTIFY_ORDER",
    "SIGNATURE_HEADER",
    "NotificationError",
    "OrderNotification",
    "parse_json",
    "parse_xmlrpc",
    "read_order",
    "sign",
    "signature_valid",
    "xmlrpc_fault",
    "xmlrpc_success",
]

SIGNATURE_HEADER = "X-Balance-Signature"
NOTIFY_ORDER = "NotifyOrder2"
IGNORED_METHODS = frozenset({"NotifyClient2", "NotifyInvoice"})
STRUCTS_PER_DELIVERY_MAX = 1000
TID_DIGITS_MAX = 38  # fits NUMERIC(40, 0); Balance's Tids are ~20 digits
ORDER_ID_MAX = 2**63 - 1
_FIGURES = ("ConsumeQty", "ConsumeAmount", "CompletionQty")


class NotificationError(ValueError):
    """A notification billy refuses; the message names the field and the reason."""


@dataclass(frozen=True, slots=True)
class OrderNotification:
    """One `NotifyOrder2` struct as billy holds it: cumulative figures of one order."""

    service_id: int
    service_order_id: int
    tid: int
    consume_sum_minor: int
    currency: str


def sign(secret: bytes, body: bytes) -> str:
    """The header value Balance sends (tests and the benchmark sign with it)."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def signature_valid(secret: bytes, body: bytes, header: str | None) -> bool:
    """True when `header` is the body's HMAC under `secret`; constant-time compare."""
    if not header or not secret:
        return False
    expected = sign(secret, body).encode()
    return hmac.compare_digest(expected, header.strip().encode("utf-8", "replace"))


def parse_json(body: bytes) -> list[Mapping[str, object]]:
    """The structs of a JSON delivery (an array; a single object is taken as one)."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotificationError(f"body: not JSON ({exc})") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data:
        raise NotificationError("body: expected a non-empty JSON array of structs")
    if len(data) > STRUCTS_PER_DELIVERY_MAX:
        raise NotificationError(f"body: more than {STRUCTS_PER_DELIVERY_MAX} structs")
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise NotificationError(f"body[{i}]: not a struct")
    return data


def parse_xmlrpc(body: bytes) -> tuple[str, tuple[object, ...]]:
    """(method without the `BalanceClient.` prefix, params) of an XML-RPC call."""
    try:
        params, method = xmlrpc.client.loads(body, use_builtin_types=True)
    except (ExpatError, xmlrpc.client.ResponseError, ValueError, TypeError) as exc:
        raise NotificationError(f"body: not an XML-RPC call ({exc})") from None
    if not method:
        raise NotificationError("methodName: missing")
    prefix, _, name = method.rpartition(".")
    if prefix not in ("", "BalanceClient"):
        raise NotificationError(f"methodName: {method[:80]!r} is not a BalanceClient method")
    return name, params


def read_order(struct: Mapping[str, object], service_id: int) -> OrderNotification:
    """One NotifyOrder2 struct, every field checked; NotificationError names the first bad one."""
    sid = _int(struct, "ServiceID")
    if sid != service_id:
        raise NotificationError(f"ServiceID: {sid} is not billy's service ({service_id})")
    order = _int(struct, "ServiceOrderID")
    tid_value = struct.get("Tid")
    if isinstance(tid_value, int) and not isinstance(tid_value, bool):
        tid_value = str(tid_value)
    if not isinstance(tid_value, str) or not tid_value.isascii() or not tid_value.isdigit():
        raise NotificationError("Tid: missing or not a string of digits")
    if len(tid_value) > TID_DIGITS_MAX:
        raise NotificationError(f"Tid: longer than {TID_DIGITS_MAX} digits")
    tid = int(tid_value)
    if tid <= 0:
        raise NotificationError("Tid: must be > 0")
    signal = struct.get("Signal", 1)
    if isinstance(signal, bool) or signal not in (1, "1"):
        raise NotificationError(f"Signal: {str(signal)[:20]!r} is not 1 (order balance changed)")
    try:
        currency = currency_from_balance(struct.get("ConsumeCurrency"), "ConsumeCurrency")
        if "ConsumeSum" not in struct:
            raise NotificationError("ConsumeSum: missing")
        total = to_minor(struct["ConsumeSum"], currency, "ConsumeSum")
        for name in _FIGURES:
            if name in struct:
                parse_decimal(struct[name], name)
    except BalanceValueError as exc:
        raise NotificationError(str(exc)) from None
    if total < 0:
        raise NotificationError("ConsumeSum: negative")
    return OrderNotification(sid, order, tid, total, currency)


def xmlrpc_success() -> bytes:
    return xmlrpc.client.dumps(([0, "ok"],), methodresponse=True).encode()


def xmlrpc_fault(code: int, message: str) -> bytes:
    return xmlrpc.client.dumps(xmlrpc.client.Fault(code, message), methodresponse=True).encode()


def _int(struct: Mapping[str, object], name: str) -> int:
    value = struct.get(name)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise NotificationError(f"{name}: missing or not an integer")
    if not 0 < value <= ORDER_ID_MAX:
        raise NotificationError(f"{name}: out of range")
    return value
