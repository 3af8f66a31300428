"""Fault switches: how the emulator misbehaves on purpose, for tests.

Call switches apply to `Balance.*` / `Balance2.*` methods only, never to `TestBalance.*`.
For each call, in this order: `latency_ms` is slept; then one roll of the seeded random
decides at most one of

- fail (`fail_share`): a fault with `fail_code`; nothing is done;
- timeout before work (`timeout_before_share`): the caller sees a timeout; nothing is done;
- timeout after work (`timeout_after_share`): the work is done and committed, then the
  caller sees a timeout.

A "timeout" is `timeout_mode`: "drop" closes the connection without an answer (the
caller's client fails at once, so tests are fast), "hang" holds the connection for
`hang_s` seconds and then drops it (the caller's read timeout fires first).

`only_methods` (bare names such as "CreateInvoice") narrows call switches to those
methods; `limit` (> 0) disarms them after that many injected faults.

Notification switches (applied by the notifier, once per notification): a share delivered
twice (`notify_duplicate_share`), a share held back until a newer notification of the same
order was delivered or `notify_reorder_hold_s` passed (`notify_reorder_share`), a share
delayed by `notify_delay_ms` (`notify_delay_share`).

`SetFaults` replaces every switch at once (a key left out gets its default); the switches
are kept in the state file, so a restarted emulator keeps misbehaving the same way.
"""

from __future__ import annotations

import dataclasses
import json
import random
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from balance_emulator.errors import KNOWN_CODES, invalid_param


class CallFault(StrEnum):
    NONE = "none"
    FAIL = "fail"
    TIMEOUT_BEFORE = "timeout_before"
    TIMEOUT_AFTER = "timeout_after"


class TimeoutMode(StrEnum):
    DROP = "drop"
    HANG = "hang"


_SHARES = (
    "fail_share",
    "timeout_before_share",
    "timeout_after_share",
    "notify_duplicate_share",
    "notify_reorder_share",
    "notify_delay_share",
)


@dataclass(frozen=True)
class FaultSwitches:
    latency_ms: int = 0
    fail_share: float = 0.0
    fail_code: str = "INTERNAL_ERROR"
    timeout_before_share: float = 0.0
    timeout_after_share: float = 0.0
    timeout_mode: str = TimeoutMode.DROP.value
    hang_s: float = 30.0
    only_methods: tuple[str, ...] = ()
    limit: int = 0
    seed: int | None = None
    notify_duplicate_share: float = 0.0
    notify_reorder_share: float = 0.0
    notify_reorder_hold_s: float = 2.0
    notify_delay_share: float = 0.0
    notify_delay_ms: int = 1000
    extra: dict[str, object] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_struct(cls, struct: Mapping[str, object]) -> FaultSwitches:
        """Validate a SetFaults struct; INVALID_PARAM names the bad key.

        Shares are probabilities written as ints (0, 1) or decimal strings ('0.25');
        XML-RPC doubles are accepted too, since a share is not money.
        """
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        unknown = sorted(set(struct) - names)
        if unknown:
            raise invalid_param(f"unknown fault switch(es) {', '.join(unknown)}")
        values: dict[str, object] = {}
        for key, value in struct.items():
            if key in _SHARES:
                values[key] = _share(key, value)
            elif key in ("latency_ms", "notify_delay_ms", "limit"):
                values[key] = _non_negative_int(key, value)
            elif key in ("hang_s", "notify_reorder_hold_s"):
                values[key] = _non_negative_float(key, value)
            elif key == "seed":
                values[key] = None if value is None else _non_negative_int(key, value)
            elif key == "timeout_mode":
                if value not in {m.value for m in TimeoutMode}:
                    raise invalid_param(f"timeout_mode must be 'drop' or 'hang', got {value!r}")
                values[key] = value
            elif key == "fail_code":
                if value not in KNOWN_CODES:
                    raise invalid_param(f"fail_code {value!r} is not a known Balance code")
                values[key] = value
            elif key == "only_methods":
                if not isinstance(value, list | tuple) or not all(
                    isinstance(m, str) for m in value
                ):
                    raise invalid_param("only_methods must be an array of method names")
                values[key] = tuple(_bare(m) for m in value)
        call_shares = [
            value
            for key, value in values.items()
            if key in ("fail_share", "timeout_before_share", "timeout_after_share")
            and isinstance(value, float)
        ]
        if sum(call_shares) > 1.0:
            raise invalid_param("fail_share + timeout_before_share + timeout_after_share > 1")
        return cls(**values)  # type: ignore[arg-type]

    def to_struct(self) -> dict[str, object]:
        """For GetFaults: XML-RPC friendly (no None but seed, lists not tuples)."""
        out = dataclasses.asdict(self)
        out.pop("extra")
        out["only_methods"] = list(self.only_methods)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_struct(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FaultSwitches:
        return cls.from_struct(json.loads(text))


def _bare(method: str) -> str:
    return method.split(".", 1)[1] if "." in method else method


def _share(key: str, value: object) -> float:
    try:
        share = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise invalid_param(f"{key} must be a number between 0 and 1, got {value!r}") from None
    if isinstance(value, bool) or not 0.0 <= share <= 1.0:
        raise invalid_param(f"{key} must be between 0 and 1, got {value!r}")
    return share


def _non_negative_int(key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise invalid_param(f"{key} must be a non-negative integer, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise invalid_param(f"{key} must be a non-negative integer, got {value!r}") from None
    if number < 0:
        raise invalid_param(f"{key} must be a non-negative integer, got {value!r}")
    return number


def _non_negative_float(key: str, value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise invalid_param(f"{key} must be a non-negative number, got {value!r}") from None
    if isinstance(value, bool) or number < 0:
        raise invalid_param(f"{key} must be a non-negative number, got {value!r}")
    return number


class FaultInjector:
    """Holds the current switches and rolls the dice for calls and notifications.

    Thread-safe: one lock guards the random generator, the counters and the limit, so a
    seeded run makes the same decisions for the same sequence of calls.
    """

    def __init__(self, switches: FaultSwitches | None = None) -> None:
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()
        self._set(switches or FaultSwitches())

    def _set(self, switches: FaultSwitches) -> None:
        self.switches = switches
        self._random = random.Random(switches.seed)
        self._left = switches.limit

    def replace(self, switches: FaultSwitches) -> None:
        with self._lock:
            self._set(switches)

    def decide_call(self, method: str) -> CallFault:
        """The fault for one Balance call (method is the bare name)."""
        with self._lock:
            s = self.switches
            if s.only_methods and method not in s.only_methods:
                return CallFault.NONE
            if s.limit and self._left <= 0:
                return CallFault.NONE
            roll = self._random.random()
            decision = CallFault.NONE
            for share, fault in (
                (s.fail_share, CallFault.FAIL),
                (s.timeout_before_share, CallFault.TIMEOUT_BEFORE),
                (s.timeout_after_share, CallFault.TIMEOUT_AFTER),
            ):
                if roll < share:
                    decision = fault
                    break
                roll -= share
            if decision is not CallFault.NONE:
                self._left -= 1
                self.injected[decision.value] += 1
            return decision

    def roll_notify(self, share: float, kind: str) -> bool:
        """True with probability `share` (a notification switch); counted when true."""
        with self._lock:
            if share <= 0:
                return False
            hit = self._random.random() < share
            if hit:
                self.injected[kind] += 1
            return hit

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.injected)

    def clear_counts(self) -> None:
        with self._lock:
            self.injected.clear()
