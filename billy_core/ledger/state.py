"""What the ledger core reads and changes for one client: plain, mutable rows.

The shell loads these from PostgreSQL before a batch, hands one `ClientState` per
client to `billy_core.ledger.core.decide` for each of that client's commands in order,
and writes back what the dirty markers name. Nothing here does I/O.

Money is integer minor units throughout; a wallet has one currency, and every hold and
charge of a client is in that currency (`invariants.check_client` checks it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

__all__ = ["ChargeRecord", "ClientState", "HoldRecord", "HoldStatus", "Wallet"]


class HoldStatus:
    """The values of `HoldRecord.status`: plain strings, stored as they are.

    A hold moves only from OPEN to one of the other three, once.
    """

    OPEN: Final = "open"
    CONFIRMED: Final = "confirmed"
    RELEASED: Final = "released"
    EXPIRED: Final = "expired"
    ALL: Final = frozenset({OPEN, CONFIRMED, RELEASED, EXPIRED})


@dataclass(slots=True)
class Wallet:
    tenant: str
    client_id: str
    currency: str
    available_minor: int = 0
    held_minor: int = 0
    version: int = 0  # +1 on every change of balances or holds; 1 right after registration
    overdraft_limit_minor: int = 0  # available may go down to -overdraft_limit_minor


@dataclass(slots=True)
class HoldRecord:
    hold_id: str
    product_id: str
    amount_minor: int
    currency: str
    expires_at_ms: int
    status: str = HoldStatus.OPEN
    confirmed_minor: int = 0
    settled_by: str | None = None  # command_id that confirmed, released or expired it


@dataclass(slots=True)
class ChargeRecord:
    """Something refundable: a Charge, or a ConfirmHold that took revenue.

    Keyed by the command_id of that Charge or ConfirmHold.
    """

    command_id: str
    product_id: str
    amount_minor: int
    currency: str
    refunded_minor: int = 0


@dataclass(slots=True)
class ClientState:
    """All the core may read or change for one client.

    `holds` and `charges` hold the rows the batch names (the shell loads every hold id
    and every refund target its commands mention, plus whatever it likes); a missing key
    means "no such hold" / "no such charge" for this client. The core adds new rows to
    them and records in `dirty_holds`, `dirty_charges` and `new_wallet` what the shell
    must insert or update. The shell clears the markers after it has written them.
    """

    tenant: str
    client_id: str
    wallet: Wallet | None = None
    holds: dict[str, HoldRecord] = field(default_factory=dict)
    charges: dict[str, ChargeRecord] = field(default_factory=dict)
    dirty_holds: set[str] = field(default_factory=set)
    dirty_charges: set[str] = field(default_factory=set)
    new_wallet: bool = False
