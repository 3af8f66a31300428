"""Reading Balance's answers: every field by its exact name, every value checked.

An answer of the wrong shape (a missing key, a list where a struct should be, an id that
is not a number) raises `BalanceBadAnswer`: the call was made and its result cannot be
read, so for a write its outcome is unknown. Money goes through `money.to_minor` and may
raise `BalanceValueError` (a sub-kopeck amount: never rounded).

Balance keeps time in Moscow (UTC+3 all year since 2014) and sends naive date-times;
they become aware datetimes here, and aware datetimes become naive Moscow ones on the
way out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import NoReturn

from billy_core.balance import money
from billy_core.balance.errors import BalanceBadAnswer, BalanceValueError
from billy_core.balance.faults import fault_from_text

MOSCOW = dt.timezone(dt.timedelta(hours=3), "MSK")


def to_moscow_naive(moment: dt.datetime, field: str) -> dt.datetime:
    """An aware datetime as the naive Moscow time Balance reads; naive is refused (whose?)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise BalanceValueError(f"{field}: needs a time zone, got naive {moment.isoformat()}")
    return moment.astimezone(MOSCOW).replace(tzinfo=None, microsecond=0)


class AnswerReader:
    """Reads one method's answer; errors name the method and the field."""

    def __init__(self, method: str, *, idempotent: bool) -> None:
        self.method = method
        self.idempotent = idempotent

    def bad(self, problem: str) -> NoReturn:
        raise BalanceBadAnswer(
            f"Balance2.{self.method}: {problem}",
            method=f"Balance2.{self.method}",
            idempotent=self.idempotent,
        )

    # --- containers -------------------------------------------------------------------
    def struct(self, value: object, what: str) -> Mapping[str, object]:
        if not isinstance(value, dict):
            self.bad(f"{what}: expected a struct, got {type(value).__name__}")
        return value

    def items(self, value: object, what: str) -> list[object]:
        if not isinstance(value, list | tuple):
            self.bad(f"{what}: expected an array, got {type(value).__name__}")
        return list(value)

    def structs(self, value: object, what: str) -> list[Mapping[str, object]]:
        return [
            self.struct(item, f"{what}[{index}]")
            for index, item in enumerate(self.items(value, what))
        ]

    def status_array(self, value: object, length: int) -> list[object]:
        """`[0, ...]` (CreateClient, FindClient, GetClientByIdBatch): a non-zero status is
        Balance refusing, and its message (an <error> document, or text) becomes a fault."""
        answer = self.items(value, "answer")
        if not answer or isinstance(answer[0], bool) or not isinstance(answer[0], int):
            self.bad(f"expected a status array, got {value!r:.200}")
        if answer[0] != 0:
            message = answer[1] if len(answer) > 1 else ""
            raise fault_from_text(str(message), method=f"Balance2.{self.method}")
        if len(answer) != length:
            self.bad(f"expected a status array of {length}, got {len(answer)} items")
        return answer

    # --- fields -----------------------------------------------------------------------
    def field(self, struct: Mapping[str, object], key: str) -> object:
        if key not in struct:
            self.bad(f"no {key} in the answer (keys: {', '.join(sorted(struct))[:200]})")
        return struct[key]

    def int_(self, struct: Mapping[str, object], key: str) -> int:
        return self.int_value(self.field(struct, key), key)

    def opt_int(self, struct: Mapping[str, object], key: str) -> int | None:
        value = struct.get(key)
        if value in (None, "", 0, "0"):
            return None
        return self.int_value(value, key)

    def int_value(self, value: object, key: str) -> int:
        if isinstance(value, bool):
            self.bad(f"{key}: expected an integer, got a boolean")
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
            return int(value.strip())
        self.bad(f"{key}: expected an integer, got {value!r:.60}")

    def str_(self, struct: Mapping[str, object], key: str) -> str:
        value = self.field(struct, key)
        if isinstance(value, bool) or not isinstance(value, str | int):
            self.bad(f"{key}: expected a string, got {type(value).__name__}")
        return str(value)

    def opt_str(self, struct: Mapping[str, object], key: str) -> str | None:
        value = struct.get(key)
        if value is None or value == "":
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            self.bad(f"{key}: expected a string, got {type(value).__name__}")
        return str(value)

    def flag(self, struct: Mapping[str, object], key: str) -> bool:
        value = self.field(struct, key)
        if value in (0, 1, "0", "1", True, False):
            return value in (1, "1", True)
        self.bad(f"{key}: expected 0 or 1, got {value!r:.60}")

    def minor(self, struct: Mapping[str, object], key: str, currency: str) -> int:
        return money.to_minor(self.field(struct, key), currency, f"Balance2.{self.method}: {key}")

    def opt_minor(self, struct: Mapping[str, object], key: str, currency: str) -> int | None:
        if struct.get(key) in (None, ""):
            return None
        return self.minor(struct, key, currency)

    def decimal(self, struct: Mapping[str, object], key: str) -> Decimal:
        return money.parse_decimal(self.field(struct, key), f"Balance2.{self.method}: {key}")

    def opt_decimal(self, struct: Mapping[str, object], key: str) -> Decimal | None:
        if struct.get(key) in (None, ""):
            return None
        return self.decimal(struct, key)

    def currency(self, struct: Mapping[str, object], key: str) -> str:
        return money.currency_from_balance(
            self.field(struct, key), f"Balance2.{self.method}: {key}"
        )

    def moment(self, struct: Mapping[str, object], key: str) -> dt.datetime | None:
        """A Balance date-time (XML-RPC dateTime or text) as an aware Moscow datetime."""
        value = struct.get(key)
        if value in (None, ""):
            return None
        if isinstance(value, dt.datetime):
            naive = value
        elif isinstance(value, str):
            text = value.strip()
            try:
                if len(text) > 8 and text[8] == "T" and text[:8].isdigit():
                    naive = dt.datetime.strptime(text, "%Y%m%dT%H:%M:%S")
                else:
                    naive = dt.datetime.fromisoformat(text)
            except ValueError:
                self.bad(f"{key}: not a date: {text[:40]!r}")
        else:
            self.bad(f"{key}: expected a date, got {type(value).__name__}")
        if naive.tzinfo is not None:
            return naive.astimezone(MOSCOW)
        return naive.replace(tzinfo=MOSCOW)

    def date(self, struct: Mapping[str, object], key: str) -> dt.date | None:
        moment = self.moment(struct, key)
        return None if moment is None else moment.date()
