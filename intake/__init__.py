"""The intake role: Balance's notifications in, durable payment events out.

    Balance --HTTP (JSON or XML-RPC, signed)--> server --> accept.Acceptor
        source allowed? signature? every field? (billy_core.balance.notifications)
        the order's client (directory: the ledger's Balance mapping rows)
        the figures confirmed with GetOrdersInfo (billy_core.balance)
        PaymentEvent --> <prefix>.internal.events, keyed <tenant>/<client id> (publisher)
    <-- success only once Kafka confirmed every event (acks=all, idempotent producer)

The ledger applies the events exactly once (consumers/ledger/payments.py). Anything that
keeps billy from making the event durable (PostgreSQL, Balance or Kafka away; an order billy
has not mapped yet) is answered with a failure, so Balance delivers it again; a redelivered
notification is a duplicate the ledger ignores by its Tid.
"""

from __future__ import annotations

from intake.server import IntakeServer

__all__ = ["IntakeServer"]
