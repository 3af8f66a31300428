"""billy's failure routes, as one exception tree (a test compares it with the classes).

    BillyError
    ├── InvariantViolation      a broken ledger rule: crash, never go on (nothing commits)
    ├── OffsetConflict          the stored position moved: this consumer lost the partition
    ├── TransientError          PostgreSQL, broker or Balance trouble that passes: retry
    └── PermanentDatabaseError  PostgreSQL refused a statement for good: retrying cannot help

Poison records are not exceptions: they are values (`billy_core.stream.Poison`) routed to
the DLQ. Business rejections are not exceptions either: they are Results. Driver errors are
translated into this tree in one place, `billy_core.db.classify`.
"""

from __future__ import annotations


class BillyError(Exception):
    """Base of billy's own errors."""


class InvariantViolation(BillyError):
    """A ledger invariant does not hold: a bug or corrupt data, never bad input.

    Raised inside the transaction, so nothing is written; the process stops."""


class OffsetConflict(BillyError):
    """The stored offset is not where this consumer left it: another consumer owns the
    partition now (this one is a zombie), or advanced it. Nothing was written."""


class TransientError(BillyError):
    """Trouble that passes: retry with backoff."""


class PermanentDatabaseError(BillyError):
    """PostgreSQL refused a statement in a way that repeats on every attempt.

    `caused_by_data`: the refusal is about the values written (a data exception, a broken
    constraint, an index row too large: SQLSTATE classes 22, 23, 54, or the driver refusing
    a value before sending it), so the record that carried them is the culprit; otherwise
    it is about billy itself (a missing table, a privilege, a bug in a statement)."""

    def __init__(
        self, message: str, sqlstate: str | None = None, *, caused_by_data: bool = False
    ) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.caused_by_data = caused_by_data
