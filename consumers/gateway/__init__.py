"""The Balance gateway: Balance-bound commands performed outside every ledger transaction.

    <prefix>.internal.balance-requests --(engine: GatewayHandler)--> balance_requests rows
    balance_requests --(Performer threads: Balance XML-RPC)--> outcome rows in the outbox
    outbox --(relay)--> <prefix>.internal.events --(ledger)--> the command's Result

Two loops in one role: the stream engine records each request exactly once; the performer
calls Balance with bounded retries, records intent before every call that creates
something, and finds out what an unclear call did before calling again (`flows`).
`build` is the whole wiring.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from billy_core.settings import Settings


@dataclass
class Gateway:
    engine: Any  # Engine[BalanceRequest]
    performer: Any  # Performer

    def run(self, stop: threading.Event) -> None:
        """Both loops until `stop`; either failing stops both (and the role)."""
        failures: list[BaseException] = []

        def guarded() -> None:
            try:
                self.performer.run(stop)
            except BaseException as exc:
                failures.append(exc)
                stop.set()

        thread = threading.Thread(target=guarded, name="billy-gateway-performer", daemon=True)
        thread.start()
        try:
            self.engine.run(stop)
        finally:
            stop.set()
            thread.join(timeout=60)
        if failures:
            raise failures[0]


def build(settings: Settings) -> Gateway:
    from billy_core.balance import BalanceClient
    from billy_core.kafka.topics import TopicNames
    from billy_core.stream.engine import Engine
    from consumers.gateway.handler import GatewayHandler
    from consumers.gateway.performer import Performer, observe_call

    topics = TopicNames(settings.topic_prefix)
    handler = GatewayHandler(topics, settings.gateway_group)
    engine = Engine(settings, handler, deployment=topics.prefix, dlq_topic=topics.dlq, workers=1)
    balance = BalanceClient.from_settings(settings, observer=observe_call)
    return Gateway(engine, Performer(settings, balance, topics))
