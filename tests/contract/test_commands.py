"""DESIGN.md "Commands and results", from the outside: Avro bytes in, Avro bytes out."""

from __future__ import annotations

import hashlib
import time

import pytest

from tests.contract import wire
from tests.contract.conftest import Billy
from tests.contract.speak import fund, new_id, register, results, send_command

pytestmark = pytest.mark.integration

CHARGE = {"product_id": "vas-top", "amount_minor": 150, "currency": "RUB"}


def test_results_are_single_object_avro_of_the_published_schema(billy: Billy) -> None:
    register(billy, "autoru", "frame-1")
    records = billy.read("autoru.results", lambda rs: len(rs) >= 1)
    value = records[0].value()
    assert value[:2] == b"\xc3\x01"
    assert value[2:10] == wire.writer_schema("Result")[1]
    assert records[0].key() == b"frame-1"
    assert dict(records[0].headers())["billy-event-id"]


def test_every_command_gets_one_result_and_a_resend_the_stored_one(billy: Billy) -> None:
    register(billy, "autoru", "c-1")
    fund(billy, "autoru", "c-1", 10_000)
    charge = send_command(billy, "autoru", "c-1", "Charge", CHARGE)
    first = results(billy, "autoru.results", {charge: 1})[charge]
    assert len(first) == 1
    assert (first[0]["status"], first[0]["code"], first[0]["duplicate"]) == ("APPLIED", "ok", False)
    send_command(billy, "autoru", "c-1", "Charge", CHARGE, command_id=charge)  # the same again
    both = results(billy, "autoru.results", {charge: 2})[charge]
    assert len(both) == 2
    again = both[1]
    assert again["duplicate"] is True
    assert {k: v for k, v in again.items() if k != "duplicate"} == {
        k: v for k, v in first[0].items() if k != "duplicate"
    }
    # The same id with another payload: a conflict, and nothing changes.
    other = dict(CHARGE, amount_minor=151)
    send_command(billy, "autoru", "c-1", "Charge", other, command_id=charge)
    three = results(billy, "autoru.results", {charge: 3})[charge]
    assert (three[2]["status"], three[2]["code"]) == ("REJECTED", "idempotency_conflict")
    assert three[2]["wallet_version"] == first[0]["wallet_version"]
    assert three[2]["available_minor"] == first[0]["available_minor"]


def test_bad_values_and_bad_ids_are_rejected_invalid_naming_the_field(billy: Billy) -> None:
    register(billy, "autoru", "c-2")
    zero = send_command(billy, "autoru", "c-2", "Charge", dict(CHARGE, amount_minor=0))
    nul = send_command(billy, "autoru", "c-2", "Charge", CHARGE, command_id="bad\x00id")
    long = send_command(billy, "autoru", "c-2", "Charge", CHARGE, command_id="x" * 4000)
    after = send_command(billy, "autoru", "c-2", "Charge", dict(CHARGE, amount_minor=1))
    # An id over 256 code points is published shortened (schemas/limits.json).
    long = long[:64] + "...sha256:" + hashlib.sha256(long.encode()).hexdigest()
    got = results(billy, "autoru.results", {zero: 1, nul: 1, long: 1, after: 1})
    assert got[zero][0]["code"] == "invalid"
    assert got[zero][0]["message"].startswith("body.amount_minor")
    assert got[nul][0]["code"] == "invalid" and got[nul][0]["message"].startswith("command_id")
    assert got[long][0]["code"] == "invalid" and got[long][0]["message"].startswith("command_id")
    assert len(got[long][0]["message"]) < 300  # never echoes the 4,000 characters
    assert got[after][0]["code"] == "insufficient_funds"  # processing went on
    # An invalid command is never remembered: the same again is invalid again, no duplicate.
    send_command(billy, "autoru", "c-2", "Charge", CHARGE, command_id="bad\x00id")
    again = results(billy, "autoru.results", {nul: 2})[nul]
    assert [(r["code"], r["duplicate"]) for r in again] == [("invalid", False)] * 2


def test_a_rejection_changes_nothing(billy: Billy) -> None:
    register(billy, "autoru", "c-3")
    funded = fund(billy, "autoru", "c-3", 100)
    too_much = send_command(billy, "autoru", "c-3", "Charge", dict(CHARGE, amount_minor=101))
    r = results(billy, "autoru.results", {too_much: 1})[too_much][0]
    assert (r["status"], r["code"]) == ("REJECTED", "insufficient_funds")
    assert (r["available_minor"], r["wallet_version"]) == (100, funded["wallet_version"])
    wallet = billy.http("/v1/autoru/clients/c-3/wallet").json()
    assert (wallet["available_minor"], wallet["version"]) == (100, funded["wallet_version"])


def test_an_expired_hold_is_its_own_event_and_the_late_confirm_a_pure_rejection(
    billy: Billy,
) -> None:
    register(billy, "autoru", "c-4")
    fund(billy, "autoru", "c-4", 1_000)
    expires = int(time.time() * 1000) + 1_500
    hold = send_command(
        billy,
        "autoru",
        "c-4",
        "Hold",
        {
            "hold_id": "h-1",
            "product_id": "call",
            "amount_minor": 300,
            "currency": "RUB",
            "expires_at": expires,
        },
    )
    held = results(billy, "autoru.results", {hold: 1})[hold][0]
    assert (held["code"], held["held_minor"]) == ("ok", 300)
    # Whoever comes first after expires_at (billy's sweeper, or this confirm) expires the hold
    # in an event of its own; the confirm is then a rejection that changes nothing.
    time.sleep(2.0)
    late = send_command(
        billy, "autoru", "c-4", "ConfirmHold", {"hold_id": "h-1", "amount_minor": None}
    )
    got = results(billy, "autoru.results", {late: 1})
    confirm = got[late][0]
    assert (confirm["status"], confirm["code"]) == ("REJECTED", "hold_expired")
    assert (confirm["available_minor"], confirm["held_minor"]) == (1_000, 0)
    expiries = [
        r
        for rs in got.values()
        for r in rs
        if r["command_id"].startswith("billy-expire:") and r["code"] == "ok"
    ]
    assert len(expiries) == 1
    assert expiries[0]["wallet_version"] == confirm["wallet_version"]  # the rejection moved nothing


def test_the_tenant_comes_from_the_topic_so_ids_are_per_tenant(billy: Billy) -> None:
    for tenant in ("autoru", "realty"):
        register(billy, tenant, "same-client")
        fund(billy, tenant, "same-client", 500)
    shared = new_id("shared")
    send_command(billy, "autoru", "same-client", "Charge", CHARGE, command_id=shared)
    send_command(billy, "realty", "same-client", "Charge", CHARGE, command_id=shared)
    a = results(billy, "autoru.results", {shared: 1})[shared]
    r = results(billy, "realty.results", {shared: 1})[shared]
    assert [(x["code"], x["duplicate"]) for x in a + r] == [("ok", False), ("ok", False)]


def test_the_applied_services_log_and_the_wallet_snapshot(billy: Billy) -> None:
    register(billy, "autoru", "c-5")
    fund(billy, "autoru", "c-5", 1_000)
    charge = send_command(billy, "autoru", "c-5", "Charge", CHARGE)
    r = results(billy, "autoru.results", {charge: 1})[charge][0]
    lines = billy.read(
        "applied-services",
        lambda rs: any(
            wire.decode(m.value(), "AppliedService")["command_id"] == charge for m in rs
        ),
    )
    (line,) = [m for m in lines if wire.decode(m.value(), "AppliedService")["command_id"] == charge]
    assert line.key() == b"autoru/c-5"
    decoded = wire.decode(line.value(), "AppliedService")
    assert (decoded["kind"], decoded["amount_minor"], decoded["product_id"]) == (
        "CHARGE",
        150,
        "vas-top",
    )

    def latest(records):  # type: ignore[no-untyped-def]
        snaps = [
            wire.decode(m.value(), "WalletSnapshot") for m in records if m.key() == b"autoru/c-5"
        ]
        return snaps[-1] if snaps else None

    snaps = billy.read(
        "wallets",
        lambda rs: (s := latest(rs)) is not None and s["wallet_version"] >= r["wallet_version"],
    )
    snap = latest(snaps)
    assert (snap["available_minor"], snap["held_minor"]) == (r["available_minor"], r["held_minor"])
    assert "Dealer" not in repr(snap) and "@" not in repr(snap)  # no personal data
