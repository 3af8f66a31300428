"""What the ledger core reads and changes for one client: plain, mutable rows.

The shell loads these from PostgreSQL before a batch, hands one `ClientState` per
client to `billy_core.ledger.core.decide` for each of that client's commands in order,
and writes back what the dirty markers name. Nothing here does I/O.

Money is integer minor units throughout; a wallet has one currency, and every hold and
charge of a client is in that currency (`invariants.check_client` checks it).
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(slots=True, init=False)
class Wallet:
    # A hot-path value: explicit __init__ (billy_core.compiled, "Values").
    tenant: str
    client_id: str
    currency: str
    available_minor: int
    held_minor: int
    version: int  # +1 on every change of balances or holds; 1 right after registration
    overdraft_limit_minor: int  # available may go down to -overdraft_limit_minor

    def __init__(
        self,
        tenant: str,
        client_id: str,
        currency: str,
        available_minor: int = 0,
        held_minor: int = 0,
        version: int = 0,
        overdraft_limit_minor: int = 0,
    ) -> None:
        self.tenant = tenant
        self.client_id = client_id
        self.currency = currency
        self.available_minor = available_minor
        self.held_minor = held_minor
        self.version = version
        self.overdraft_limit_minor = overdraft_limit_minor


@dataclass(slots=True, init=False)
class HoldRecord:
    # A hot-path value: explicit __init__ (billy_core.compiled, "Values").
    hold_id: str
    product_id: str
    amount_minor: int
    currency: str
    expires_at_ms: int
    status: str
    confirmed_minor: int
    settled_by: str | None  # command_id that confirmed, released or expired it

    def __init__(
        self,
        hold_id: str,
        product_id: str,
        amount_minor: int,
        currency: str,
        expires_at_ms: int,
        status: str = HoldStatus.OPEN,
        confirmed_minor: int = 0,
        settled_by: str | None = None,
    ) -> None:
        self.hold_id = hold_id
        self.product_id = product_id
        self.amount_minor = amount_minor
        self.currency = currency
        self.expires_at_ms = expires_at_ms
        self.status = status
        self.confirmed_minor = confirmed_minor
        self.settled_by = settled_by


@dataclass(slots=True, init=False)
class ChargeRecord:
    """Something refundable: a Charge, or a ConfirmHold that took revenue.

    Keyed by the command_id of that Charge or ConfirmHold.
    """

    # A hot-path value: explicit __init__ (billy_core.compiled, "Values").
    command_id: str
    product_id: str
    amount_minor: int
    currency: str
    refunded_minor: int

    def __init__(
        self,
        command_id: str,
        product_id: str,
        amount_minor: int,
        currency: str,
        refunded_minor: int = 0,
    ) -> None:
        self.command_id = command_id
        self.product_id = product_id
        self.amount_minor = amount_minor
        self.currency = currency
        self.refunded_minor = refunded_minor


@dataclass(slots=True, init=False)
class ClientState:
    """All the core may read or change for one client.

    `holds` and `charges` hold the rows the batch names (the shell loads every hold id
    and every refund target its commands mention, plus whatever it likes); a missing key
    means "no such hold" / "no such charge" for this client. The core adds new rows to
    them and records in `dirty_holds`, `dirty_charges` and `new_wallet` what the shell
    must insert or update. The shell clears the markers after it has written them.
    """

    # A hot-path value: explicit __init__ (billy_core.compiled, "Values").
    tenant: str
    client_id: str
    wallet: Wallet | None
    holds: dict[str, HoldRecord]
    charges: dict[str, ChargeRecord]
    dirty_holds: set[str]
    dirty_charges: set[str]
    new_wallet: bool

    def __init__(
        self,
        tenant: str,
        client_id: str,
        wallet: Wallet | None = None,
        holds: dict[str, HoldRecord] | None = None,
        charges: dict[str, ChargeRecord] | None = None,
        dirty_holds: set[str] | None = None,
        dirty_charges: set[str] | None = None,
        new_wallet: bool = False,
    ) -> None:
        self.tenant = tenant
        self.client_id = client_id
        self.wallet = wallet
        self.holds = {} if holds is None else holds
        self.charges = {} if charges is None else charges
        self.dirty_holds = set() if dirty_holds is None else dirty_holds
        self.dirty_charges = set() if dirty_charges is None else dirty_charges
        self.new_wallet = new_wallet
