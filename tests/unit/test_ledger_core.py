"""The ledger core, one rule and one code at a time (precedence in billy_core.ledger.core)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from itertools import count

import pytest

from billy_core.commands import (
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
    UpsertContract,
    UpsertPayer,
    expire_command_id,
    validate,
)
from billy_core.compiled import compiled
from billy_core.idempotency import payload_hash
from billy_core.ledger import (
    AppliedLine,
    ChargeRecord,
    ClientState,
    Decision,
    Duplicate,
    HoldRecord,
    InvariantViolation,
    Transfer,
    Wallet,
    accounts,
    check_client,
    check_decision,
    check_held_matches,
    check_transfers,
    decide,
    expiry_due,
)
from billy_core.limits import BALANCE_MINOR_MAX
from billy_core.results import Code, Status

T, C = "autoru", "c1"
AVAILABLE = accounts.available(T, C)
HELD = accounts.held(T, C)
NOW = 1_000_000
_ids = count()


def cmd(body, command_id: str | None = None, client_id: str = C) -> Command:
    command = Command(command_id or f"cmd-{next(_ids)}", client_id, NOW, body)
    validate(command, admin=isinstance(command.body, Adjust))  # decide's precondition
    return command


def client(available: int = 100, overdraft: int = 0, currency: str = "RUB") -> ClientState:
    """A registered client as the shell would load it."""
    wallet = Wallet(T, C, currency, available, 0, 5, overdraft)
    return ClientState(T, C, wallet)


def wallet_of(state: ClientState) -> tuple[int, int, int]:
    return state.wallet.available_minor, state.wallet.held_minor, state.wallet.version


def snapshot(state: ClientState) -> ClientState:
    """A deep copy of `state`. Not `copy.deepcopy`: a compiled class with an `__init__` that
    takes arguments cannot be rebuilt without them."""
    return replace(
        state,
        wallet=None if state.wallet is None else replace(state.wallet),
        holds={k: replace(h) for k, h in state.holds.items()},
        charges={k: replace(c) for k, c in state.charges.items()},
        dirty_holds=set(state.dirty_holds),
        dirty_charges=set(state.dirty_charges),
    )


def rejected_unchanged(state: ClientState, body, code: Code, ts: int = NOW) -> Decision:
    """Decide `body`; expect REJECTED `code`, no money moved and not a field changed."""
    before = snapshot(state)
    decision = decide(state, cmd(body), ts)
    assert (decision.status, decision.code) == (Status.REJECTED, code), decision
    assert decision.transfers == () and decision.applied == ()
    assert state == before
    assert decision.message
    return decision


def with_hold(available=100, amount=40, hold_id="h1", expires=NOW + 100, overdraft=0):
    state = client(available, overdraft)
    decision = decide(state, cmd(Hold(hold_id, "p", amount, "RUB", expires)), NOW)
    assert decision.code == Code.OK
    state.dirty_holds.clear()
    return state


# --- accounts -------------------------------------------------------------------------


def test_account_names():
    assert accounts.available("autoru", "c/1:x") == "w:autoru/c/1:x:available"
    assert accounts.held("autoru", "c1") == "w:autoru/c1:held"
    assert accounts.payments("autoru") == "t:autoru:payments"
    assert accounts.credit("autoru") == "t:autoru:credit"
    assert accounts.revenue("autoru", "vin-report") == "t:autoru:revenue:vin-report"
    assert accounts.adjustments("autoru") == "t:autoru:adjustments"


# --- RegisterClient -------------------------------------------------------------------


def test_register_creates_wallet_in_the_body_currency_at_version_1():
    state = ClientState(T, C)
    decision = decide(state, cmd(RegisterClient("Ivan", "i@example.com", "USD")), NOW)
    assert (decision.status, decision.code, decision.transfers) == (Status.APPLIED, Code.OK, ())
    assert state.wallet == Wallet(T, C, "USD", 0, 0, 1, 0)
    assert state.new_wallet


def test_register_twice_is_client_exists():
    rejected_unchanged(client(), RegisterClient("Ivan", "i@example.com"), Code.CLIENT_EXISTS)


# --- unknown_client, unsupported, currency_mismatch ---------------------------------------

EVERY_OTHER_BODY = [
    Charge("p", 1, "RUB"),
    Hold("h1", "p", 1, "RUB", NOW + 1),
    ConfirmHold("h1"),
    ReleaseHold("h1"),
    ExpireHold("h1"),
    Refund("cmd-x"),
    Adjust(5, "RUB", "fix", "ops"),
    UpsertPayer(None, "ph"),  # unknown_client comes before unsupported
    UpsertContract(None, "p1", "postpay", 1000, "RUB"),
    RequestInvoice(100, "RUB", "p1"),
    TransferCredit(100, "RUB"),
]


@pytest.mark.parametrize("body", EVERY_OTHER_BODY, ids=lambda b: type(b).__name__)
def test_any_other_body_without_wallet_is_unknown_client(body):
    rejected_unchanged(ClientState(T, C), body, Code.UNKNOWN_CLIENT)


@pytest.mark.parametrize("body", EVERY_OTHER_BODY[-4:], ids=lambda b: type(b).__name__)
def test_balance_bound_bodies_are_pending_and_change_nothing(body):
    state = client()
    before = (state.wallet.available_minor, state.wallet.held_minor, state.wallet.version)
    decision = decide(state, Command("cmd-b", C, NOW, body), NOW)
    assert (decision.status, decision.code, decision.pending) == (Status.APPLIED, Code.OK, True)
    assert decision.transfers == () and decision.applied == ()
    assert (state.wallet.available_minor, state.wallet.held_minor, state.wallet.version) == before


def test_register_client_creates_the_wallet_and_is_pending():
    state = ClientState(T, C)
    decision = decide(state, Command("cmd-r", C, NOW, RegisterClient("Ivan", "i@x.ru")), NOW)
    assert (decision.status, decision.code, decision.pending) == (Status.APPLIED, Code.OK, True)
    assert state.wallet is not None and state.wallet.version == 1


@pytest.mark.parametrize(
    "body",
    [RequestInvoice(100, "USD", "p1"), TransferCredit(100, "USD")],
    ids=lambda b: type(b).__name__,
)
def test_balance_bound_money_in_another_currency_is_currency_mismatch(body):
    rejected_unchanged(client(), body, Code.CURRENCY_MISMATCH)


@pytest.mark.parametrize(
    "body",
    [Charge("p", 1, "USD"), Hold("h1", "p", 1, "USD", NOW + 1), Adjust(-5, "USD", "fix", "ops")],
    ids=lambda b: type(b).__name__,
)
def test_currency_mismatch(body):
    decision = rejected_unchanged(client(), body, Code.CURRENCY_MISMATCH)
    assert decision.details == {"wallet_currency": "RUB"}


def test_currency_mismatch_comes_before_insufficient_funds_and_hold_exists():
    rejected_unchanged(client(available=0), Charge("p", 500, "USD"), Code.CURRENCY_MISMATCH)
    state = with_hold()
    rejected_unchanged(state, Hold("h1", "p", 1, "USD", NOW + 5), Code.CURRENCY_MISMATCH)


# --- Adjust ---------------------------------------------------------------------------


def test_positive_adjust_credits_available_from_adjustments():
    state = client(available=10)
    decision = decide(state, cmd(Adjust(25, "RUB", "goodwill", "ops")), NOW)
    assert decision.code == Code.OK
    assert decision.transfers == (Transfer(accounts.adjustments(T), AVAILABLE, 25, "RUB"),)
    assert wallet_of(state) == (35, 0, 6)
    assert decision.applied == ()


def test_negative_adjust_down_to_exactly_zero():
    state = client(available=10)
    decision = decide(state, cmd(Adjust(-10, "RUB", "fix", "ops")), NOW)
    assert decision.transfers == (Transfer(AVAILABLE, accounts.adjustments(T), 10, "RUB"),)
    assert wallet_of(state) == (0, 0, 6)


def test_negative_adjust_beyond_available_is_insufficient_funds():
    decision = rejected_unchanged(
        client(available=10), Adjust(-11, "RUB", "fix", "ops"), Code.INSUFFICIENT_FUNDS
    )
    assert decision.details == {"shortfall_minor": "1"}


def test_negative_adjust_may_use_the_overdraft_exactly():
    state = client(available=10, overdraft=5)
    assert decide(state, cmd(Adjust(-15, "RUB", "fix", "ops")), NOW).code == Code.OK
    assert wallet_of(state) == (-5, 0, 6)
    rejected_unchanged(state, Adjust(-1, "RUB", "fix", "ops"), Code.INSUFFICIENT_FUNDS)


# --- Charge ---------------------------------------------------------------------------


def test_charge_moves_available_to_revenue_and_becomes_refundable():
    state = client(available=100)
    decision = decide(state, cmd(Charge("vin", 30, "RUB"), "ch-1"), NOW)
    assert (decision.status, decision.code) == (Status.APPLIED, Code.OK)
    assert decision.transfers == (Transfer(AVAILABLE, accounts.revenue(T, "vin"), 30, "RUB"),)
    assert decision.applied == (AppliedLine("CHARGE", "vin", 30, "RUB", None),)
    assert wallet_of(state) == (70, 0, 6)
    assert state.charges == {"ch-1": ChargeRecord("ch-1", "vin", 30, "RUB", 0)}
    assert state.dirty_charges == {"ch-1"}


def test_charge_of_exactly_the_available_amount():
    state = client(available=30)
    assert decide(state, cmd(Charge("vin", 30, "RUB")), NOW).code == Code.OK
    assert wallet_of(state) == (0, 0, 6)


def test_charge_one_more_than_available_is_insufficient_funds():
    decision = rejected_unchanged(
        client(available=30), Charge("vin", 31, "RUB"), Code.INSUFFICIENT_FUNDS
    )
    assert decision.details == {"shortfall_minor": "1"}


def test_charge_into_the_overdraft_down_to_its_limit_and_not_beyond():
    state = client(available=10, overdraft=20)
    assert decide(state, cmd(Charge("vin", 30, "RUB")), NOW).code == Code.OK
    assert wallet_of(state) == (-20, 0, 6)
    rejected_unchanged(state, Charge("vin", 1, "RUB"), Code.INSUFFICIENT_FUNDS)


def test_held_money_cannot_be_charged():
    state = with_hold(available=50, amount=50)
    rejected_unchanged(state, Charge("vin", 1, "RUB"), Code.INSUFFICIENT_FUNDS)


# --- Hold -----------------------------------------------------------------------------


def test_hold_moves_available_to_held():
    state = client(available=100)
    decision = decide(state, cmd(Hold("h1", "vin", 40, "RUB", NOW + 1)), NOW)
    assert (decision.status, decision.code) == (Status.APPLIED, Code.OK)
    assert decision.transfers == (Transfer(AVAILABLE, HELD, 40, "RUB"),)
    assert decision.applied == ()
    assert wallet_of(state) == (60, 40, 6)
    assert state.holds == {"h1": HoldRecord("h1", "vin", 40, "RUB", NOW + 1)}
    assert state.dirty_holds == {"h1"}


@pytest.mark.parametrize("settle", [None, ConfirmHold("h1"), ReleaseHold("h1")])
def test_hold_id_used_before_is_hold_exists_whatever_its_status(settle):
    state = with_hold()
    if settle is not None:
        assert decide(state, cmd(settle), NOW).code == Code.OK
    rejected_unchanged(state, Hold("h1", "vin", 1, "RUB", NOW + 5), Code.HOLD_EXISTS)


def test_hold_exists_comes_before_invalid_expiry():
    rejected_unchanged(with_hold(), Hold("h1", "vin", 1, "RUB", NOW), Code.HOLD_EXISTS)


@pytest.mark.parametrize("expires", [NOW, NOW - 1])
def test_hold_expiring_at_or_before_the_record_time_is_invalid(expires):
    decision = rejected_unchanged(client(), Hold("h1", "vin", 1, "RUB", expires), Code.INVALID)
    assert decision.message == "body.expires_at: already passed at the record's time"


def test_hold_expiring_one_ms_after_the_record_time_is_fine():
    assert decide(client(), cmd(Hold("h1", "vin", 1, "RUB", NOW + 1)), NOW).code == Code.OK


def test_invalid_expiry_comes_before_insufficient_funds():
    rejected_unchanged(client(available=0), Hold("h1", "vin", 5, "RUB", NOW), Code.INVALID)


def test_hold_of_exactly_the_available_amount_and_one_more():
    state = client(available=40)
    rejected_unchanged(state, Hold("h1", "vin", 41, "RUB", NOW + 9), Code.INSUFFICIENT_FUNDS)
    assert decide(state, cmd(Hold("h1", "vin", 40, "RUB", NOW + 9)), NOW).code == Code.OK
    assert wallet_of(state) == (0, 40, 6)


def test_hold_may_use_the_overdraft():
    state = client(available=0, overdraft=10)
    assert decide(state, cmd(Hold("h1", "vin", 10, "RUB", NOW + 9)), NOW).code == Code.OK
    assert wallet_of(state) == (-10, 10, 6)


# --- ConfirmHold ----------------------------------------------------------------------


def test_confirm_unknown_hold_is_hold_not_found():
    rejected_unchanged(client(), ConfirmHold("nope"), Code.HOLD_NOT_FOUND)


@pytest.mark.parametrize("settle", [ConfirmHold("h1", 5), ReleaseHold("h1")])
def test_confirm_settled_hold_is_hold_settled(settle):
    state = with_hold(expires=NOW + 100)
    assert decide(state, cmd(settle), NOW).code == Code.OK
    decision = rejected_unchanged(state, ConfirmHold("h1"), Code.HOLD_SETTLED, NOW + 1000)
    assert decision.details == {"hold_status": state.holds["h1"].status}


def test_confirm_of_an_expired_hold_is_hold_expired_not_settled():
    state = with_hold(expires=NOW + 100)
    assert decide(state, cmd(ExpireHold("h1")), NOW + 100).code == Code.OK
    decision = rejected_unchanged(state, ConfirmHold("h1"), Code.HOLD_EXPIRED, NOW + 1000)
    assert decision.details == {"expires_at_ms": str(NOW + 100)}


def test_confirm_all_by_default():
    state = with_hold(available=100, amount=40)
    decision = decide(state, cmd(ConfirmHold("h1"), "conf-1"), NOW + 99)
    assert (decision.status, decision.code) == (Status.APPLIED, Code.OK)
    assert decision.transfers == (Transfer(HELD, accounts.revenue(T, "p"), 40, "RUB"),)
    assert decision.applied == (AppliedLine("CHARGE", "p", 40, "RUB", None),)
    assert decision.details == {"confirmed_minor": "40", "returned_minor": "0"}
    assert wallet_of(state) == (60, 0, 7)
    hold = state.holds["h1"]
    assert (hold.status, hold.confirmed_minor, hold.settled_by) == ("confirmed", 40, "conf-1")
    assert state.charges["conf-1"] == ChargeRecord("conf-1", "p", 40, "RUB", 0)
    assert state.dirty_holds == {"h1"} and state.dirty_charges == {"conf-1"}


def test_confirm_exactly_the_held_amount():
    state = with_hold(amount=40)
    decision = decide(state, cmd(ConfirmHold("h1", 40)), NOW)
    assert decision.transfers == (Transfer(HELD, accounts.revenue(T, "p"), 40, "RUB"),)
    assert wallet_of(state) == (60, 0, 7)


def test_confirm_part_returns_the_rest_to_available():
    state = with_hold(available=100, amount=40)
    decision = decide(state, cmd(ConfirmHold("h1", 15), "conf-1"), NOW)
    assert decision.transfers == (
        Transfer(HELD, accounts.revenue(T, "p"), 15, "RUB"),
        Transfer(HELD, AVAILABLE, 25, "RUB"),
    )
    assert decision.applied == (AppliedLine("CHARGE", "p", 15, "RUB", None),)
    assert wallet_of(state) == (85, 0, 7)
    assert state.holds["h1"].confirmed_minor == 15
    assert state.charges["conf-1"].amount_minor == 15


def test_confirm_more_than_held_is_exceeds_hold():
    decision = rejected_unchanged(with_hold(amount=40), ConfirmHold("h1", 41), Code.EXCEEDS_HOLD)
    assert decision.details == {"hold_amount_minor": "40"}


def _expired_first(state: ClientState, body, ts: int) -> Decision:
    """A confirm or release that finds its hold past expires_at: the expiry is an event of
    its own (`expiry_due`), and the command alone is a pure rejection."""
    command = cmd(body, "late")
    expiry = expiry_due(state, command, ts)
    assert expiry is not None
    assert expiry.command_id == expire_command_id("c1", "h1")
    assert expiry.body == ExpireHold("h1") and expiry.client_id == "c1"
    # Decided alone (as if the shell forgot the expiry), the command changes nothing.
    alone = rejected_unchanged(snapshot(state), body, Code.HOLD_EXPIRED, ts)
    before = wallet_of(state)
    applied = decide(state, expiry, ts)
    assert (applied.status, applied.code) == (Status.APPLIED, Code.OK)
    assert applied.transfers == (Transfer(HELD, AVAILABLE, 40, "RUB"),)
    assert wallet_of(state) == (before[0] + 40, before[1] - 40, before[2] + 1)
    hold = state.holds["h1"]
    assert (hold.status, hold.settled_by, hold.confirmed_minor) == ("expired", expiry.command_id, 0)
    assert state.charges == {}
    assert expiry_due(state, command, ts) is None  # expired now: nothing more is due
    rejected_unchanged(state, body, Code.HOLD_EXPIRED, ts)
    return alone


@pytest.mark.parametrize("late_ms", [0, 1, 10_000])
def test_confirm_at_or_after_expiry_expires_the_hold_first(late_ms):
    state = with_hold(amount=40, expires=NOW + 100)
    decision = _expired_first(state, ConfirmHold("h1"), NOW + 100 + late_ms)
    assert decision.details == {"expires_at_ms": str(NOW + 100)}


def test_confirm_one_ms_before_expiry_is_fine():
    state = with_hold(amount=40, expires=NOW + 100)
    assert decide(state, cmd(ConfirmHold("h1")), NOW + 99).code == Code.OK


def test_hold_expired_comes_before_exceeds_hold():
    _expired_first(with_hold(amount=40, expires=NOW + 100), ConfirmHold("h1", 41), NOW + 100)


def test_a_hold_expired_before_a_confirm_stays_expired():
    state = with_hold(amount=40, expires=NOW + 100)
    _expired_first(state, ConfirmHold("h1"), NOW + 100)
    rejected_unchanged(state, ConfirmHold("h1"), Code.HOLD_EXPIRED, NOW + 101)
    rejected_unchanged(state, ExpireHold("h1"), Code.HOLD_EXPIRED, NOW + 101)


def test_no_expiry_is_due_before_expires_at_or_for_other_commands():
    state = with_hold(amount=40, expires=NOW + 100)
    assert expiry_due(state, cmd(ConfirmHold("h1")), NOW + 99) is None
    assert expiry_due(state, cmd(ReleaseHold("h1")), NOW + 99) is None
    assert expiry_due(state, cmd(Charge("p", 1, "RUB")), NOW + 1000) is None
    assert expiry_due(state, cmd(ConfirmHold("other")), NOW + 1000) is None


# --- ReleaseHold ----------------------------------------------------------------------


def test_release_unknown_hold_is_hold_not_found():
    rejected_unchanged(client(), ReleaseHold("nope"), Code.HOLD_NOT_FOUND)


def test_release_returns_the_hold_to_available():
    state = with_hold(available=100, amount=40)
    decision = decide(state, cmd(ReleaseHold("h1"), "rel-1"), NOW + 99)
    assert (decision.status, decision.code) == (Status.APPLIED, Code.OK)
    assert decision.transfers == (Transfer(HELD, AVAILABLE, 40, "RUB"),)
    assert wallet_of(state) == (100, 0, 7)
    hold = state.holds["h1"]
    assert (hold.status, hold.settled_by) == ("released", "rel-1")


def test_release_twice_is_hold_settled():
    state = with_hold()
    decide(state, cmd(ReleaseHold("h1")), NOW)
    rejected_unchanged(state, ReleaseHold("h1"), Code.HOLD_SETTLED)


def test_release_exactly_at_expiry_expires_the_hold_first():
    _expired_first(with_hold(amount=40, expires=NOW + 100), ReleaseHold("h1"), NOW + 100)


# --- invalid, duplicates, conflicts, overflow: the head of the precedence list -------------


def test_invalid_comes_first_and_changes_nothing():
    state = with_hold()
    decision = decide(
        state, cmd(Charge("p", 1, "RUB")), NOW, invalid="body.x: bad", prior_hash=b"x"
    )
    assert (decision.status, decision.code, decision.message) == (
        Status.REJECTED,
        Code.INVALID,
        "body.x: bad",
    )


def test_a_resend_with_the_same_payload_is_a_duplicate():
    state = client(available=100)
    charge = cmd(Charge("p", 10, "RUB"), "ch-1")
    before = snapshot(state)
    assert decide(state, charge, NOW, prior_hash=payload_hash(charge)) == Duplicate()
    assert state == before


def test_the_same_id_with_another_payload_is_an_idempotency_conflict():
    state = client(available=100)
    first = cmd(Charge("p", 10, "RUB"), "ch-1")
    other = cmd(Charge("p", 11, "RUB"), "ch-1")
    before = snapshot(state)
    decision = decide(state, other, NOW, prior_hash=payload_hash(first))
    assert (decision.status, decision.code) == (Status.REJECTED, Code.IDEMPOTENCY_CONFLICT)
    assert state == before


@pytest.mark.parametrize(
    "body",
    [Adjust(10**13, "RUB", "fix", "ops"), Refund("ch-big"), ReleaseHold("h1")],
)
def test_a_balance_that_would_pass_64_bits_is_balance_overflow(body):
    state = with_hold(available=100, amount=40, expires=NOW + 100)
    decide(state, cmd(Charge("p", 50, "RUB"), "ch-big"), NOW)
    state.wallet.available_minor = BALANCE_MINOR_MAX - 1
    rejected_unchanged(state, body, Code.BALANCE_OVERFLOW)


# --- ExpireHold -----------------------------------------------------------------------


def test_expire_unknown_hold_is_hold_not_found():
    rejected_unchanged(client(), ExpireHold("nope"), Code.HOLD_NOT_FOUND)


def test_expire_before_expires_at_is_hold_not_expired():
    state = with_hold(expires=NOW + 100)
    decision = rejected_unchanged(state, ExpireHold("h1"), Code.HOLD_NOT_EXPIRED, NOW + 99)
    assert decision.details == {"expires_at_ms": str(NOW + 100)}


@pytest.mark.parametrize("late_ms", [0, 1])
def test_expire_at_or_after_expires_at_releases_the_hold(late_ms):
    state = with_hold(available=100, amount=40, expires=NOW + 100)
    decision = decide(state, cmd(ExpireHold("h1"), "exp-1"), NOW + 100 + late_ms)
    assert (decision.status, decision.code) == (Status.APPLIED, Code.OK)
    assert decision.transfers == (Transfer(HELD, AVAILABLE, 40, "RUB"),)
    assert wallet_of(state) == (100, 0, 7)
    hold = state.holds["h1"]
    assert (hold.status, hold.settled_by) == ("expired", "exp-1")


def test_expire_of_a_confirmed_hold_is_hold_settled():
    state = with_hold(expires=NOW + 100)
    decide(state, cmd(ConfirmHold("h1")), NOW)
    rejected_unchanged(state, ExpireHold("h1"), Code.HOLD_SETTLED, NOW + 100)


# --- Refund ---------------------------------------------------------------------------


def charged(amount=30, available=100) -> ClientState:
    state = client(available)
    assert decide(state, cmd(Charge("vin", amount, "RUB"), "ch-1"), NOW).code == Code.OK
    state.dirty_charges.clear()
    return state


def test_refund_of_an_unknown_command_is_charge_not_found():
    rejected_unchanged(charged(), Refund("ch-2"), Code.CHARGE_NOT_FOUND)


def test_refund_of_a_hold_command_is_charge_not_found():
    state = client()
    decide(state, cmd(Hold("h1", "p", 5, "RUB", NOW + 9), "hold-cmd"), NOW)
    rejected_unchanged(state, Refund("hold-cmd"), Code.CHARGE_NOT_FOUND)


def test_refund_all_by_default():
    state = charged(amount=30, available=100)
    decision = decide(state, cmd(Refund("ch-1")), NOW)
    assert (decision.status, decision.code) == (Status.APPLIED, Code.OK)
    assert decision.transfers == (Transfer(accounts.revenue(T, "vin"), AVAILABLE, 30, "RUB"),)
    assert decision.applied == (AppliedLine("REFUND", "vin", 30, "RUB", "ch-1"),)
    assert decision.details == {"refundable_minor": "0"}
    assert wallet_of(state) == (100, 0, 7)
    assert state.charges["ch-1"].refunded_minor == 30
    assert state.dirty_charges == {"ch-1"}


def test_refund_in_two_parts_then_nothing_is_left():
    state = charged(amount=30, available=100)
    assert decide(state, cmd(Refund("ch-1", 10)), NOW).details == {"refundable_minor": "20"}
    decision = decide(state, cmd(Refund("ch-1", 20)), NOW)
    assert decision.applied == (AppliedLine("REFUND", "vin", 20, "RUB", "ch-1"),)
    assert wallet_of(state) == (100, 0, 8)
    decision = rejected_unchanged(state, Refund("ch-1"), Code.EXCEEDS_REFUNDABLE)
    assert decision.details == {"refundable_minor": "0"}
    rejected_unchanged(state, Refund("ch-1", 1), Code.EXCEEDS_REFUNDABLE)


def test_refund_more_than_is_left_is_exceeds_refundable():
    state = charged(amount=30)
    decide(state, cmd(Refund("ch-1", 10)), NOW)
    decision = rejected_unchanged(state, Refund("ch-1", 21), Code.EXCEEDS_REFUNDABLE)
    assert decision.details == {"refundable_minor": "20"}


def test_refund_of_a_confirmed_hold_up_to_the_confirmed_amount():
    state = with_hold(available=100, amount=40)
    decide(state, cmd(ConfirmHold("h1", 15), "conf-1"), NOW)
    rejected_unchanged(state, Refund("conf-1", 16), Code.EXCEEDS_REFUNDABLE)
    decision = decide(state, cmd(Refund("conf-1")), NOW)
    assert decision.transfers == (Transfer(accounts.revenue(T, "p"), AVAILABLE, 15, "RUB"),)
    assert decision.applied == (AppliedLine("REFUND", "p", 15, "RUB", "conf-1"),)
    assert wallet_of(state) == (100, 0, 8)


def test_refund_may_bring_an_overdrawn_wallet_back():
    state = client(available=0, overdraft=50)
    decide(state, cmd(Charge("vin", 50, "RUB"), "ch-1"), NOW)
    assert decide(state, cmd(Refund("ch-1", 20)), NOW).code == Code.OK
    assert wallet_of(state) == (-30, 0, 7)


# --- messages, determinism ------------------------------------------------------------


def test_messages_and_details_never_carry_names_or_emails():
    state = ClientState(T, C)
    bodies = [
        RegisterClient("Ivan Petrov", "ivan.petrov@example.com"),
        RegisterClient("Ivan Petrov", "ivan.petrov@example.com"),
        Adjust(50, "RUB", "Ivan Petrov asked", "ops"),
        Charge("vin", 500, "RUB"),
        Hold("h1", "vin", 10, "RUB", NOW + 5),
        ConfirmHold("h1", 11),
    ]
    for body in bodies:
        decision = decide(state, cmd(body), NOW)
        text = decision.message + " ".join(decision.details.values())
        assert "Ivan" not in text and "@" not in text, text
        assert 0 < len(decision.message) <= 80


def test_same_inputs_give_same_decisions_and_rows():
    script = [
        (RegisterClient("n", "e@x.io"), NOW),
        (Adjust(100, "RUB", "seed", "ops"), NOW),
        (Hold("h1", "p", 30, "RUB", NOW + 10), NOW + 1),
        (Charge("p", 20, "RUB"), NOW + 2),
        (ConfirmHold("h1", 10), NOW + 20),
        (Refund("c3", 5), NOW + 21),
    ]
    runs = []
    for _ in range(2):
        state = ClientState(T, C)
        decisions = [decide(state, cmd(b, f"c{i}"), ts) for i, (b, ts) in enumerate(script)]
        runs.append((decisions, state))
    assert runs[0] == runs[1]


# --- invariants -----------------------------------------------------------------------


def test_decide_refuses_a_command_of_another_client():
    with pytest.raises(InvariantViolation):
        decide(client(), cmd(Charge("p", 1, "RUB"), client_id="c2"), NOW)


def test_decide_refuses_corrupt_rows():
    state = client(available=-1)  # below an overdraft limit of 0
    with pytest.raises(InvariantViolation):
        decide(state, cmd(Adjust(5, "RUB", "fix", "ops")), NOW)


def test_decide_refuses_a_charge_applied_twice():
    state = charged()
    with pytest.raises(InvariantViolation, match="applied twice"):
        decide(state, cmd(Charge("vin", 1, "RUB"), "ch-1"), NOW)


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda s: setattr(s.wallet, "held_minor", -1),
        lambda s: setattr(s.wallet, "available_minor", -11),  # overdraft limit is 10
        lambda s: setattr(s.wallet, "overdraft_limit_minor", -1),
        lambda s: setattr(s.wallet, "available_minor", 1.5),
        lambda s: s.holds.__setitem__("h2", s.holds["h1"]),  # stored under another id
        lambda s: setattr(s.holds["h1"], "amount_minor", 41),  # open holds > held
        lambda s: setattr(s.holds["h1"], "status", "gone"),
        lambda s: setattr(s.holds["h1"], "settled_by", "x"),  # open yet settled
        lambda s: setattr(s.holds["h1"], "confirmed_minor", 1),  # open yet confirmed
        lambda s: setattr(s.holds["h1"], "currency", "USD"),
        lambda s: s.charges.__setitem__("c", ChargeRecord("c", "p", 5, "RUB", 6)),
        lambda s: s.charges.__setitem__("c", ChargeRecord("c", "p", 5, "USD", 0)),
        lambda s: s.dirty_charges.add("ghost"),
        lambda s: setattr(s, "tenant", "bad/tenant"),
    ],
)
def test_check_client_catches_corrupt_rows(corrupt):
    state = with_hold(available=100, amount=40, overdraft=10)
    check_client(state)
    try:
        corrupt(state)
    except TypeError:
        # Compiled (billy_core.compiled), a wallet's int field refuses a float outright.
        assert "billy_core.ledger.state" in compiled()
        return
    with pytest.raises(InvariantViolation):
        check_client(state)


def test_check_held_matches():
    wallet = Wallet(T, C, "RUB", 0, 40, 3)
    check_held_matches(wallet, 40)
    with pytest.raises(InvariantViolation):
        check_held_matches(wallet, 39)


@pytest.mark.parametrize(
    "transfers",
    [
        (Transfer("a", "b", 0, "RUB"),),
        (Transfer("a", "b", -5, "RUB"),),
        (Transfer("a", "a", 5, "RUB"),),
        (Transfer("a", "b", True, "RUB"),),
    ],
)
def test_check_transfers_catches_bad_amounts_and_self_transfers(transfers):
    check_transfers((Transfer("a", "b", 5, "RUB"), Transfer("b", "c", 5, "USD")))
    if transfers[0].amount_minor == 1 and transfers[0].amount_minor is not True:
        # Compiled (billy_core.compiled), the native int field stored True as the int 1: no
        # bool amount can reach the check.
        assert "billy_core.ledger.decision" in compiled()
        return
    with pytest.raises(InvariantViolation):
        check_transfers(transfers)


def _ok(*transfers: Transfer) -> Decision:
    return Decision(Status.APPLIED, Code.OK, "ok", transfers)


def test_check_decision_recomputes_the_wallet_from_the_transfers():
    after = Wallet(T, C, "RUB", 60, 40, 6)
    check_decision((100, 0), after, _ok(Transfer(AVAILABLE, HELD, 40, "RUB")), before_version=5)
    bad = [
        ((100, 0), _ok(Transfer(AVAILABLE, HELD, 39, "RUB"))),  # amounts disagree
        ((100, 0), _ok(Transfer(AVAILABLE, accounts.revenue(T, "p"), 40, "RUB"))),  # wrong target
        ((100, 0), _ok(Transfer(AVAILABLE, HELD, 40, "USD"))),  # other currency
        ((60, 40), _ok(Transfer("w:other/x:available", "t:other:adjustments", 1, "RUB"))),
        (
            (100, 0),
            Decision(
                Status.REJECTED,
                Code.INSUFFICIENT_FUNDS,
                "no",
                (Transfer(AVAILABLE, HELD, 40, "RUB"),),
            ),
        ),
        ((60, 40), Decision(Status.APPLIED, Code.INSUFFICIENT_FUNDS, "no")),
    ]
    for before, decision in bad:
        with pytest.raises(InvariantViolation):
            check_decision(before, after, decision)
    with pytest.raises(InvariantViolation, match="version"):  # money moved, version did not
        check_decision((100, 0), after, _ok(Transfer(AVAILABLE, HELD, 40, "RUB")), before_version=6)


def test_invariant_checks_survive_python_O():
    code = (
        "from billy_core.ledger import Wallet, InvariantViolation, check_held_matches\n"
        "try:\n"
        "    check_held_matches(Wallet('t', 'c', 'RUB', 0, 5, 1), 4)\n"
        "except InvariantViolation:\n"
        "    print('caught')\n"
    )
    out = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "caught", out.stderr
