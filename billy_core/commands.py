"""The commands billy applies: plain, immutable values, one class per command body.

They mirror the Avro `billy.v1.Command` record (schemas/Command.avsc); the codec turns
bytes into these and `validate()` checks what Avro cannot (lengths, amounts, currencies),
naming the field and the reason. Times are integer milliseconds since the epoch (UTC).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from billy_core.limits import ID_CHARS_MAX, NAME_CHARS_MAX, OPERATOR_CHARS_MAX, REASON_CHARS_MAX
from billy_core.money import MoneyError, check_amount, check_currency

# Kept under their old names for the SDK's users.
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
PHONE_CHARS_MAX = 64
PAYMENT_TERM_DAYS_MAX = 365


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


def _check_id(value: str | None, field_name: str) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= ID_LEN_MAX:
        raise InvalidCommand(f"{field_name}: must be 1..{ID_LEN_MAX} characters")
    _check_text(value, field_name)


_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def has_control_chars(value: str) -> bool:
    """True for text PostgreSQL cannot store (NUL) or that has no place in an id or a name."""
    return _CONTROL_CHARS.search(value) is not None


def _check_text(value: str, field_name: str) -> None:
    if has_control_chars(value):
        raise InvalidCommand(f"{field_name}: must not contain control characters")


def validate(command: Command, *, admin: bool = False) -> None:
    """Raise InvalidCommand naming the first bad field; return None when the command is sound.

    `admin` is True for records from `billy.admin.commands`, the only place `Adjust` is allowed.
    """
    _check_id(command.command_id, "command_id")
    _check_id(command.client_id, "client_id")
    body = command.body
    if admin and not isinstance(body, Adjust):
        raise InvalidCommand(
            f"body: billy.admin.commands takes Adjust only, got {type(body).__name__}"
        )
    try:
        match body:
            case RegisterClient() | UpdateClient():
                if not body.name or len(body.name) > NAME_LEN_MAX:
                    raise InvalidCommand(f"body.name: must be 1..{NAME_LEN_MAX} characters")
                if "@" not in body.email or len(body.email) > NAME_LEN_MAX:
                    raise InvalidCommand("body.email: must be an e-mail address")
                _check_text(body.name, "body.name")
                _check_text(body.email, "body.email")
                if body.phone is not None:
                    if not body.phone or len(body.phone) > PHONE_CHARS_MAX:
                        raise InvalidCommand(f"body.phone: must be 1..{PHONE_CHARS_MAX} characters")
                    _check_text(body.phone, "body.phone")
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
                if not body.reason or len(body.reason) > REASON_CHARS_MAX:
                    raise InvalidCommand(f"body.reason: must be 1..{REASON_CHARS_MAX} characters")
                _check_text(body.reason, "body.reason")
                if not body.operator or len(body.operator) > OPERATOR_CHARS_MAX:
                    raise InvalidCommand(
                        f"body.operator: must be 1..{OPERATOR_CHARS_MAX} characters (who adjusts)"
                    )
                _check_text(body.operator, "body.operator")
            case RequestInvoice() | TransferCredit():
                check_amount(body.amount_minor, "body.amount_minor")
                check_currency(body.currency, "body.currency")
                if isinstance(body, RequestInvoice) and body.payer_id:
                    _check_id(body.payer_id, "body.payer_id")
                if body.contract_id is not None:
                    _check_id(body.contract_id, "body.contract_id")
            case UpsertPayer():
                if body.payer_id is not None:
                    _check_id(body.payer_id, "body.payer_id")
                if body.type not in PAYER_FIELDS:
                    raise InvalidCommand("body.type: must be 'ph' or 'ur'")
                for name, value in body.fields.items():
                    if name not in PAYER_FIELDS[body.type]:
                        known = ", ".join(sorted(PAYER_FIELDS[body.type]))
                        raise InvalidCommand(
                            f"body.fields: {name[:32]!r} is not a field of a {body.type!r} payer"
                            f" (known: {known})"
                        )
                    if not isinstance(value, str) or len(value) > NAME_LEN_MAX:
                        raise InvalidCommand(
                            f"body.fields.{name}: must be at most {NAME_LEN_MAX} characters"
                        )
                    _check_text(value, f"body.fields.{name}")
            case UpsertContract():
                if body.contract_id is not None:
                    _check_id(body.contract_id, "body.contract_id")
                _check_id(body.payer_id, "body.payer_id")
                if body.payment_type not in ("prepay", "postpay"):
                    raise InvalidCommand("body.payment_type: must be 'prepay' or 'postpay'")
                check_currency(body.currency, "body.currency")
                if body.payment_type == "prepay" and body.credit_limit_minor is not None:
                    raise InvalidCommand("body.credit_limit_minor: only a postpay contract has one")
                if body.credit_limit_minor is not None:
                    check_amount(body.credit_limit_minor, "body.credit_limit_minor")
                if body.payment_term_days is not None and not (
                    1 <= body.payment_term_days <= PAYMENT_TERM_DAYS_MAX
                ):
                    raise InvalidCommand(
                        f"body.payment_term_days: must be 1..{PAYMENT_TERM_DAYS_MAX}"
                    )
    except MoneyError as exc:
        raise InvalidCommand(str(exc)) from None
