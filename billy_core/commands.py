"""The commands billy applies: plain, immutable values, one class per command body.

They mirror the Avro `billy.v1.Command` record (schemas/Command.avsc); the codec turns
bytes into these and `validate()` checks what Avro cannot (lengths, amounts, currencies),
naming the field and the reason. Times are integer milliseconds since the epoch (UTC).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass, field

from billy_core.limits import (
    CODE_CHARS_MAX,
    ID_CHARS_MAX,
    NAME_CHARS_MAX,
    OPERATOR_CHARS_MAX,
    PAYER_FIELD_CHARS_MAX,
    PAYMENT_TERM_DAYS_MAX,
    PHONE_CHARS_MAX,
    REASON_CHARS_MAX,
    TIMESTAMP_MS_MAX,
)
from billy_core.money import MoneyError, check_amount, check_currency
from billy_core.text import echo, has_control_chars

# Kept under their old names for the SDK's users (`has_control_chars` lives in billy_core.text).
ID_LEN_MAX = ID_CHARS_MAX
NAME_LEN_MAX = NAME_CHARS_MAX
REASON_LEN_MAX = REASON_CHARS_MAX
EXPIRE_COMMAND_PREFIX = "billy-expire:"


class InvalidCommand(ValueError):
    """A decodable command whose values can never be applied. Becomes a REJECTED `invalid`."""


@dataclass(frozen=True, slots=True)
class RegisterClient:
    """Creates the wallet at once, and the Balance client and its order through the gateway."""

    name: str
    email: str
    currency: str = "RUB"
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class UpdateClient:
    """Change a registered client's name, email and phone in Balance (the same Balance client)."""

    name: str
    email: str
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class UpsertPayer:
    """A Balance "person" (`PAYER_FIELDS` names what `fields` may hold). Applied by the Balance
    gateway: `payer_id` None adds a payer under the command's id; a known id updates it, an
    unknown one adds it under that id."""

    payer_id: str | None
    type: str  # "ph" individual or "ur" legal entity
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UpsertContract:
    """A Balance contract, prepay or postpay. Applied by the Balance gateway."""

    contract_id: str | None
    payer_id: str
    payment_type: str  # "prepay" or "postpay"
    credit_limit_minor: int | None
    currency: str
    payment_term_days: int | None = None  # postpay: days to pay after the month (None: 15)


@dataclass(frozen=True, slots=True)
class RequestInvoice:
    """A prepay invoice. Applied by the Balance gateway. `payer_id` "" and `contract_id` None
    mean the client's remembered payer (the last upserted) and its prepay contract, if any."""

    amount_minor: int
    currency: str
    payer_id: str
    contract_id: str | None = None


@dataclass(frozen=True, slots=True)
class TransferCredit:
    """A postpay top-up from the credit limit. Applied by the Balance gateway; `contract_id`
    None means the client's last postpay contract."""

    amount_minor: int
    currency: str
    contract_id: str | None = None


@dataclass(frozen=True, slots=True)
class Charge:
    product_id: str
    amount_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class Hold:
    hold_id: str
    product_id: str
    amount_minor: int
    currency: str
    expires_at_ms: int


@dataclass(frozen=True, slots=True)
class ConfirmHold:
    hold_id: str
    amount_minor: int | None = None  # None: confirm all that is held


@dataclass(frozen=True, slots=True)
class ReleaseHold:
    hold_id: str


@dataclass(frozen=True, slots=True)
class Refund:
    charge_command_id: str  # a Charge or ConfirmHold command of the same client
    amount_minor: int | None = None  # None: all that is left to refund


@dataclass(frozen=True, slots=True)
class Adjust:
    """A correction by the billing team; accepted on the admin topic only."""

    amount_minor: int  # may be negative
    currency: str
    reason: str
    operator: str | None = None  # who on the billing team; required on the admin topic


@dataclass(frozen=True, slots=True)
class ExpireHold:
    """billy's own command: release a hold whose `expires_at` has passed.

    The hold sweeper sends it to the client's command partition, so the expiry is an
    ordered event of that client and a replay decides it the same way; the ledger applies
    the same event (same id, `expire_command_id`) itself when a ConfirmHold or ReleaseHold
    finds the hold expired first.
    """

    hold_id: str


Body = (
    RegisterClient
    | UpsertPayer
    | UpsertContract
    | RequestInvoice
    | TransferCredit
    | Charge
    | Hold
    | ConfirmHold
    | ReleaseHold
    | Refund
    | Adjust
    | ExpireHold
    | UpdateClient
)

BALANCE_BODIES = (UpsertPayer, UpsertContract, RequestInvoice, TransferCredit, UpdateClient)
"""Bodies only Balance can apply: the ledger records them as intents for the Balance gateway
and answers them when Balance has answered (RegisterClient too, after creating the wallet)."""

PAYER_FIELDS = {
    "ph": frozenset({"lname", "fname", "mname", "phone", "email"}),
    "ur": frozenset(
        {
            "name",
            "longname",
            "phone",
            "email",
            "legaladdress",
            "postaddress",
            "postcode",
            "inn",
            "kpp",
            "bik",
            "account",
        }
    ),
}
"""The payer fields billy passes to Balance, per payer type, as Balance names them."""
PAYMENT_TYPES = frozenset({"prepay", "postpay"})


@dataclass(frozen=True, slots=True)
class Command:
    command_id: str
    client_id: str
    issued_at_ms: int
    body: Body

    @property
    def kind(self) -> str:
        """The body's type name, e.g. "Charge": a bounded label for metrics."""
        return type(self.body).__name__


def expire_command_id(client_id: str, hold_id: str) -> str:
    """The id of a hold's expiry event, stable per (client, hold): command ids are unique per
    tenant, hold ids per client only. Hashed so it stays within 64 characters."""
    digest = hashlib.blake2b(f"{client_id}\x1f{hold_id}".encode(), digest_size=16).hexdigest()
    return EXPIRE_COMMAND_PREFIX + digest


def _check_id(value: object, field_name: str) -> None:
    _check_text(value, field_name, ID_CHARS_MAX)


def _check_text(value: object, field_name: str, chars_max: int, *, chars_min: int = 1) -> None:
    """A text field: a str of chars_min..chars_max code points without control characters.
    The length is checked first, so nothing is scanned or quoted beyond the bound."""
    if not isinstance(value, str) or not chars_min <= len(value) <= chars_max:
        raise InvalidCommand(f"{field_name}: must be {chars_min}..{chars_max} characters")
    if has_control_chars(value):
        raise InvalidCommand(f"{field_name}: must not contain control characters")


def _check_choice(value: object, field_name: str, choices: Collection[str]) -> None:
    """A closed-set word (payer type, payment type): one of `choices`, quoted short if not."""
    if not isinstance(value, str) or len(value) > CODE_CHARS_MAX or value not in choices:
        known = ", ".join(repr(c) for c in sorted(choices))
        raise InvalidCommand(f"{field_name}: must be one of {known}, got {echo(value)}")


def _check_time(value: object, field_name: str) -> None:
    """A timestamp-millis field: an int of 0..TIMESTAMP_MS_MAX (1970 .. the year 9999)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidCommand(f"{field_name}: must be an integer of milliseconds")
    if not 0 <= value <= TIMESTAMP_MS_MAX:
        raise InvalidCommand(
            f"{field_name}: must be 0..{TIMESTAMP_MS_MAX} ms since the epoch, got {value}"
        )


def validate(command: Command, *, admin: bool = False) -> None:
    """Raise InvalidCommand naming the first bad field; return None when the command is sound.

    Pure, and first: a command reaches PostgreSQL only after this. Every text field of every
    body has a length bound (code points) checked before anything else looks at it, and no
    control characters (`billy_core.text.has_control_chars`); every number has a range; a
    message quotes at most a short, escaped prefix of a bad value (`billy_core.text.echo`).
    The rules are published in `schemas/limits.json`.

    `admin` is True for records from `billy.admin.commands`, the only place `Adjust` is allowed.
    """
    _check_id(command.command_id, "command_id")
    _check_id(command.client_id, "client_id")
    _check_time(command.issued_at_ms, "issued_at")
    body = command.body
    if admin and not isinstance(body, Adjust):
        raise InvalidCommand(
            f"body: billy.admin.commands takes Adjust only, got {type(body).__name__}"
        )
    try:
        _check_body(body, admin)
    except MoneyError as exc:
        raise InvalidCommand(str(exc)) from None


def _check_body(body: Body, admin: bool) -> None:
    match body:
        case RegisterClient() | UpdateClient():
            _check_text(body.name, "body.name", NAME_CHARS_MAX)
            _check_text(body.email, "body.email", NAME_CHARS_MAX)
            if "@" not in body.email:
                raise InvalidCommand("body.email: must be an e-mail address")
            if body.phone is not None:
                _check_text(body.phone, "body.phone", PHONE_CHARS_MAX)
            if isinstance(body, RegisterClient):
                check_currency(body.currency, "body.currency")
        case Charge():
            _check_id(body.product_id, "body.product_id")
            check_amount(body.amount_minor, "body.amount_minor")
            check_currency(body.currency, "body.currency")
        case Hold():
            _check_id(body.hold_id, "body.hold_id")
            _check_id(body.product_id, "body.product_id")
            check_amount(body.amount_minor, "body.amount_minor")
            check_currency(body.currency, "body.currency")
            _check_time(body.expires_at_ms, "body.expires_at")
        case ConfirmHold():
            _check_id(body.hold_id, "body.hold_id")
            if body.amount_minor is not None:
                check_amount(body.amount_minor, "body.amount_minor")
        case ReleaseHold() | ExpireHold():
            _check_id(body.hold_id, "body.hold_id")
        case Refund():
            _check_id(body.charge_command_id, "body.charge_command_id")
            if body.amount_minor is not None:
                check_amount(body.amount_minor, "body.amount_minor")
        case Adjust():
            if not admin:
                raise InvalidCommand("body: Adjust is accepted on billy.admin.commands only")
            check_amount(body.amount_minor, "body.amount_minor", signed=True)
            check_currency(body.currency, "body.currency")
            _check_text(body.reason, "body.reason", REASON_CHARS_MAX)
            if body.operator is None or body.operator == "":
                raise InvalidCommand(
                    f"body.operator: must be 1..{OPERATOR_CHARS_MAX} characters (who adjusts)"
                )
            _check_text(body.operator, "body.operator", OPERATOR_CHARS_MAX)
        case RequestInvoice() | TransferCredit():
            check_amount(body.amount_minor, "body.amount_minor")
            check_currency(body.currency, "body.currency")
            if isinstance(body, RequestInvoice):  # "" means the client's remembered payer
                _check_text(body.payer_id, "body.payer_id", ID_CHARS_MAX, chars_min=0)
            if body.contract_id is not None:
                _check_id(body.contract_id, "body.contract_id")
        case UpsertPayer():
            if body.payer_id is not None:
                _check_id(body.payer_id, "body.payer_id")
            _check_choice(body.type, "body.type", PAYER_FIELDS)
            known = PAYER_FIELDS[body.type]
            if not isinstance(body.fields, dict):
                raise InvalidCommand("body.fields: must be a map of strings")
            for name, value in body.fields.items():
                if not isinstance(name, str) or name not in known:
                    raise InvalidCommand(
                        f"body.fields: {echo(name)} is not a field of a {body.type!r} payer"
                        f" (known: {', '.join(sorted(known))})"
                    )
                _check_text(value, f"body.fields.{name}", PAYER_FIELD_CHARS_MAX, chars_min=0)
        case UpsertContract():
            if body.contract_id is not None:
                _check_id(body.contract_id, "body.contract_id")
            _check_id(body.payer_id, "body.payer_id")
            _check_choice(body.payment_type, "body.payment_type", PAYMENT_TYPES)
            check_currency(body.currency, "body.currency")
            if body.payment_type == "prepay" and body.credit_limit_minor is not None:
                raise InvalidCommand("body.credit_limit_minor: only a postpay contract has one")
            if body.credit_limit_minor is not None:
                check_amount(body.credit_limit_minor, "body.credit_limit_minor")
            if body.payment_term_days is not None and (
                isinstance(body.payment_term_days, bool)
                or not isinstance(body.payment_term_days, int)
                or not 1 <= body.payment_term_days <= PAYMENT_TERM_DAYS_MAX
            ):
                raise InvalidCommand(f"body.payment_term_days: must be 1..{PAYMENT_TERM_DAYS_MAX}")
