"""The poison cap, per partition: a few poison records are normal, a flood means a bad
deploy upstream.

When more than `ratio_max` of a partition's last `window` records were poison, that
partition is paused (the engine keeps polling every other one) instead of copying a whole
topic into the DLQ. The flooding batch is not applied: its records stay in Kafka,
unconsumed, and the stored position does not move; nothing is lost. The partition stays
paused (billy_partitions_paused_now counts it: alert on > 0) until an operator, the producer
fixed, runs `billy resume-partition TOPIC PARTITION`: the engine then applies or
dead-letters every record up to the partition's end as of that command without judging
them, and judges what comes after afresh. A restart alone judges the same records again,
and pauses again.
"""

from __future__ import annotations

from collections import deque


class PoisonCap:
    def __init__(self, ratio_max: float, window: int) -> None:
        self.ratio_max = ratio_max
        self.window = window
        self._recent: deque[bool] = deque(maxlen=window)
        self._poison = 0

    def flooded(self, poison_flags: list[bool]) -> str | None:
        """Record a batch's flags (True = poison) before it is applied; a reason on a flood.

        A flooding batch is not counted: it was not consumed, and will be judged again."""
        recent, count = deque(self._recent, maxlen=self.window), self._poison
        for flag in poison_flags:
            if len(recent) == self.window and recent[0]:
                count -= 1
            recent.append(flag)
            count += flag
        if len(recent) >= self.window and count > self.ratio_max * len(recent):
            return (
                f"{count} of the last {len(recent)} records were poison"
                f" (cap {self.ratio_max:.0%}); partition paused, records kept in Kafka"
            )
        self._recent, self._poison = recent, count
        return None
