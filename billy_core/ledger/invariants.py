"""Invariant checks of the ledger core that stay on in production.

Python's `assert` disappears under `-O`, so these are explicit checks that raise
`InvariantViolation`. A violation means a bug or corrupt rows, never bad input: bad input
is a rejected result. The process must crash and restart from its last commit rather
than write anything; never catch this error to carry on.

    billy_core.errors.BillyError
     └── InvariantViolation

`decide` calls `check_client` before and after every command (precondition and
postcondition) and `check_decision` on every decision. The shell calls
`check_held_matches` when it can see every open hold of a wallet (the core only sees
the holds the batch names). Every check is a few integer operations per transfer or per
loaded row; none does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol

from billy_core.errors import InvariantViolation
from billy_core.ledger import accounts
from billy_core.ledger.decision import Decision, Transfer
from billy_core.ledger.state import ClientState, HoldStatus, Wallet
from billy_core.results import Code, Status

__all__ = [
    "InvariantViolation",
    "check_client",
    "check_decision",
    "check_held_matches",
    "check_transfers",
]

_TENANT = re.compile(r"^[A-Za-z0-9._-]+$")
_SOUND_TENANTS: set[str] = set()  # tenants that matched _TENANT: the regex once per tenant


class _Owner(Protocol):
    tenant: str
    client_id: str


def _fail(what: str, owner: _Owner) -> None:
    # The "<tenant>/<client>" prefix is built here, on failure: these checks run twice per
    # command and must cost a few integer comparisons when everything holds.
    raise InvariantViolation(f"{owner.tenant}/{owner.client_id}: {what}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_client(
    state: ClientState,
    hold_ids: Iterable[str] | None = None,
    charge_ids: Iterable[str] | None = None,
) -> None:
    """Check one client's rows on their own: the wallet bounds and every loaded hold/charge.

    Holds: `held_minor >= 0`, `available_minor >= -overdraft_limit_minor`, and the open
    holds among the loaded ones add up to at most `held_minor` (equality needs every open
    hold; see `check_held_matches`). Each hold and charge is keyed by its own id, in the
    wallet's currency, with 0 <= confirmed/refunded <= amount.

    `hold_ids` / `charge_ids` narrow the record checks to the records one command touches
    (what `decide` does on the hot path: a hot wallet may carry thousands of loaded records
    in one batch, and checking them all per command would be quadratic). None checks all,
    and only then the loaded open holds' total is compared with `held_minor`.
    """
    if state.tenant not in _SOUND_TENANTS:
        if not _TENANT.match(state.tenant or ""):
            _fail("tenant must be a Kafka topic-name fragment", state)
        _SOUND_TENANTS.add(state.tenant)
    wallet = state.wallet
    if wallet is None:
        if state.holds or state.charges or state.new_wallet:
            _fail("holds, charges or new_wallet without a wallet", state)
        return
    if (wallet.tenant, wallet.client_id) != (state.tenant, state.client_id):
        _fail("wallet belongs to another client", state)
    if not (
        type(wallet.available_minor) is int
        and type(wallet.held_minor) is int
        and type(wallet.version) is int
        and type(wallet.overdraft_limit_minor) is int
    ):  # the usual case is exact ints; anything else is judged field by field
        for name in ("available_minor", "held_minor", "version", "overdraft_limit_minor"):
            if not _is_int(getattr(wallet, name)):
                _fail(f"wallet.{name} is not an int", state)
    if wallet.overdraft_limit_minor < 0:
        _fail("overdraft_limit_minor < 0", state)
    if wallet.held_minor < 0:
        _fail(f"held_minor {wallet.held_minor} < 0", state)
    if wallet.available_minor < -wallet.overdraft_limit_minor:
        _fail(
            f"available_minor {wallet.available_minor} below the overdraft limit "
            f"{wallet.overdraft_limit_minor}",
            state,
        )
    if wallet.version < 0:
        _fail("version < 0", state)

    open_total = 0
    holds = (
        state.holds.items()
        if hold_ids is None
        else [(h, state.holds[h]) for h in hold_ids if h in state.holds]
    )
    for hold_id, hold in holds:
        if hold.hold_id != hold_id:
            _fail(f"hold {hold_id!r} stored under another id", state)
        if hold.currency != wallet.currency:
            _fail(f"hold {hold_id!r} currency differs from the wallet's", state)
        if not _is_int(hold.amount_minor) or hold.amount_minor <= 0:
            _fail(f"hold {hold_id!r} amount must be a positive int", state)
        if hold.status not in HoldStatus.ALL:
            _fail(f"hold {hold_id!r} has unknown status {hold.status!r}", state)
        if not 0 <= hold.confirmed_minor <= hold.amount_minor:
            _fail(f"hold {hold_id!r} confirmed_minor outside 0..amount", state)
        if hold.confirmed_minor and hold.status != HoldStatus.CONFIRMED:
            _fail(f"hold {hold_id!r} has confirmed_minor but is {hold.status}", state)
        if hold.status == HoldStatus.CONFIRMED and hold.confirmed_minor == 0:
            _fail(f"hold {hold_id!r} confirmed with nothing", state)
        if (hold.settled_by is None) != (hold.status == HoldStatus.OPEN):
            _fail(f"hold {hold_id!r}: settled_by must be set exactly when settled", state)
        if hold.status == HoldStatus.OPEN:
            open_total += hold.amount_minor
    if hold_ids is None and open_total > wallet.held_minor:
        _fail(f"loaded open holds total {open_total} > held_minor {wallet.held_minor}", state)

    charges = (
        state.charges.items()
        if charge_ids is None
        else [(c, state.charges[c]) for c in charge_ids if c in state.charges]
    )
    for command_id, charge in charges:
        if charge.command_id != command_id:
            _fail(f"charge {command_id!r} stored under another id", state)
        if charge.currency != wallet.currency:
            _fail(f"charge {command_id!r} currency differs from the wallet's", state)
        if not _is_int(charge.amount_minor) or charge.amount_minor <= 0:
            _fail(f"charge {command_id!r} amount must be a positive int", state)
        if not 0 <= charge.refunded_minor <= charge.amount_minor:
            _fail(f"charge {command_id!r} refunded_minor outside 0..amount", state)

    if hold_ids is None and not state.dirty_holds <= state.holds.keys():
        _fail("dirty_holds names a hold that is not loaded", state)
    if charge_ids is None and not state.dirty_charges <= state.charges.keys():
        _fail("dirty_charges names a charge that is not loaded", state)


def check_held_matches(wallet: Wallet, open_hold_amounts_total: int) -> None:
    """`held_minor` equals the sum of the amounts of ALL the wallet's open holds.

    Only the shell can check this: it alone can add up every open hold of the wallet
    (e.g. `SELECT sum(amount_minor) ... WHERE status = 'open'`).
    """
    if wallet.held_minor != open_hold_amounts_total:
        raise InvariantViolation(
            f"{wallet.tenant}/{wallet.client_id}: held_minor {wallet.held_minor} != "
            f"open holds total {open_hold_amounts_total}"
        )


def check_transfers(transfers: Iterable[Transfer]) -> None:
    """Every amount is a positive int between two different accounts, and the set
    sums to zero per currency (true by construction of a transfer; checked anyway)."""
    net: dict[tuple[str, str], int] = {}
    for t in transfers:
        if not _is_int(t.amount_minor) or t.amount_minor <= 0:
            raise InvariantViolation(f"transfer amount must be a positive int: {t!r}")
        if t.source == t.target:
            raise InvariantViolation(f"transfer from an account to itself: {t!r}")
        net[(t.source, t.currency)] = net.get((t.source, t.currency), 0) - t.amount_minor
        net[(t.target, t.currency)] = net.get((t.target, t.currency), 0) + t.amount_minor
    per_currency: dict[str, int] = {}
    for (_, currency), amount in net.items():
        per_currency[currency] = per_currency.get(currency, 0) + amount
    for currency, total in per_currency.items():
        if total != 0:
            raise InvariantViolation(f"transfers do not sum to zero in {currency}: {total}")


def check_decision(
    before: tuple[int, int],
    after: Wallet,
    decision: Decision,
    *,
    before_version: int | None = None,
) -> None:
    """Replaying the decision's transfers on the wallet's (available, held) before the
    command gives exactly the wallet after it.

    Also: every transfer touches this wallet and only in its currency; APPLIED goes with
    `ok` and a rejection with another code; a rejection moves no money; applied-log lines
    come only with APPLIED. With `before_version`, the version grew by exactly 1 iff money moved.
    """
    check_transfers(decision.transfers)
    available_account = accounts.available(after.tenant, after.client_id)
    held_account = accounts.held(after.tenant, after.client_id)
    wallet_accounts = (available_account, held_account)
    available_minor, held_minor = before
    for t in decision.transfers:
        if t.source not in wallet_accounts and t.target not in wallet_accounts:
            _fail(f"transfer does not touch this wallet: {t!r}", after)
        if t.currency != after.currency:
            _fail(f"transfer in {t.currency}, wallet in {after.currency}", after)
        if t.source == available_account:
            available_minor -= t.amount_minor
        elif t.source == held_account:
            held_minor -= t.amount_minor
        if t.target == available_account:
            available_minor += t.amount_minor
        elif t.target == held_account:
            held_minor += t.amount_minor
    if (available_minor, held_minor) != (after.available_minor, after.held_minor):
        _fail(
            f"transfers give (available, held) = ({available_minor}, {held_minor}), "
            f"wallet has ({after.available_minor}, {after.held_minor})",
            after,
        )
    if (decision.status == Status.APPLIED) != (decision.code == Code.OK):
        _fail(f"status {decision.status} with code {decision.code}", after)
    if decision.status == Status.REJECTED:
        if decision.transfers:
            _fail(f"rejection {decision.code} moved money", after)
        if decision.applied:
            _fail(f"rejection {decision.code} has applied-log lines", after)
    for line in decision.applied:
        if not _is_int(line.amount_minor) or line.amount_minor <= 0:
            _fail(f"applied line amount must be a positive int: {line!r}", after)
        if line.currency != after.currency:
            _fail(f"applied line in {line.currency}, wallet in {after.currency}", after)
    if before_version is not None:
        expected = before_version + (1 if decision.transfers else 0)
        if after.version != expected:
            _fail(f"version {after.version}, expected {expected}", after)
