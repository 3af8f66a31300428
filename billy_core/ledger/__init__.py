"""The pure ledger core of billy: rows in, a decision and changed rows out.

    from billy_core.ledger import ClientState, decide

    decision = decide(state, command, record_ts_ms)   # may raise InvariantViolation

See `core` for the rules and their precedence, `state` for the rows, `accounts` for
account names and `invariants` for the checks that stay on in production.
"""

from billy_core.ledger import accounts
from billy_core.ledger.core import Duplicate, decide, expiry_due
from billy_core.ledger.decision import AppliedKind, AppliedLine, Decision, Transfer
from billy_core.ledger.invariants import (
    InvariantViolation,
    check_client,
    check_decision,
    check_held_matches,
    check_transfers,
)
from billy_core.ledger.state import ChargeRecord, ClientState, HoldRecord, HoldStatus, Wallet

__all__ = [
    "AppliedKind",
    "AppliedLine",
    "ChargeRecord",
    "ClientState",
    "Decision",
    "Duplicate",
    "HoldRecord",
    "HoldStatus",
    "InvariantViolation",
    "Transfer",
    "Wallet",
    "accounts",
    "check_client",
    "check_decision",
    "check_held_matches",
    "check_transfers",
    "decide",
    "expiry_due",
]
