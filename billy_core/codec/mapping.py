"""Domain values <-> the dicts fastavro reads and writes (no bytes here).

Commands and results map to billy_core.commands and billy_core.results. The two output
records that have no domain type elsewhere, `AppliedService` and `WalletSnapshot`, are
defined here as small frozen dataclasses.

Field names are the schema's, with one rule: a timestamp-millis field `x_at` is the
domain's `x_at_ms` (int milliseconds since the epoch, UTC). Reading accepts either int
milliseconds (single-object framing) or the aware datetimes fastavro's logical reader
makes (registry framing) and converts the latter with integer arithmetic, so no value
is rounded. The Command body union is written in fastavro's tuple notation,
`("billy.v1.Charge", {...})`, and read back the same way (`return_record_name=True`), so
the branch is never guessed from the dict's shape.

Writing checks every long field is an `int` (not a bool, not a float) before fastavro
sees it: fastavro itself would silently truncate 1.5 to 1 and write True as 1.

Raises:
- `*_to_avro`: EncodeError for a value Avro cannot carry (non-int money or time, a body
  type with no schema).
- `*_from_avro`: WrongSchema for a Command body of an unknown record type, CorruptBody
  for a timestamp that is not an int or an aware datetime; KeyError / TypeError only for
  dicts that did not come from the decoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from billy_core import commands as c
from billy_core.codec.errors import CorruptBody, EncodeError, WrongSchema
from billy_core.codec.schemas import NAMESPACE
from billy_core.results import Code, Result, Status

__all__ = [
    "AppliedService",
    "ServiceKind",
    "WalletSnapshot",
    "applied_service_from_avro",
    "applied_service_to_avro",
    "command_from_avro",
    "command_to_avro",
    "result_from_avro",
    "result_to_avro",
    "wallet_snapshot_from_avro",
    "wallet_snapshot_to_avro",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


class ServiceKind(StrEnum):
    CHARGE = "CHARGE"  # revenue from a Charge or a ConfirmHold
    REFUND = "REFUND"  # revenue returned by a Refund
    PAYMENT = "PAYMENT"  # money received from Balance (a notified payment)


@dataclass(slots=True, init=False, unsafe_hash=True)
class AppliedService:
    """One line of billy.applied-services: client A bought (or got back) product X at T for N."""

    # A hot-path value: explicit __init__, Final fields (billy_core.compiled, "Values").
    tenant: Final[str]
    client_id: Final[str]
    command_id: Final[str]
    kind: Final[ServiceKind]
    product_id: Final[str]
    amount_minor: Final[int]  # > 0; `kind` gives the direction
    currency: Final[str]
    applied_at_ms: Final[int]
    refund_of: Final[str | None]  # REFUND: the refunded command's id

    def __init__(
        self,
        tenant: str,
        client_id: str,
        command_id: str,
        kind: ServiceKind,
        product_id: str,
        amount_minor: int,
        currency: str,
        applied_at_ms: int,
        refund_of: str | None = None,
    ) -> None:
        self.tenant = tenant
        self.client_id = client_id
        self.command_id = command_id
        self.kind = kind
        self.product_id = product_id
        self.amount_minor = amount_minor
        self.currency = currency
        self.applied_at_ms = applied_at_ms
        self.refund_of = refund_of


@dataclass(slots=True, init=False, unsafe_hash=True)
class WalletSnapshot:
    """The value of the compacted billy.wallets topic. No names or e-mails, ever."""

    # A hot-path value: explicit __init__, Final fields (billy_core.compiled, "Values").
    tenant: Final[str]
    client_id: Final[str]
    currency: Final[str]
    available_minor: Final[int]
    held_minor: Final[int]
    wallet_version: Final[int]
    updated_at_ms: Final[int]

    def __init__(
        self,
        tenant: str,
        client_id: str,
        currency: str,
        available_minor: int,
        held_minor: int,
        wallet_version: int,
        updated_at_ms: int,
    ) -> None:
        self.tenant = tenant
        self.client_id = client_id
        self.currency = currency
        self.available_minor = available_minor
        self.held_minor = held_minor
        self.wallet_version = wallet_version
        self.updated_at_ms = updated_at_ms


# ---- Command ---------------------------------------------------------------------------

# body class -> (Avro full name, ((avro field, attribute, is a long), ...))
_BODY_FIELDS: dict[type, tuple[str, tuple[tuple[str, str, bool], ...]]] = {}
_BODY_BY_NAME: dict[str, tuple[type, tuple[tuple[str, str, bool], ...]]] = {}


def _body(cls: type, *spec: tuple[str, str, bool]) -> None:
    fullname = f"{NAMESPACE}.{cls.__name__}"
    _BODY_FIELDS[cls] = (fullname, spec)
    _BODY_BY_NAME[fullname] = (cls, spec)


def _s(name: str) -> tuple[str, str, bool]:  # a field of any non-long type, same name
    return (name, name, False)


def _n(name: str, attr: str | None = None) -> tuple[str, str, bool]:  # a long (maybe null)
    return (name, attr or name, True)


_body(c.RegisterClient, _s("name"), _s("email"), _s("currency"), _s("phone"))
_body(c.UpsertPayer, _s("payer_id"), _s("type"), _s("fields"))
_body(
    c.UpsertContract,
    _s("contract_id"),
    _s("payer_id"),
    _s("payment_type"),
    _n("credit_limit_minor"),
    _s("currency"),
    _n("payment_term_days"),
)
_body(c.RequestInvoice, _n("amount_minor"), _s("currency"), _s("payer_id"), _s("contract_id"))
_body(c.TransferCredit, _n("amount_minor"), _s("currency"), _s("contract_id"))
_body(c.Charge, _s("product_id"), _n("amount_minor"), _s("currency"))
_body(
    c.Hold,
    _s("hold_id"),
    _s("product_id"),
    _n("amount_minor"),
    _s("currency"),
    _n("expires_at", "expires_at_ms"),
)
_body(c.ConfirmHold, _s("hold_id"), _n("amount_minor"))
_body(c.ReleaseHold, _s("hold_id"))
_body(c.Refund, _s("charge_command_id"), _n("amount_minor"))
_body(c.Adjust, _n("amount_minor"), _s("currency"), _s("reason"), _s("operator"))
_body(c.ExpireHold, _s("hold_id"))
_body(c.UpdateClient, _s("name"), _s("email"), _s("phone"))

# The timestamp-millis fields among the longs: read may hand them over as datetimes.
_TIMESTAMPS = frozenset({"expires_at"})


def command_to_avro(command: c.Command) -> dict[str, Any]:
    """The `billy.v1.Command` dict of `command`. Raises EncodeError (see module doc)."""
    # Read as Any: a service may have put anything in a Command, and this module runs
    # compiled (billy_core.compiled), where a typed read would refuse a float or a None with
    # a TypeError before the checks here and in the writer could name the field.
    given: Any = command
    body = given.body
    found = _BODY_FIELDS.get(type(body))
    if found is None:
        raise EncodeError(f"Command.body: no schema for {type(body).__name__}")
    fullname, spec = found
    fields: dict[str, Any] = {}
    for avro_name, attr, is_long in spec:
        value = getattr(body, attr)
        if is_long and value is not None:
            _check_long(value, f"body.{attr}")
        fields[avro_name] = dict(value) if avro_name == "fields" else value
    return {
        "command_id": given.command_id,
        "client_id": given.client_id,
        "issued_at": _check_long(given.issued_at_ms, "issued_at_ms"),
        "body": (fullname, fields),
    }


def command_from_avro(datum: dict[str, Any]) -> c.Command:
    """The Command of a decoded `billy.v1.Command` dict (body as a (name, dict) tuple).

    Raises WrongSchema for a body record billy does not know, CorruptBody for a bad
    timestamp.
    """
    body_name, body = datum["body"]
    found = _BODY_BY_NAME.get(body_name)
    if found is None:
        raise WrongSchema("a Command body", body_name)
    cls, spec = found
    kwargs = {}
    for avro_name, attr, _ in spec:
        value = body[avro_name]
        if avro_name in _TIMESTAMPS:
            value = _ms(value, avro_name)
        kwargs[attr] = value
    return c.Command(
        command_id=datum["command_id"],
        client_id=datum["client_id"],
        issued_at_ms=_ms(datum["issued_at"], "issued_at"),
        body=cls(**kwargs),
    )


# ---- Result ----------------------------------------------------------------------------

_CODES = {code.value: code for code in Code}


def result_to_avro(result: Result) -> dict[str, Any]:
    """The `billy.v1.Result` dict of `result`. Raises EncodeError (see module doc)."""
    return {
        "command_id": result.command_id,
        "client_id": result.client_id,
        "status": str(result.status),
        "code": str(result.code),
        "message": result.message,
        "currency": result.currency,
        "available_minor": _check_long(result.available_minor, "available_minor"),
        "held_minor": _check_long(result.held_minor, "held_minor"),
        "wallet_version": _check_long(result.wallet_version, "wallet_version"),
        "duplicate": result.duplicate,
        "processed_at": _check_long(result.processed_at_ms, "processed_at_ms"),
        "details": dict(result.details),
    }


def result_from_avro(datum: dict[str, Any]) -> Result:
    """The Result of a decoded `billy.v1.Result` dict.

    A code this version does not know (added by a newer billy; the schema keeps `code` a
    string for exactly this) is kept as the plain string, so a reader still sees the
    status and can treat the code as "unknown". Raises CorruptBody for a bad timestamp.
    """
    code = datum["code"]
    return Result(
        command_id=datum["command_id"],
        client_id=datum["client_id"],
        status=Status(datum["status"]),
        code=_CODES.get(code, code),
        message=datum["message"],
        currency=datum["currency"],
        available_minor=datum["available_minor"],
        held_minor=datum["held_minor"],
        wallet_version=datum["wallet_version"],
        duplicate=datum["duplicate"],
        processed_at_ms=_ms(datum["processed_at"], "processed_at"),
        details=dict(datum["details"]),
    )


# ---- AppliedService, WalletSnapshot -----------------------------------------------------


def applied_service_to_avro(line: AppliedService) -> dict[str, Any]:
    """The `billy.v1.AppliedService` dict of `line`. Raises EncodeError."""
    return {
        "tenant": line.tenant,
        "client_id": line.client_id,
        "command_id": line.command_id,
        "kind": str(line.kind),
        "product_id": line.product_id,
        "amount_minor": _check_long(line.amount_minor, "amount_minor"),
        "currency": line.currency,
        "applied_at": _check_long(line.applied_at_ms, "applied_at_ms"),
        "refund_of": line.refund_of,
    }


def applied_service_from_avro(datum: dict[str, Any]) -> AppliedService:
    """The AppliedService of a decoded dict. Raises CorruptBody for a bad timestamp."""
    return AppliedService(
        tenant=datum["tenant"],
        client_id=datum["client_id"],
        command_id=datum["command_id"],
        kind=ServiceKind(datum["kind"]),
        product_id=datum["product_id"],
        amount_minor=datum["amount_minor"],
        currency=datum["currency"],
        applied_at_ms=_ms(datum["applied_at"], "applied_at"),
        refund_of=datum["refund_of"],
    )


def wallet_snapshot_to_avro(snapshot: WalletSnapshot) -> dict[str, Any]:
    """The `billy.v1.WalletSnapshot` dict of `snapshot`. Raises EncodeError."""
    return {
        "tenant": snapshot.tenant,
        "client_id": snapshot.client_id,
        "currency": snapshot.currency,
        "available_minor": _check_long(snapshot.available_minor, "available_minor"),
        "held_minor": _check_long(snapshot.held_minor, "held_minor"),
        "wallet_version": _check_long(snapshot.wallet_version, "wallet_version"),
        "updated_at": _check_long(snapshot.updated_at_ms, "updated_at_ms"),
    }


def wallet_snapshot_from_avro(datum: dict[str, Any]) -> WalletSnapshot:
    """The WalletSnapshot of a decoded dict. Raises CorruptBody for a bad timestamp."""
    return WalletSnapshot(
        tenant=datum["tenant"],
        client_id=datum["client_id"],
        currency=datum["currency"],
        available_minor=datum["available_minor"],
        held_minor=datum["held_minor"],
        wallet_version=datum["wallet_version"],
        updated_at_ms=_ms(datum["updated_at"], "updated_at"),
    )


# ---- helpers ---------------------------------------------------------------------------


def _check_long(value: Any, field: str) -> int:
    if type(value) is not int:  # bool and float are refused; int subclasses too (rare)
        raise EncodeError(f"{field}: must be an int, got {type(value).__name__}")
    return value


def _ms(value: Any, field: str) -> int:
    """int milliseconds from an int or an aware datetime, exactly (floor, no float)."""
    if type(value) is int:
        return value
    if isinstance(value, datetime) and value.tzinfo is not None:
        return (value - _EPOCH) // _ONE_MS
    raise CorruptBody(f"{field}: not a timestamp: {value!r}")
