"""The DLQ cap: a few poison records are normal, a flood means a bad deploy upstream.

When more than `ratio_max` of the last `window` records were poison, the consumer stops
(PoisonFlood) instead of copying a whole topic into the DLQ; the records stay in Kafka,
unconsumed, for after the fix.
"""

from __future__ import annotations

from collections import deque

from billy_core.errors import PoisonFlood


class PoisonGuard:
    def __init__(self, ratio_max: float, window: int) -> None:
        self.ratio_max = ratio_max
        self.window = window
        self._recent: deque[bool] = deque(maxlen=window)
        self._poison = 0

    def check(self, poison_flags: list[bool]) -> None:
        """Record a batch's flags (True = poison) before it is applied; raise on a flood."""
        for flag in poison_flags:
            if len(self._recent) == self.window and self._recent[0]:
                self._poison -= 1
            self._recent.append(flag)
            self._poison += flag
        if len(self._recent) >= self.window and self._poison > self.ratio_max * len(self._recent):
            raise PoisonFlood(
                f"{self._poison} of the last {len(self._recent)} records were poison"
                f" (cap {self.ratio_max:.0%}); stopping so the rest stay in Kafka"
            )
