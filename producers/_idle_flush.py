"""Linger only while busy: a record sent on an idle producer goes out at once.

librdkafka holds every record `linger.ms` (5 ms here: `billy_core.kafka.config`) so that a
busy producer sends fewer, fuller requests. On an idle producer that wait is pure latency:
there is nothing to batch with. So, as Nagle's rule for TCP does, the clients linger only
while earlier records are still in flight: a record sent with nothing outstanding has a
helper thread call `flush()`, and while a flush runs librdkafka treats `linger.ms` as
elapsed. (`flush(0)` from the sending thread would not do: it returns before the broker
thread sees the flag.)

The helper flushes in windows of WINDOW_S until everything is delivered, and stops early
once another record is sent: the client is busy then, and batching is as configured. So a
kick costs a few ms of unbatched sends under load, and on an idle client it covers however
long the first delivery takes (a new client's connection and producer id included).
"""

from __future__ import annotations

import threading

from confluent_kafka import Producer

WINDOW_S = 0.005
"""How often the helper checks whether the client has turned busy: no longer than the linger
it replaces."""


class IdleFlush:
    """A daemon thread that flushes `producer` after a record is sent with none in flight."""

    def __init__(self, producer: Producer, name: str) -> None:
        self._producer = producer
        self._sends = 0
        self._kicked = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"{name}-idle-flush", daemon=True)
        self._thread.start()

    def sent(self, idle: bool) -> None:
        """A record was just sent; `idle`: nothing else was in flight, so send it now."""
        self._sends += 1
        if idle:
            self._kicked.set()

    def close(self) -> None:
        self._closed = True
        self._kicked.set()
        self._thread.join(timeout=1.0)

    def _run(self) -> None:
        while True:
            self._kicked.wait()
            self._kicked.clear()
            while not self._closed:
                sends = self._sends
                # Delivery reports served here run the clients' callbacks on this thread;
                # they take the client's lock, as reports served by any other thread do.
                if self._producer.flush(WINDOW_S) == 0 or self._sends != sends:
                    break
            if self._closed:
                return
