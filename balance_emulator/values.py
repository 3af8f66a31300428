"""Reading Balance's argument values and writing its answers.

Inputs: ids are ints or digit strings; money and quantities are ints or plain decimal
strings (never floats: a float is refused, it cannot carry kopecks exactly); dates are
XML-RPC dateTime values or strings. Outputs: money as a string with two decimals
('6000.00'), quantities as plain decimal strings without trailing zeros ('40000',
'0.0000067').

Balance lives in Moscow time: a naive date-time is read as Moscow time (UTC+3 all year;
Russia has had no daylight saving since 2014), and dates it hands out are Moscow dates.
"""

from __future__ import annotations

import datetime as dt
import re
import xmlrpc.client
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from balance_emulator.errors import BalanceError, invalid_param

MOSCOW = dt.timezone(dt.timedelta(hours=3), "MSK")
MONEY_STEP = Decimal("0.01")
QTY_STEP = Decimal("0.000001")
ID_MAX = 2**31 - 1  # XML-RPC <int> is 32-bit: ids must fit

_DECIMAL_TEXT = re.compile(r"^[+-]?\d{1,20}(?:\.\d{1,12})?$")
_EMAIL = re.compile(r"^[^@\s<>,;\"']+@[^@\s<>,;\"']+\.[A-Za-z]{2,}$")


def now_moscow() -> dt.datetime:
    """Now as a naive Moscow date-time (the way Balance stores and compares times)."""
    return dt.datetime.now(MOSCOW).replace(tzinfo=None, microsecond=0)


def parse_id(value: object, field: str) -> int:
    """A positive id from an int or a digit string; INVALID_PARAM otherwise."""
    if isinstance(value, bool):
        raise invalid_param(f"{field} must be an integer id, got a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:
        raise invalid_param(f"{field} must be an integer id, got {value!r}")
    if not 0 < number <= ID_MAX:
        raise invalid_param(f"{field} must be between 1 and {ID_MAX}, got {number}")
    return number


UID_MAX = 10**18


def parse_uid(value: object) -> int:
    """The operator's uid, first argument of most write methods. Real uids outgrow XML-RPC's
    32-bit <int>, so they usually come as digit strings: up to 10^18 is accepted."""
    if isinstance(value, str) and value.strip().isdigit():
        uid = int(value.strip())
        if 0 < uid <= UID_MAX:
            return uid
    return parse_id(value, "uid")


def parse_decimal(value: object, field: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | str):
        kind = type(value).__name__
        raise invalid_param(f"{field} must be an int or a decimal string, got {kind}")
    if isinstance(value, int):
        return Decimal(value)
    text = value.strip()
    if not _DECIMAL_TEXT.match(text):
        raise invalid_param(f"{field} must be a plain decimal number, got {value[:40]!r}")
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid numbers
        raise invalid_param(f"{field} is not a number: {value[:40]!r}") from None


def parse_money(value: object, field: str, *, positive: bool = True) -> Decimal:
    """Money: kopecks at most (Balance refuses fractions of a kopeck)."""
    amount = parse_decimal(value, field)
    if amount != amount.quantize(MONEY_STEP):
        raise invalid_param(f"{field} has more than two decimals: {value!r}")
    if positive and amount <= 0:
        raise invalid_param(f"{field} must be positive, got {value!r}")
    if not positive and amount < 0:
        raise invalid_param(f"{field} must not be negative, got {value!r}")
    return amount


def parse_qty(value: object, field: str, *, positive: bool = True) -> Decimal:
    qty = parse_decimal(value, field)
    if qty != qty.quantize(QTY_STEP):
        raise invalid_param(f"{field} has more than six decimals: {value!r}")
    if positive and qty <= 0:
        raise invalid_param(f"{field} must be positive, got {value!r}")
    if not positive and qty < 0:
        raise invalid_param(f"{field} must not be negative, got {value!r}")
    return qty


def money(amount: Decimal) -> str:
    """'6000.00'."""
    return str(amount.quantize(MONEY_STEP, rounding=ROUND_HALF_UP))


def qty(quantity: Decimal) -> str:
    """'40000', '0.0000067', '12.5': plain notation, no exponent, no trailing zeros."""
    text = format(quantity.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def round_money(amount: Decimal) -> Decimal:
    return amount.quantize(MONEY_STEP, rounding=ROUND_HALF_UP)


def round_qty(quantity: Decimal) -> Decimal:
    return quantity.quantize(QTY_STEP, rounding=ROUND_HALF_UP)


def parse_flag(value: object, field: str) -> bool:
    """0/1 (ints, digit strings or booleans)."""
    if isinstance(value, bool):
        return value
    if value in (0, 1, "0", "1"):
        return value in (1, "1")
    raise invalid_param(f"{field} must be 0 or 1, got {value!r}")


def parse_text(value: object, field: str, *, max_len: int = 512) -> str:
    if not isinstance(value, str):
        raise invalid_param(f"{field} must be a string, got {type(value).__name__}")
    if len(value) > max_len:
        raise invalid_param(f"{field} is longer than {max_len} characters")
    return value


def parse_email(value: object, field: str = "email") -> str:
    text = parse_text(value, field).strip()
    if not _EMAIL.match(text):
        raise BalanceError("WRONG_EMAIL", f"Invalid email: {text[:80]!r}", field=field)
    return text


def parse_datetime(value: object, field: str) -> dt.datetime:
    """A naive Moscow date-time from an XML-RPC dateTime or a string.

    Strings: 'YYYY-MM-DD', 'YYYY-MM-DD HH:MM:SS', ISO 8601 with 'T' (an offset, if given,
    is converted to Moscow time) or XML-RPC's 'YYYYMMDDTHH:MM:SS'.
    """
    if isinstance(value, xmlrpc.client.DateTime):
        value = value.value
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            if re.match(r"^\d{8}T", text):
                parsed = dt.datetime.strptime(text, "%Y%m%dT%H:%M:%S")
            else:
                parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            raise invalid_param(f"{field} is not a date: {text[:40]!r}") from None
    else:
        raise invalid_param(f"{field} must be a date, got {type(value).__name__}")
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(MOSCOW).replace(tzinfo=None)
    return parsed.replace(microsecond=0)


def to_xmlrpc_datetime(moment: dt.datetime | str | None) -> xmlrpc.client.DateTime | None:
    """A stored ISO text (or datetime) as an XML-RPC dateTime, None stays None."""
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment)
    return xmlrpc.client.DateTime(moment)


def require_struct(value: object, name: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise invalid_param(f"{name} must be a struct, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise invalid_param(f"{name} has a non-string key {key!r}")
    return value


def require_list(value: object, name: str, *, max_len: int = 1000) -> list[object]:
    if not isinstance(value, list | tuple):
        raise invalid_param(f"{name} must be an array, got {type(value).__name__}")
    if len(value) > max_len:
        raise invalid_param(f"{name} has more than {max_len} items")
    return list(value)


def refuse_unknown_keys(struct: Mapping[str, object], allowed: frozenset[str], name: str) -> None:
    """Key casing matters in Balance (CLIENT_ID vs ClientID vs client_id): a key this
    method does not know is refused, so a wrong spelling shows up in tests at once."""
    unknown = sorted(set(struct) - allowed)
    if unknown:
        raise invalid_param(
            f"{name} has unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(allowed))}"
        )
