"""Balance's decimal strings <-> billy's integer minor units: the only place they meet.

The rule: conversion is exact, or it does not happen.

- Balance -> billy: a decimal string (`'6000.00'`, `'40000'`, `'-12.5'`) or an int becomes
  minor units by moving the point by the currency's minor-unit digits (2 for every currency
  billy supports). A value with a non-zero digit past the kopecks (`'0.001'`) is rejected
  with `BalanceValueError`, never rounded: money billy cannot hold must stop the flow
  where it enters, not become a silent kopeck of difference in a ledger that must
  reconcile against Balance's acts. Trailing zeros past the kopecks (`'5.0000'`) are exact
  and accepted. Only plain decimal notation is read: no exponent, no spaces, no NaN or
  infinity, at most 40 characters.
- billy -> Balance: minor units become a string with exactly the minor-unit digits
  (`600000` -> `'6000.00'`), which Balance accepts as input.
- Both ways, |amount| <= 10^13 minor units (billy's limit, `billy_core.money`); a float,
  a bool or any other type is a `BalanceValueError`. No float is ever made: Decimal
  parses, integers compute.
- Currency: Balance spells the rouble `RUR` (contracts, credit limits) and `RUB`
  (notifications); billy spells it `RUB`. `currency_from_balance` maps both to `RUB`,
  `currency_to_balance` gives `RUR` for the methods that take it. Other codes pass as
  they are, if billy supports them.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from billy_core.balance.errors import BalanceValueError
from billy_core.money import AMOUNT_MINOR_MAX, SUPPORTED_CURRENCIES, MoneyError, check_currency

# Minor-unit digits per currency (ISO 4217). Every currency billy supports has 2 today;
# a new one must be added here on purpose, so the table is checked against the set below.
MINOR_DIGITS: dict[str, int] = {currency: 2 for currency in SUPPORTED_CURRENCIES}

BALANCE_RUBLE = "RUR"
_BILLY_RUBLE = "RUB"

# [0-9], not \d: \d would admit other scripts' digits, which Decimal() also reads.
_DECIMAL_TEXT = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$")
_DECIMAL_TEXT_CHARS_MAX = 40


def minor_digits(currency: str) -> int:
    """The minor-unit digits of a billy currency; BalanceValueError when billy has none."""
    try:
        return MINOR_DIGITS[currency]
    except KeyError:
        raise BalanceValueError(f"currency: {currency!r} is not a currency billy holds") from None


def parse_decimal(value: object, field: str) -> Decimal:
    """Read a decimal string (or an int) from Balance exactly. Used for quantities as well as
    money; BalanceValueError names `field` when it is not plain decimal notation."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BalanceValueError(f"{field}: expected a decimal string, got {type(value).__name__}")
    if isinstance(value, int):
        return Decimal(value)
    text = value.strip()
    if len(text) > _DECIMAL_TEXT_CHARS_MAX or not _DECIMAL_TEXT.fullmatch(text):
        raise BalanceValueError(f"{field}: not a plain decimal number: {value[:60]!r}")
    try:
        return Decimal(text)  # exact: construction from a string never rounds
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid numbers
        raise BalanceValueError(f"{field}: not a decimal number: {value[:60]!r}") from None


def to_minor(value: object, currency: str, field: str) -> int:
    """A Balance amount (decimal string or int) in minor units of `currency`, exactly.

    Raises BalanceValueError (naming `field`) for a non-zero digit past the minor unit,
    |amount| > 10^13 minor units, a non-decimal value or an unknown currency.
    """
    digits = minor_digits(currency)
    sign, digit_tuple, exponent = parse_decimal(value, field).as_tuple()
    if not isinstance(exponent, int):  # pragma: no cover - the pattern admits no NaN or inf
        raise BalanceValueError(f"{field}: not a finite number: {value!r}")
    coefficient = int("".join(map(str, digit_tuple)) or "0")
    shift = exponent + digits  # minor = coefficient * 10**shift
    if shift >= 0:
        if coefficient and len(str(coefficient)) + shift > 14:  # stop before a huge power
            raise BalanceValueError(f"{field}: {value!r} is beyond {AMOUNT_MINOR_MAX} minor units")
        minor: int = coefficient * 10**shift
    else:
        divisor: int = 10**-shift
        minor, remainder = divmod(coefficient, divisor)
        if remainder:
            raise BalanceValueError(
                f"{field}: {value!r} has digits past the {currency} minor unit "
                f"(1/{10**digits}); billy rounds nothing"
            )
    if minor > AMOUNT_MINOR_MAX:
        raise BalanceValueError(f"{field}: {value!r} is beyond {AMOUNT_MINOR_MAX} minor units")
    return -minor if sign else minor


def to_decimal_text(amount_minor: int, currency: str, field: str) -> str:
    """Minor units as the decimal string Balance takes: `600000` RUB -> `'6000.00'`.

    Raises BalanceValueError for a non-int (floats and bools included), |amount| > 10^13
    or an unknown currency. Zero and negative amounts are allowed here; callers that need a
    positive amount check it themselves.
    """
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise BalanceValueError(
            f"{field}: must be an int of minor units, got {type(amount_minor).__name__}"
        )
    if abs(amount_minor) > AMOUNT_MINOR_MAX:
        raise BalanceValueError(f"{field}: {amount_minor} is beyond {AMOUNT_MINOR_MAX} minor units")
    digits = minor_digits(currency)
    sign = "-" if amount_minor < 0 else ""
    major, minor = divmod(abs(amount_minor), 10**digits)
    return f"{sign}{major}.{minor:0{digits}d}" if digits else f"{sign}{major}"


def currency_from_balance(code: object, field: str = "currency") -> str:
    """Balance's currency code as billy spells it (`RUR` and `RUB` -> `RUB`)."""
    if not isinstance(code, str):
        raise BalanceValueError(f"{field}: expected a currency code, got {type(code).__name__}")
    spelled = _BILLY_RUBLE if code == BALANCE_RUBLE else code
    try:
        return check_currency(spelled, field)
    except MoneyError as error:
        raise BalanceValueError(str(error)) from None


def currency_to_balance(currency: str, field: str = "currency") -> str:
    """billy's currency as Balance's contracts and limits spell it (`RUB` -> `RUR`)."""
    try:
        check_currency(currency, field)
    except MoneyError as error:
        raise BalanceValueError(str(error)) from None
    return BALANCE_RUBLE if currency == _BILLY_RUBLE else currency


def positive_amount(amount_minor: int, field: str) -> int:
    """Check an amount billy sends to Balance: an int, > 0, <= 10^13 (BalanceValueError)."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor <= 0:
        raise BalanceValueError(
            f"{field}: must be a positive int of minor units, got {amount_minor!r}"
        )
    if amount_minor > AMOUNT_MINOR_MAX:
        raise BalanceValueError(f"{field}: {amount_minor} is beyond {AMOUNT_MINOR_MAX} minor units")
    return amount_minor
