"""Balance's decimal strings <-> minor units: exact both ways, or BalanceValueError."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billy_core.balance.errors import BalanceValueError
from billy_core.balance.money import (
    currency_from_balance,
    currency_to_balance,
    parse_decimal,
    positive_amount,
    to_decimal_text,
    to_minor,
)
from billy_core.money import AMOUNT_MINOR_MAX, SUPPORTED_CURRENCIES

amounts = st.integers(min_value=-AMOUNT_MINOR_MAX, max_value=AMOUNT_MINOR_MAX)
currencies = st.sampled_from(sorted(SUPPORTED_CURRENCIES))


@given(amounts, currencies)
def test_round_trip_through_balance_text(amount_minor: int, currency: str) -> None:
    text = to_decimal_text(amount_minor, currency, "amount")
    assert to_minor(text, currency, "amount") == amount_minor
    assert Decimal(text) * 100 == amount_minor  # the text means what it says


@given(amounts, st.integers(min_value=0, max_value=6))
def test_trailing_zeros_past_kopecks_are_exact(amount_minor: int, extra_zeros: int) -> None:
    text = to_decimal_text(amount_minor, "RUB", "amount") + "0" * extra_zeros
    assert to_minor(text, "RUB", "amount") == amount_minor


@given(
    amounts,
    st.integers(min_value=1, max_value=9),
    st.integers(min_value=0, max_value=5),
)
def test_a_nonzero_digit_past_kopecks_is_rejected(
    amount_minor: int, digit: int, zeros_before: int
) -> None:
    text = to_decimal_text(amount_minor, "RUB", "amount") + "0" * zeros_before + str(digit)
    with pytest.raises(BalanceValueError, match="amount: .*past the RUB minor unit"):
        to_minor(text, "RUB", "amount")


@given(st.integers(min_value=AMOUNT_MINOR_MAX + 1, max_value=10**30))
def test_amounts_beyond_the_limit_are_rejected_both_ways(amount_minor: int) -> None:
    with pytest.raises(BalanceValueError, match="beyond"):
        to_decimal_text(amount_minor, "RUB", "amount")
    major, minor = divmod(amount_minor, 100)
    with pytest.raises(BalanceValueError, match="beyond"):
        to_minor(f"{major}.{minor:02d}", "RUB", "amount")


@pytest.mark.parametrize(
    ("text", "minor"),
    [
        ("6000.00", 600000),
        ("40000", 4000000),
        ("0", 0),
        ("-0.00", 0),
        ("12.5", 1250),
        ("+1.01", 101),
        (".5", 50),
        ("7.", 700),
        ("  3.10 ", 310),
        ("100000000000.00", AMOUNT_MINOR_MAX),
        ("-100000000000", -AMOUNT_MINOR_MAX),
        (42, 4200),
    ],
)
def test_known_values(text: str | int, minor: int) -> None:
    assert to_minor(text, "RUB", "amount") == minor


@pytest.mark.parametrize(
    "value",
    [
        "0.0000067",
        "0.001",
        "1.005",
        "1e3",
        "1E-2",
        "NaN",
        "inf",
        "-",
        "",
        "1,5",
        "1 000",
        "0x10",
        "١٢٣",
        "1" * 41,
        1.5,
        True,
        None,
        Decimal("1.00"),
        b"1.00",
    ],
)
def test_values_that_are_not_exact_plain_decimals_are_rejected(value: object) -> None:
    with pytest.raises(BalanceValueError, match="^amount: "):
        to_minor(value, "RUB", "amount")


def test_huge_exponent_is_refused_before_computing_it() -> None:
    with pytest.raises(BalanceValueError, match="beyond"):
        to_minor("9" * 39 + ".", "RUB", "amount")


@pytest.mark.parametrize(
    ("minor", "text"), [(600000, "6000.00"), (1, "0.01"), (-5, "-0.05"), (0, "0.00")]
)
def test_decimal_text(minor: int, text: str) -> None:
    assert to_decimal_text(minor, "RUB", "amount") == text


@pytest.mark.parametrize("value", [1.0, True, "100", Decimal(100), None])
def test_only_ints_become_decimal_text(value: object) -> None:
    with pytest.raises(BalanceValueError, match="^amount: must be an int"):
        to_decimal_text(value, "RUB", "amount")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0, -1, AMOUNT_MINOR_MAX + 1, 1.0, True])
def test_positive_amount_rejects(value: object) -> None:
    with pytest.raises(BalanceValueError, match="^qty: "):
        positive_amount(value, "qty")  # type: ignore[arg-type]


def test_unknown_currency_is_rejected() -> None:
    with pytest.raises(BalanceValueError, match="XXX"):
        to_minor("1.00", "XXX", "amount")
    with pytest.raises(BalanceValueError):
        to_decimal_text(100, "RUR", "amount")  # Balance's spelling never reaches billy's side


def test_ruble_spellings() -> None:
    assert currency_from_balance("RUR") == "RUB"
    assert currency_from_balance("RUB") == "RUB"
    assert currency_from_balance("USD") == "USD"
    assert currency_to_balance("RUB") == "RUR"
    assert currency_to_balance("EUR") == "EUR"
    for bad in ("rur", "XYZ", "", 643):
        with pytest.raises(BalanceValueError):
            currency_from_balance(bad)
    with pytest.raises(BalanceValueError):
        currency_to_balance("RUR")


def test_quantities_stay_exact() -> None:
    assert parse_decimal("0.0000067", "qty") == Decimal("0.0000067")
    assert parse_decimal(3, "qty") == Decimal(3)
