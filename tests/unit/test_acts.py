"""The pure parts of consumption reports and reconciliation: Balance months as instants, the
reporter's cutoffs at month boundaries, report dates, cumulative totals and differences."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billy_core.acts import months
from billy_core.acts.reconcile import Status, reconcile

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- months ---------------------------------------------------------------------------------


def test_a_month_is_bounded_in_moscow_time():
    start, end = months.month_bounds("2026-11")
    assert (start, end) == (at("2026-10-31T21:00:00"), at("2026-11-30T21:00:00"))
    assert months.month_bounds("2026-12")[1] == at("2026-12-31T21:00:00")  # over the year


@pytest.mark.parametrize(
    ("instant", "month"),
    [
        ("2026-11-30T20:59:59.999999", "2026-11"),
        ("2026-11-30T21:00:00", "2026-12"),  # midnight in Moscow: December already
        ("2026-10-31T21:00:00", "2026-11"),
        ("2026-10-31T20:59:59", "2026-10"),
        ("2026-12-31T21:00:00", "2027-01"),
    ],
)
def test_the_month_of_an_instant_is_the_month_balance_dates_it(instant, month):
    assert months.month_of(at(instant)) == month


def test_naive_times_and_bad_months_are_refused_by_name():
    with pytest.raises(ValueError, match="naive"):
        months.month_of(dt.datetime(2026, 11, 1))
    for bad in ("2026-13", "2026-1", "26-11", "1999-12", "2026-11-01", ""):
        with pytest.raises(ValueError, match="month: expected YYYY-MM"):
            months.parse_month(bad)


def test_previous_month():
    assert months.previous_month("2027-01") == "2026-12"
    assert months.previous_month("2026-11") == "2026-10"


@given(st.datetimes(min_value=dt.datetime(2001, 1, 1), max_value=dt.datetime(2090, 1, 1)))
def test_every_instant_lies_within_the_bounds_of_its_month(naive):
    moment = naive.replace(tzinfo=UTC)
    start, end = months.month_bounds(months.month_of(moment))
    assert start <= moment < end


# --- cutoffs and report dates ---------------------------------------------------------------


def test_a_cutoff_is_a_whole_second_settle_seconds_ago():
    cutoff = months.next_cutoff(at("2026-11-10T00:00:00"), at("2026-11-20T12:00:10.7"), 10)
    assert cutoff == at("2026-11-20T12:00:00")


def test_a_cutoff_never_steps_over_a_month_boundary():
    counted = at("2026-11-30T20:00:00")
    cutoff = months.next_cutoff(counted, at("2026-12-02T00:00:00"), 10)
    assert cutoff == at("2026-11-30T21:00:00")  # stops at the boundary
    # the report made there is dated the month's last second, in November
    assert months.month_of(months.report_dt(cutoff)) == "2026-11"
    assert months.report_dt(cutoff) == at("2026-11-30T20:59:59")
    # the next step goes on into December, and its reports are December's
    following = months.next_cutoff(cutoff, at("2026-12-02T00:00:00"), 10)
    assert following == at("2026-12-01T23:59:50")
    assert months.month_of(months.report_dt(following)) == "2026-12"


def test_a_cutoff_never_goes_back():
    counted = at("2026-11-20T12:00:00")
    assert months.next_cutoff(counted, at("2026-11-20T12:00:05"), 10) == counted


def test_a_report_date_needs_a_whole_second():
    with pytest.raises(ValueError, match="whole second"):
        months.report_dt(at("2026-11-20T12:00:00.5"))


@given(
    st.datetimes(min_value=dt.datetime(2001, 1, 1), max_value=dt.datetime(2090, 1, 1)),
    st.integers(min_value=1, max_value=90 * 86400),
)
def test_steps_to_now_cross_each_boundary_exactly_once(start_naive, span_s):
    """Stepping from any watermark to any later time visits every month boundary in between,
    and each step's report falls in the month of the instants it covers."""
    counted = start_naive.replace(tzinfo=UTC, microsecond=0)
    now = counted + dt.timedelta(seconds=span_s)
    while True:
        cutoff = months.next_cutoff(counted, now, 0)
        if cutoff == counted:
            break
        assert months.month_of(months.report_dt(cutoff)) == months.month_of(counted)
        counted = cutoff
    assert counted == now.replace(microsecond=0)


# --- reconciliation -------------------------------------------------------------------------


def test_matched_differs_and_no_act():
    assert reconcile([12_500], 12_500).status is Status.MATCHED
    more = reconcile([10_000, 3_000], 12_500)  # two acts (two contracts) of one client
    assert (more.act_minor, more.difference_minor, more.act_count, more.status) == (
        13_000,
        500,
        2,
        Status.DIFFERS,
    )
    less = reconcile([10_000], 12_500)
    assert (less.difference_minor, less.status) == (-2_500, Status.DIFFERS)
    missing = reconcile([], 700)
    assert (missing.act_minor, missing.difference_minor, missing.status) == (0, -700, Status.NO_ACT)
    assert reconcile([], 0).status is Status.MATCHED


@given(st.lists(st.integers(0, 10**13), max_size=4), st.integers(-(10**13), 10**13))
def test_the_difference_is_act_less_ledger(acts, ledger):
    outcome = reconcile(acts, ledger)
    assert outcome.difference_minor == sum(acts) - ledger
    assert (outcome.status is Status.MATCHED) == (outcome.difference_minor == 0)


# --- cumulative totals ------------------------------------------------------------------------


def test_only_changed_totals_of_clients_in_balance_are_reported():
    from billy_core.acts.totals import InvariantBroken, to_report

    totals = {"a": 500, "b": 300, "c": 0, "d": 700, "e": 900}
    latest = {"a": 500, "b": 200, "c": 100}  # c: refunded to zero after a report
    reportable = {"a", "b", "c", "d"}  # e has no Balance order yet
    assert to_report(totals, latest, dict.fromkeys(reportable)) == ["b", "c", "d"]
    assert to_report({"z": 0}, {}, {"z": None}) == []  # nothing yet, nothing to say
    with pytest.raises(InvariantBroken, match="negative"):
        to_report({"a": -1}, {}, {"a": None})


@given(st.lists(st.tuples(st.sampled_from(["charge", "refund"]), st.integers(1, 10_000))))
def test_reporting_the_cumulative_total_again_changes_nothing(events):
    """Cumulative totals are idempotent: whatever was reported before, sending the current
    total makes Balance's figure the ledger's, and a repeat is not a new report."""
    from billy_core.acts.totals import to_report

    total = 0
    reported: dict[str, int] = {}
    for kind, amount in events:
        total = total + amount if kind == "charge" else max(0, total - amount)
        for key in to_report({"k": total}, reported, {"k": None}):
            reported[key] = total
        assert reported.get("k", 0) == total
        assert to_report({"k": total}, reported, {"k": None}) == []


# --- the sweeper role ---------------------------------------------------------------------------


def test_the_sweeper_reports_and_imports_only_when_billy_talks_to_balance():
    from billy_core.settings import Settings
    from jobs.balance_jobs import sweeper_jobs

    with_balance = [job.__qualname__ for job in sweeper_jobs(Settings(balance_gateway=True))]
    assert with_balance == ["HoldSweeper.run", "ConsumptionReporter.run", "ActsImporter.run"]
    without = [job.__qualname__ for job in sweeper_jobs(Settings(balance_gateway=False))]
    assert without == ["HoldSweeper.run"]
