"""The payment rule (billy_core.ledger.payments): every order of arrival credits exactly the
money on the order, once.

The property test simulates one Balance order: payments and postpay top-ups (some rejected,
some whose money reached Balance although billy was told they failed: a gateway that gave
up), notifications delivered late, duplicated and out of order, top-up outcomes at any time
after their effect. After every ledger event the wallet's credit from the order never passes
what Balance holds; at the end it equals it exactly, and the top-ups are credited as
top-ups.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billy_core.ledger.payments import OrderMoney, Verdict, apply_notification, apply_postpay


def test_a_newer_notification_credits_the_increase_only():
    s = OrderMoney()
    v = apply_notification(s, tid=10, order_sum_minor=500, pending_postpay_minor=0)
    assert (v.verdict, v.credit_minor) == (Verdict.CREDITED, 500)
    v = apply_notification(v.state, tid=11, order_sum_minor=800, pending_postpay_minor=0)
    assert (v.verdict, v.credit_minor) == (Verdict.CREDITED, 300)
    assert v.state == OrderMoney(last_tid=11, seen_minor=800, credited_payments_minor=800)


def test_a_stale_or_repeated_tid_credits_nothing_whatever_its_figures():
    s = apply_notification(OrderMoney(), 10, 500, 0).state
    for tid, total in ((10, 500), (10, 900), (9, 5000), (1, 0)):
        v = apply_notification(s, tid, total, 0)
        assert (v.verdict, v.credit_minor, v.state) == (Verdict.STALE, 0, s)


def test_a_lower_sum_credits_nothing_and_never_takes_money_back():
    s = apply_notification(OrderMoney(), 10, 500, 0).state
    v = apply_notification(s, 11, 200, 0)
    assert (v.verdict, v.credit_minor) == (Verdict.NOTHING_OWED, 0)
    assert v.state.seen_minor == 500 and v.state.credited_payments_minor == 500


def test_postpay_outcome_first_then_its_notification_credits_nothing_more():
    s = apply_postpay(OrderMoney(), credited_minor=1000, pending_postpay_minor=0).state
    v = apply_notification(s, 5, 1000, 0)
    assert (v.verdict, v.credit_minor) == (Verdict.NOTHING_OWED, 0)


def test_postpay_notification_first_is_held_back_while_its_command_is_pending():
    v = apply_notification(OrderMoney(), 5, 1000, pending_postpay_minor=1000)
    assert v.credit_minor == 0
    v = apply_postpay(v.state, credited_minor=1000, pending_postpay_minor=0)
    assert v.credit_minor == 0
    assert v.state.credited_postpay_minor == 1000 and v.state.credited_payments_minor == 0


def test_a_payment_waiting_behind_a_pending_topup_is_credited_when_it_is_rejected():
    v = apply_notification(OrderMoney(), 5, 300, pending_postpay_minor=1000)
    assert v.credit_minor == 0  # cannot tell the payment from the top-up yet
    v = apply_postpay(v.state, credited_minor=0, pending_postpay_minor=0)
    assert (v.verdict, v.credit_minor) == (Verdict.CREDITED, 300)


def test_the_topups_own_reading_of_the_order_releases_a_held_payment_at_once():
    # A payment of 300 arrives while a top-up of 1000 is pending and not yet in Balance.
    v = apply_notification(OrderMoney(), 5, 300, pending_postpay_minor=1000)
    assert v.credit_minor == 0
    without = apply_postpay(v.state, 1000, 0)  # no reading: waits for the next notification
    assert without.credit_minor == 0
    with_reading = apply_postpay(v.state, 1000, 0, order_sum_minor=1300)
    assert (with_reading.verdict, with_reading.credit_minor) == (Verdict.CREDITED, 300)
    later = apply_notification(with_reading.state, 6, 1300, 0)  # its notification: nothing more
    assert later.credit_minor == 0


def test_a_payment_beside_a_topup_already_on_the_order():
    v = apply_notification(OrderMoney(), 5, 1300, pending_postpay_minor=1000)
    assert v.credit_minor == 300
    v = apply_postpay(v.state, 1000, 0)
    assert v.credit_minor == 0
    assert v.state.credited_payments_minor + v.state.credited_postpay_minor == 1300


@pytest.mark.parametrize("bad", [-1, True, 1.5, None])
def test_bad_figures_are_refused(bad):
    with pytest.raises(ValueError, match="order_sum_minor"):
        apply_notification(OrderMoney(), 1, bad, 0)


# --- the property ---------------------------------------------------------------------------

ops = st.lists(
    st.one_of(
        st.tuples(st.just("pay"), st.integers(1, 5000)),
        # top-up: amount, fate: ok (credited), rejected (nothing on the order),
        # ghost (on the order, yet billy was told it failed)
        st.tuples(st.just("topup"), st.integers(1, 5000), st.sampled_from(["ok", "rej", "ghost"])),
        st.tuples(st.just("consume"), st.just(0)),  # a notification without new money
    ),
    min_size=1,
    max_size=12,
)


@given(ops=ops, data=st.data())
def test_every_order_of_arrival_credits_exactly_the_money_on_the_order(ops, data):
    balance = 0  # Balance's cumulative money on the order
    tid = 100
    ready: list[tuple] = []  # ledger events that may be delivered now, in any order
    ledger: list[tuple] = []  # what the ledger applied, in order

    state = OrderMoney()
    pending: dict[int, int] = {}
    credited_topups = 0
    payments: dict[int, int] = {}  # tid -> credit

    def apply(event: tuple) -> None:
        nonlocal state, credited_topups
        ledger.append(event)
        kind = event[0]
        if kind == "pending":
            pending[event[1]] = event[2]
            return
        if kind == "notify":
            v = apply_notification(state, event[1], event[2], sum(pending.values()))
            if v.credit_minor:
                assert event[1] not in payments, "a Tid credited twice"
                payments[event[1]] = v.credit_minor
        else:  # outcome
            _, i, credited, order_sum = event
            del pending[i]
            credited_topups += credited
            v = apply_postpay(state, credited, sum(pending.values()), order_sum)
            if v.credit_minor:
                payments[-len(ledger)] = v.credit_minor  # a held-back payment, released
        state = v.state
        in_wallet = sum(payments.values()) + credited_topups
        assert in_wallet <= balance, f"credited {in_wallet} > {balance} on the order"
        assert state.credited_payments_minor == sum(payments.values())

    def deliver_some() -> None:
        while ready and data.draw(st.booleans()):
            event = ready.pop(data.draw(st.integers(0, len(ready) - 1)))
            apply(event)
            if event[0] == "notify" and data.draw(st.integers(0, 9)) < 3:
                ready.append(event)  # Balance delivers it again, later

    for i, op in enumerate(ops):
        deliver_some()
        if op[0] == "topup":
            _, amount, fate = op
            apply(("pending", i, amount))  # the ledger recorded the command before Balance acts
            if fate in ("ok", "ghost"):
                balance += amount
            # The gateway reads the order's money right after the credit (when Balance answers).
            read = balance if fate == "ok" and data.draw(st.booleans()) else None
            ready.append(("outcome", i, amount if fate == "ok" else 0, read))
        else:
            balance += op[1]
        tid += data.draw(st.integers(1, 3))
        ready.append(("notify", tid, balance))
    while ready:
        deliver_some()
        if ready:
            apply(ready.pop(0))

    assert not pending
    assert sum(payments.values()) + credited_topups == balance
    assert state.credited_postpay_minor == credited_topups
