"""librdkafka's own log lines, routed through Python logging (logger `billy.kafka`).

Every Kafka client billy makes passes `logger=KAFKA_LOG`, so librdkafka never writes raw
lines to stderr. A broker outage makes librdkafka repeat the same complaint for every
connection attempt; `RepeatFilter` lets one line of a kind through per interval and says how
many it held back, so an outage reads as a few lines, not hundreds.
"""

from __future__ import annotations

import logging
import threading
import time

REPEAT_INTERVAL_S = 30.0


class RepeatFilter(logging.Filter):
    """Passes the first record of each (level, message head) per interval."""

    def __init__(self, interval_s: float = REPEAT_INTERVAL_S) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._seen: dict[tuple[int, str], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        # librdkafka messages start with a facility and carry broker names and counters
        # later on: the first 60 characters identify the kind of complaint.
        key = (record.levelno, record.getMessage()[:60])
        now = time.monotonic()
        with self._lock:
            last, held = self._seen.get(key, (-1e9, 0))
            if now - last < self.interval_s:
                self._seen[key] = (last, held + 1)
                return False
            self._seen[key] = (now, 0)
        if held:
            record.msg = f"{record.getMessage()} ({held} similar lines held back)"
            record.args = None
        return True


KAFKA_LOG = logging.getLogger("billy.kafka")
KAFKA_LOG.addFilter(RepeatFilter())
