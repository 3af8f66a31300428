"""Money: an integer number of minor units (kopecks) with an ISO 4217 currency.

Never a float, anywhere. Balance speaks decimal strings; the conversion lives in
the Balance adapter, at that boundary only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from billy_core.text import echo

AMOUNT_MINOR_MAX = 10**13
"""The largest amount a single command may carry (DESIGN.md: amounts are > 0 and <= 10^13)."""

_CURRENCY = re.compile(r"^[A-Z]{3}$")

# The currencies billy accepts. A closed set on purpose: a typo such as "RUR" (Balance's
# own spelling for contracts) must be rejected at the door, not become a new wallet currency.
SUPPORTED_CURRENCIES = frozenset({"RUB", "USD", "EUR", "KZT", "BYN", "UAH", "TRY", "UZS"})


class MoneyError(ValueError):
    """An amount or currency that can never be valid; the message names the field and quotes
    at most a short, escaped prefix of the value (`billy_core.text.echo`)."""


def check_currency(currency: str, field: str = "currency") -> str:
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        raise MoneyError(
            f"{field}: must be three upper-case letters (ISO 4217), got {echo(currency)}"
        )
    if currency not in SUPPORTED_CURRENCIES:
        raise MoneyError(f"{field}: unsupported currency {echo(currency)}")
    return currency


def check_amount(amount_minor: int, field: str = "amount_minor", *, signed: bool = False) -> int:
    """Validate an amount in minor units: an int, non-zero, |amount| <= 10^13; > 0 unless signed."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise MoneyError(f"{field}: must be an integer number of minor units")
    if amount_minor == 0:
        raise MoneyError(f"{field}: must not be zero")
    if not signed and amount_minor < 0:
        raise MoneyError(f"{field}: must be positive, got {amount_minor}")
    if abs(amount_minor) > AMOUNT_MINOR_MAX:
        raise MoneyError(f"{field}: must be at most {AMOUNT_MINOR_MAX}, got {amount_minor}")
    return amount_minor


@dataclass(frozen=True, slots=True)
class Money:
    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount_minor, bool) or not isinstance(self.amount_minor, int):
            raise MoneyError("amount_minor: must be an integer number of minor units")
        check_currency(self.currency)

    def __str__(self) -> str:
        sign = "-" if self.amount_minor < 0 else ""
        major, minor = divmod(abs(self.amount_minor), 100)
        return f"{sign}{major}.{minor:02d} {self.currency}"
