"""Linger only while busy: a record sent on an idle producer goes out at once.

librdkafka holds every record `linger.ms` (5 ms here: `billy_core.kafka.config`) so that a
busy producer sends fewer, fuller requests. On an idle producer that wait is pure latency:
there is nothing to batch with. So the clients linger only when the last record was sent
less than `linger.ms` before, or is still in flight (Nagle's rule for TCP, with the rate
as the second sign of load): otherwise a helper thread calls `flush()`, and while a flush
runs librdkafka treats `linger.ms` as elapsed. (`flush(0)` from the sending thread would not
do: it returns before the broker thread sees the flag.)

Why both signs: at 2,000 records a second a flushed record is delivered within the half
millisecond before the next one, so "nothing in flight" alone turned a busy producer into
one that never lingers, at 20 % more of the machine (bench/README.md, eighth round).

The helper flushes in windows of WINDOW_S until everything is delivered, and stops early
once another record is sent: the client is busy then, and batching is as configured. On an
idle client it covers however long the first delivery takes (a new client's connection and
producer id included).
"""

from __future__ import annotations

import threading
import time

from confluent_kafka import Producer

WINDOW_S = 0.005
"""How often the helper checks whether the client has turned busy: no longer than the linger
it replaces."""


class IdleFlush:
    """A daemon thread that flushes `producer` after a record is sent on an idle client."""

    def __init__(self, producer: Producer, name: str, linger_s: float) -> None:
        self._producer = producer
        self._linger_s = linger_s
        self._last_sent = float("-inf")  # monotonic time; a time, not money
        self._sends = 0
        self._kicked = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"{name}-idle-flush", daemon=True)
        self._thread.start()

    def sent(self, nothing_in_flight: bool) -> None:
        """A record was just sent (`nothing_in_flight`: before it). Send it now if the client
        is idle: nothing in flight and nothing sent for `linger.ms`."""
        now = time.monotonic()
        quiet = now - self._last_sent >= self._linger_s
        self._last_sent = now
        self._sends += 1
        if quiet and nothing_in_flight:
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
