"""billy's failure routes, as one exception tree.

    BillyError
    ├── PoisonFlood        too many undecodable records: a bad deploy upstream; stop the consumer
    ├── InvariantViolation (billy_core.ledger.invariants) a broken ledger rule; crash, never go on
    └── TransientError     PostgreSQL, broker or Balance trouble; retried with backoff

A poison record itself is not an exception: it is a value (`consumers.ledger.records.Poison`)
routed to the DLQ. A business rejection is not an exception either: it is a Result.
"""

from __future__ import annotations


class BillyError(Exception):
    """Base of billy's own errors."""


class PoisonFlood(BillyError):
    """The share of poison records passed the configured cap: stop rather than DLQ everything."""


class TransientError(BillyError):
    """Trouble that passes: retry with backoff."""
