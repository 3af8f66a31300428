"""The pure ledger core: `decide(state, command, record_ts_ms, ...) -> Decision | Duplicate`.

Pure and deterministic: no I/O, no clock (time is the Kafka record timestamp passed in),
no randomness. The same rows, commands and timestamps always give the same decisions and
the same rows afterwards, so a replay decides exactly as the first run did.

`decide` changes `state` in place only when the command applies: a rejection changes
nothing. `wallet.version` grows by 1 exactly when balances or holds change (registration
sets it to 1). A hold that a ConfirmHold or ReleaseHold finds past `expires_at` expires as
an event of its own, before the command: `expiry_due` names that ExpireHold (its id derived
from the hold, `commands.expire_command_id`), the shell decides and answers it like any
command, and the command itself then finds the hold expired.

Precedence: a command gets the first outcome of this list that applies.

1. `invalid` given (the command failed `commands.validate`) -> REJECTED `invalid`, not
   remembered: resending it answers `invalid` again.
2. `prior_hash` given (the command_id was seen before): the same payload hash ->
   `Duplicate` (the shell answers the stored result); another -> REJECTED
   `idempotency_conflict`, not remembered.
3. RegisterClient: the wallet exists -> REJECTED `client_exists`; else the wallet is
   created in the body's currency (version 1, `new_wallet`), no transfers, and the decision
   is `pending` (APPLIED `ok` so far): Balance still has to register the client.
4. Any other body and no wallet -> REJECTED `unknown_client`.
5. Charge, Hold, Adjust, RequestInvoice, TransferCredit in another currency than the
   wallet's -> REJECTED `currency_mismatch`.
6. A Balance-bound body (`BALANCE_BODIES`) -> `pending` (APPLIED `ok` so far, nothing
   changed): the shell records an intent for the Balance gateway, publishes no result now,
   and answers when the gateway's outcome comes back (consumers/ledger/balance_intents.py).
7. Adjust: positive: `balance_overflow` if available would pass `BALANCE_MINOR_MAX`, else
   adjustments -> available. Negative: `insufficient_funds` if available - |amount| <
   -overdraft_limit; else available -> adjustments.
8. Charge: `insufficient_funds` as above; else available -> revenue(product), a refundable
   ChargeRecord keyed by the command_id, an applied-log CHARGE line.
9. Hold: hold_id already used by this client (any status) -> `hold_exists`;
   expires_at <= record time -> `invalid`; `insufficient_funds` as above;
   `balance_overflow` if held would pass the maximum; else available -> held and an open
   HoldRecord.
10. ConfirmHold: no such hold -> `hold_not_found`; expired (now or before) ->
    `hold_expired`; confirmed or released -> `hold_settled`; amount (None = all) > the
    hold's amount -> `exceeds_hold`; `balance_overflow` if the returned rest would pass the
    maximum; else held -> revenue(amount) and held -> available (the rest, if any), status
    confirmed, a ChargeRecord keyed by the confirm's command_id, an applied-log CHARGE line.
11. ReleaseHold: `hold_not_found`; `hold_expired`; `hold_settled`; `balance_overflow`;
    else held -> available, status released.
12. ExpireHold (billy's own event): `hold_not_found`; `hold_expired` (already);
    `hold_settled`; record time < expires_at -> `hold_not_expired`; `balance_overflow`;
    else held -> available, status expired, APPLIED.
13. Refund: the target is not a refundable charge of this client -> `charge_not_found`;
    nothing left to refund, or more requested (None = all that is left) than is left ->
    `exceeds_refundable`; `balance_overflow`; else revenue(product) -> available, an
    applied-log REFUND line.

Raises `InvariantViolation` (and only that) when the rows or the decision break a ledger
invariant: a bug or corrupt data, never bad input. Nothing must be written then.
Messages are short and never contain names or emails.
"""

from __future__ import annotations

from dataclasses import dataclass

from billy_core.commands import (
    BALANCE_BODIES,
    Adjust,
    Charge,
    Command,
    ConfirmHold,
    ExpireHold,
    Hold,
    Refund,
    RegisterClient,
    ReleaseHold,
    RequestInvoice,
    TransferCredit,
    expire_command_id,
)
from billy_core.idempotency import payload_hash
from billy_core.ledger import accounts
from billy_core.ledger.decision import AppliedKind, AppliedLine, Decision, Transfer
from billy_core.ledger.invariants import InvariantViolation, check_client, check_decision
from billy_core.ledger.state import ChargeRecord, ClientState, HoldRecord, HoldStatus, Wallet
from billy_core.limits import BALANCE_MINOR_MAX
from billy_core.results import Code, Status

__all__ = [
    "AppliedKind",
    "AppliedLine",
    "Decision",
    "Duplicate",
    "Transfer",
    "decide",
    "expiry_due",
]


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The command_id was seen before with the same payload: answer the stored result."""


def decide(
    state: ClientState,
    command: Command,
    record_ts_ms: int,
    *,
    invalid: str | None = None,
    prior_hash: bytes | None = None,
) -> Decision | Duplicate:
    """Decide one command for one client and apply it to `state` in place.

    `invalid`: why `commands.validate` refused the command (None: it is sound).
    `prior_hash`: the payload hash stored with this command_id (None: never seen).
    Never blocks, never does I/O. Raises only `InvariantViolation`.
    """
    if invalid is not None:
        return _rejected(Code.INVALID, invalid)
    if prior_hash is not None:
        if prior_hash == payload_hash(command):
            return Duplicate()
        return _rejected(
            Code.IDEMPOTENCY_CONFLICT, "command_id was used before with another payload"
        )
    if command.client_id != state.client_id:
        raise InvariantViolation(
            f"{state.tenant}/{state.client_id}: got a command of client {command.client_id!r}"
        )
    if isinstance(record_ts_ms, bool) or not isinstance(record_ts_ms, int) or record_ts_ms < 0:
        raise InvariantViolation(f"record_ts_ms must be a non-negative int, got {record_ts_ms!r}")
    holds, charges = _touched(command)
    check_client(state, holds, charges)
    wallet = state.wallet
    before = None if wallet is None else (wallet.available_minor, wallet.held_minor)
    before_version = None if wallet is None else wallet.version

    decision = _decide(state, command, record_ts_ms)

    after = state.wallet
    if after is None:
        if decision.status != Status.REJECTED or decision.transfers or decision.applied:
            raise InvariantViolation(f"{state.tenant}/{state.client_id}: changed with no wallet")
        return decision
    check_client(state, holds, charges)
    if before is None:  # this command registered the client
        check_decision((0, 0), after, decision)
        if after.version != 1 or not state.new_wallet:
            raise InvariantViolation(f"{state.tenant}/{state.client_id}: bad new wallet")
    else:
        check_decision(before, after, decision, before_version=before_version)
    return decision


def expiry_due(state: ClientState, command: Command, record_ts_ms: int) -> Command | None:
    """The ExpireHold that must be applied before `command`: a ConfirmHold or ReleaseHold
    that finds its hold open but past `expires_at` at this record's time. Pure."""
    body = command.body
    if not isinstance(body, ConfirmHold | ReleaseHold) or state.wallet is None:
        return None
    hold = state.holds.get(body.hold_id)
    if hold is None or hold.status != HoldStatus.OPEN or record_ts_ms < hold.expires_at_ms:
        return None
    return Command(
        expire_command_id(command.client_id, body.hold_id),
        command.client_id,
        record_ts_ms,
        ExpireHold(body.hold_id),
    )


def _touched(command: Command) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The hold and charge ids a command can read or write: what `decide` re-checks."""
    body = command.body
    if isinstance(body, Hold | ReleaseHold | ExpireHold):
        return (body.hold_id,), ()
    if isinstance(body, ConfirmHold):
        return (body.hold_id,), (command.command_id,)
    if isinstance(body, Charge):
        return (), (command.command_id,)
    if isinstance(body, Refund):
        return (), (body.charge_command_id,)
    return (), ()


def _rejected(code: Code, message: str, **details: str) -> Decision:
    return Decision(Status.REJECTED, code, message, details=details)


def _pending(message: str) -> Decision:
    return Decision(Status.APPLIED, Code.OK, message, pending=True)


def _applied(
    message: str,
    transfers: tuple[Transfer, ...],
    applied: tuple[AppliedLine, ...] = (),
    **details: str,
) -> Decision:
    return Decision(Status.APPLIED, Code.OK, message, transfers, applied, details)


def _decide(state: ClientState, command: Command, record_ts_ms: int) -> Decision:
    body = command.body
    wallet = state.wallet
    if isinstance(body, RegisterClient):
        if wallet is not None:
            return _rejected(Code.CLIENT_EXISTS, "the client is already registered")
        state.wallet = Wallet(state.tenant, state.client_id, body.currency, version=1)
        state.new_wallet = True
        return _pending("wallet created; registering in Balance")
    if wallet is None:
        return _rejected(Code.UNKNOWN_CLIENT, "the client is not registered")
    if (
        isinstance(body, (Charge, Hold, Adjust, RequestInvoice, TransferCredit))
        and body.currency != wallet.currency
    ):
        return _rejected(
            Code.CURRENCY_MISMATCH,
            f"the wallet is in {wallet.currency}",
            wallet_currency=wallet.currency,
        )
    if isinstance(body, BALANCE_BODIES):
        return _pending("waiting for Balance")
    match body:
        case Adjust():
            return _adjust(state, wallet, body)
        case Charge():
            return _charge(state, wallet, command.command_id, body)
        case Hold():
            return _hold(state, wallet, body, record_ts_ms)
        case ConfirmHold():
            return _confirm(state, wallet, command.command_id, body, record_ts_ms)
        case ReleaseHold():
            return _release(state, wallet, command.command_id, body, record_ts_ms)
        case ExpireHold():
            return _expire_hold(state, wallet, command.command_id, body, record_ts_ms)
        case Refund():
            return _refund(state, wallet, body)
    raise InvariantViolation(f"the ledger has no rule for {type(body).__name__}")


# --- helpers --------------------------------------------------------------------------


def _can_spend(wallet: Wallet, amount_minor: int) -> bool:
    return wallet.available_minor - amount_minor >= -wallet.overdraft_limit_minor


def _insufficient(wallet: Wallet, amount_minor: int) -> Decision:
    shortfall = amount_minor - (wallet.available_minor + wallet.overdraft_limit_minor)
    return _rejected(
        Code.INSUFFICIENT_FUNDS,
        "not enough available funds",
        shortfall_minor=str(shortfall),
    )


def _fits(balance_minor: int, credit_minor: int) -> bool:
    """Whether a balance can take a credit without passing a PostgreSQL bigint."""
    return balance_minor + credit_minor <= BALANCE_MINOR_MAX


def _overflow(what: str) -> Decision:
    return _rejected(Code.BALANCE_OVERFLOW, f"the {what} balance would pass {BALANCE_MINOR_MAX}")


def _open_hold(state: ClientState, hold_id: str) -> HoldRecord | Decision:
    hold = state.holds.get(hold_id)
    if hold is None:
        return _rejected(Code.HOLD_NOT_FOUND, "no such hold")
    if hold.status == HoldStatus.EXPIRED:
        return _rejected(
            Code.HOLD_EXPIRED,
            "the hold has expired",
            expires_at_ms=str(hold.expires_at_ms),
        )
    if hold.status != HoldStatus.OPEN:
        return _rejected(
            Code.HOLD_SETTLED, f"the hold is already {hold.status}", hold_status=hold.status
        )
    return hold


def _live_hold(state: ClientState, hold_id: str, record_ts_ms: int) -> HoldRecord | Decision:
    """The open, unexpired hold a confirm or release acts on, or the Decision that ends the
    command: not found, expired (by now or by this record's time: the shell applies the
    expiry first, see `expiry_due`), or settled. Changes nothing."""
    hold = _open_hold(state, hold_id)
    if isinstance(hold, HoldRecord) and record_ts_ms >= hold.expires_at_ms:
        return _rejected(
            Code.HOLD_EXPIRED,
            "the hold has expired",
            expires_at_ms=str(hold.expires_at_ms),
        )
    return hold


def _return_hold(
    state: ClientState, wallet: Wallet, hold: HoldRecord, command_id: str, status: str
) -> Transfer:
    """Settle an open hold as released or expired: everything held returns to available."""
    wallet.held_minor -= hold.amount_minor
    wallet.available_minor += hold.amount_minor
    wallet.version += 1
    hold.status = status
    hold.settled_by = command_id
    state.dirty_holds.add(hold.hold_id)
    return Transfer(
        accounts.held(state.tenant, state.client_id),
        accounts.available(state.tenant, state.client_id),
        hold.amount_minor,
        hold.currency,
    )


def _add_charge(state: ClientState, record: ChargeRecord) -> None:
    if record.command_id in state.charges:  # command ids are unique per tenant
        raise InvariantViolation(
            f"{state.tenant}/{state.client_id}: charge {record.command_id!r} applied twice"
        )
    state.charges[record.command_id] = record
    state.dirty_charges.add(record.command_id)


# --- rules ----------------------------------------------------------------------------


def _adjust(state: ClientState, wallet: Wallet, body: Adjust) -> Decision:
    available = accounts.available(state.tenant, state.client_id)
    adjustments = accounts.adjustments(state.tenant)
    if body.amount_minor > 0:
        if not _fits(wallet.available_minor, body.amount_minor):
            return _overflow("available")
        wallet.available_minor += body.amount_minor
        transfer = Transfer(adjustments, available, body.amount_minor, body.currency)
    else:
        amount = -body.amount_minor
        if not _can_spend(wallet, amount):
            return _insufficient(wallet, amount)
        wallet.available_minor -= amount
        transfer = Transfer(available, adjustments, amount, body.currency)
    wallet.version += 1
    return _applied("adjusted", (transfer,))


def _charge(state: ClientState, wallet: Wallet, command_id: str, body: Charge) -> Decision:
    if not _can_spend(wallet, body.amount_minor):
        return _insufficient(wallet, body.amount_minor)
    wallet.available_minor -= body.amount_minor
    wallet.version += 1
    _add_charge(state, ChargeRecord(command_id, body.product_id, body.amount_minor, body.currency))
    transfer = Transfer(
        accounts.available(state.tenant, state.client_id),
        accounts.revenue(state.tenant, body.product_id),
        body.amount_minor,
        body.currency,
    )
    line = AppliedLine(AppliedKind.CHARGE, body.product_id, body.amount_minor, body.currency, None)
    return _applied("charged", (transfer,), (line,))


def _hold(state: ClientState, wallet: Wallet, body: Hold, record_ts_ms: int) -> Decision:
    if body.hold_id in state.holds:
        return _rejected(Code.HOLD_EXISTS, "this hold_id is already used by this client")
    if body.expires_at_ms <= record_ts_ms:
        return _rejected(Code.INVALID, "body.expires_at: already passed at the record's time")
    if not _can_spend(wallet, body.amount_minor):
        return _insufficient(wallet, body.amount_minor)
    if not _fits(wallet.held_minor, body.amount_minor):
        return _overflow("held")
    wallet.available_minor -= body.amount_minor
    wallet.held_minor += body.amount_minor
    wallet.version += 1
    state.holds[body.hold_id] = HoldRecord(
        body.hold_id, body.product_id, body.amount_minor, body.currency, body.expires_at_ms
    )
    state.dirty_holds.add(body.hold_id)
    transfer = Transfer(
        accounts.available(state.tenant, state.client_id),
        accounts.held(state.tenant, state.client_id),
        body.amount_minor,
        body.currency,
    )
    return _applied("held", (transfer,))


def _confirm(
    state: ClientState, wallet: Wallet, command_id: str, body: ConfirmHold, record_ts_ms: int
) -> Decision:
    hold = _live_hold(state, body.hold_id, record_ts_ms)
    if isinstance(hold, Decision):
        return hold
    amount = hold.amount_minor if body.amount_minor is None else body.amount_minor
    if amount > hold.amount_minor:
        return _rejected(
            Code.EXCEEDS_HOLD,
            "more than the hold's amount",
            hold_amount_minor=str(hold.amount_minor),
        )
    rest = hold.amount_minor - amount
    if not _fits(wallet.available_minor, rest):
        return _overflow("available")
    wallet.held_minor -= hold.amount_minor
    wallet.available_minor += rest
    wallet.version += 1
    hold.status = HoldStatus.CONFIRMED
    hold.confirmed_minor = amount
    hold.settled_by = command_id
    state.dirty_holds.add(hold.hold_id)
    _add_charge(state, ChargeRecord(command_id, hold.product_id, amount, hold.currency))
    held = accounts.held(state.tenant, state.client_id)
    revenue = accounts.revenue(state.tenant, hold.product_id)
    transfers = [Transfer(held, revenue, amount, hold.currency)]
    if rest:
        available = accounts.available(state.tenant, state.client_id)
        transfers.append(Transfer(held, available, rest, hold.currency))
    line = AppliedLine(AppliedKind.CHARGE, hold.product_id, amount, hold.currency, None)
    return _applied(
        "hold confirmed",
        tuple(transfers),
        (line,),
        confirmed_minor=str(amount),
        returned_minor=str(rest),
    )


def _release(
    state: ClientState, wallet: Wallet, command_id: str, body: ReleaseHold, record_ts_ms: int
) -> Decision:
    hold = _live_hold(state, body.hold_id, record_ts_ms)
    if isinstance(hold, Decision):
        return hold
    if not _fits(wallet.available_minor, hold.amount_minor):
        return _overflow("available")
    transfer = _return_hold(state, wallet, hold, command_id, HoldStatus.RELEASED)
    return _applied("hold released", (transfer,))


def _expire_hold(
    state: ClientState, wallet: Wallet, command_id: str, body: ExpireHold, record_ts_ms: int
) -> Decision:
    hold = _open_hold(state, body.hold_id)
    if isinstance(hold, Decision):
        return hold
    if record_ts_ms < hold.expires_at_ms:
        return _rejected(
            Code.HOLD_NOT_EXPIRED,
            "the hold has not expired yet",
            expires_at_ms=str(hold.expires_at_ms),
        )
    if not _fits(wallet.available_minor, hold.amount_minor):
        return _overflow("available")
    transfer = _return_hold(state, wallet, hold, command_id, HoldStatus.EXPIRED)
    return _applied("hold expired", (transfer,))


def _refund(state: ClientState, wallet: Wallet, body: Refund) -> Decision:
    charge = state.charges.get(body.charge_command_id)
    if charge is None:
        return _rejected(Code.CHARGE_NOT_FOUND, "no refundable charge with this command_id")
    left = charge.amount_minor - charge.refunded_minor
    requested = left if body.amount_minor is None else body.amount_minor
    if left == 0 or requested > left:
        return _rejected(
            Code.EXCEEDS_REFUNDABLE,
            "more than is left to refund",
            refundable_minor=str(left),
        )
    if not _fits(wallet.available_minor, requested):
        return _overflow("available")
    charge.refunded_minor += requested
    state.dirty_charges.add(charge.command_id)
    wallet.available_minor += requested
    wallet.version += 1
    transfer = Transfer(
        accounts.revenue(state.tenant, charge.product_id),
        accounts.available(state.tenant, state.client_id),
        requested,
        charge.currency,
    )
    line = AppliedLine(
        AppliedKind.REFUND, charge.product_id, requested, charge.currency, charge.command_id
    )
    return _applied("refunded", (transfer,), (line,), refundable_minor=str(left - requested))
