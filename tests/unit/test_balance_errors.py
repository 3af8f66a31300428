"""The Balance error tree: the drawing in errors.py is true, and each error says whether a
blind retry is safe."""

from __future__ import annotations

import inspect
import re

import pytest

from billy_core.balance import errors
from billy_core.balance.errors import (
    BalanceBadAnswer,
    BalanceCircuitOpen,
    BalanceError,
    BalanceFault,
    BalanceOutcomeUnknown,
    BalanceUnavailable,
    BalanceValueError,
    FaultCode,
    retry_is_safe,
)
from billy_core.errors import BillyError, TransientError

_LINE = re.compile(r"^(?P<indent>[ │]*)(?:[├└]── )?(?P<name>Balance\w+)")


def drawn_tree() -> dict[str, str | None]:
    """{class name: parent name} from the module docstring's drawing."""
    doc = inspect.getdoc(errors) or ""
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in doc.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        depth = len(match.group("indent")) + (4 if "──" in line else 0)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[match.group("name")] = stack[-1][1] if stack else None
        stack.append((depth, match.group("name")))
    return parents


def test_the_drawn_tree_is_the_class_tree() -> None:
    defined = {
        name: cls
        for name, cls in vars(errors).items()
        if isinstance(cls, type) and issubclass(cls, BalanceError)
    }
    drawn = drawn_tree()
    assert set(drawn) == set(defined)
    for name, parent in drawn.items():
        cls = defined[name]
        if parent is None:
            assert cls is BalanceError
        else:
            assert cls.__bases__[0] is defined[parent], name
    assert issubclass(BalanceError, BillyError)
    assert issubclass(BalanceUnavailable, TransientError)  # the engine may retry it
    assert not issubclass(BalanceOutcomeUnknown, TransientError)  # never blindly
    assert issubclass(BalanceValueError, ValueError)


@pytest.mark.parametrize(
    ("error", "safe"),
    [
        (BalanceUnavailable("refused"), True),
        (BalanceCircuitOpen("open", retry_after_s=3.0), True),
        (BalanceOutcomeUnknown("timeout", idempotent=True), True),
        (BalanceOutcomeUnknown("timeout", idempotent=False), False),
        (BalanceBadAnswer("garbage", idempotent=False), False),
        (BalanceBadAnswer("garbage", idempotent=True), True),
        (BalanceFault(code=FaultCode.INVALID_PARAM, message="m", method="M"), False),
        (BalanceValueError("sub-kopeck"), False),
        (RuntimeError("a bug"), False),
    ],
)
def test_retry_is_safe(error: BaseException, safe: bool) -> None:
    assert retry_is_safe(error) is safe


def test_fault_code_parse() -> None:
    assert FaultCode.parse("INVALID_INN") is FaultCode.INVALID_INN
    assert FaultCode.parse("SOMETHING_NEW") is FaultCode.UNKNOWN
    assert FaultCode.parse(None) is FaultCode.UNKNOWN
