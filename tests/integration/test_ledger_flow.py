"""Every command and every rejection code through the real broker, PostgreSQL, ledger and relay."""

from __future__ import annotations

import pytest

from billy_core.codec import decode_applied_service, decode_result, decode_wallet_snapshot
from billy_core.commands import (
    Adjust,
    Charge,
    ConfirmHold,
    Hold,
    Refund,
    RegisterClient,
    ReleaseHold,
    TransferCredit,
)
from tests.integration.kafka_io import Reader, Sender, cmd, now_ms

pytestmark = pytest.mark.integration

TENANT = "autoru"


@pytest.fixture(scope="module")
def io(settings, topics, billy):
    sender = Sender(settings)
    results = Reader(settings, topics.results(TENANT))
    admin_results = Reader(settings, topics.admin_results)
    yield sender, results, admin_results, topics
    results.close()
    admin_results.close()


def _results(reader: Reader, ids: list[str], timeout_s: float = 60.0):
    """The decoded results for `ids`, in the order they were published."""
    wanted = set(ids)

    def done(records):
        return wanted <= {decode_result(m.value()).command_id for m in records}

    reader.poll_until(done, timeout_s)
    decoded = [decode_result(m.value()) for m in reader.records]
    return {r.command_id: r for r in decoded if r.command_id in wanted}, decoded


def _fund(io, client: str, amount: int) -> None:
    sender, results, admin_results, topics = io
    c = sender.command(topics.commands(TENANT), cmd(client, RegisterClient("Dealer", "d@x.ru")))
    sender.flush()
    assert _results(results, [c])[0][c].code == "ok"
    # The admin topic is another partition: send the funding only once the client exists.
    a = sender.command(
        topics.admin_commands,
        cmd(client, Adjust(amount, "RUB", "test funding", "tester")),
        key=f"{TENANT}/{client}",
    )
    sender.flush()
    assert _results(admin_results, [a])[0][a].code == "ok"


def test_register_charge_and_rejections(io):
    sender, results, _, topics = io
    t = topics.commands(TENANT)
    _fund(io, "c1", 10_000)
    ids = {
        "again": sender.command(t, cmd("c1", RegisterClient("Dealer", "d@x.ru"))),
        "charge": sender.command(t, cmd("c1", Charge("listing", 3_000, "RUB"))),
        "too_much": sender.command(t, cmd("c1", Charge("listing", 100_000, "RUB"))),
        "usd": sender.command(t, cmd("c1", Charge("listing", 100, "USD"))),
        "unknown": sender.command(t, cmd("nobody", Charge("listing", 100, "RUB"))),
        "zero": sender.command(t, cmd("c1", Charge("listing", 0, "RUB"))),
        "balance": sender.command(t, cmd("c1", TransferCredit(100, "RUB"))),
    }
    sender.flush()
    got, _ = _results(results, list(ids.values()))
    assert got[ids["again"]].code == "client_exists"
    charge = got[ids["charge"]]
    assert (charge.status, charge.code, charge.available_minor) == ("APPLIED", "ok", 7_000)
    assert got[ids["too_much"]].code == "insufficient_funds"
    assert got[ids["too_much"]].available_minor == 7_000
    assert got[ids["usd"]].code == "currency_mismatch"
    assert got[ids["unknown"]].code == "unknown_client"
    assert got[ids["zero"]].code == "invalid"
    assert "amount_minor" in got[ids["zero"]].message
    assert got[ids["balance"]].code == "unsupported"
    assert all(r.status == "REJECTED" for k, r in got.items() if k != ids["charge"])


def test_holds_confirm_release_expire(io):
    sender, results, _, topics = io
    t = topics.commands(TENANT)
    _fund(io, "c2", 10_000)
    base = now_ms()
    far = base + 3_600_000
    ids = {
        "hold": sender.command(t, cmd("c2", Hold("h1", "boost", 4_000, "RUB", far))),
        "dup_hold": sender.command(t, cmd("c2", Hold("h1", "boost", 1_000, "RUB", far))),
        "over": sender.command(t, cmd("c2", ConfirmHold("h1", 5_000))),
        "confirm": sender.command(t, cmd("c2", ConfirmHold("h1", 2_500))),
        "settled": sender.command(t, cmd("c2", ReleaseHold("h1"))),
        "missing": sender.command(t, cmd("c2", ConfirmHold("nope"))),
        "hold2": sender.command(t, cmd("c2", Hold("h2", "boost", 1_000, "RUB", far))),
        "release": sender.command(t, cmd("c2", ReleaseHold("h2"))),
        # h3 expires 10 s after `base` by the records' own timestamps: the confirm stamped
        # 20 s later finds it expired, whatever the wall clock says.
        "hold3": sender.command(
            t, cmd("c2", Hold("h3", "boost", 500, "RUB", base + 10_000)), ts_ms=base
        ),
        "late": sender.command(t, cmd("c2", ConfirmHold("h3")), ts_ms=base + 20_000),
    }
    sender.flush()
    got, _ = _results(results, list(ids.values()))
    assert got[ids["hold"]].held_minor == 4_000 and got[ids["hold"]].available_minor == 6_000
    assert got[ids["dup_hold"]].code == "hold_exists"
    assert got[ids["over"]].code == "exceeds_hold"
    confirm = got[ids["confirm"]]
    assert (confirm.code, confirm.available_minor, confirm.held_minor) == ("ok", 7_500, 0)
    assert got[ids["settled"]].code == "hold_settled"
    assert got[ids["missing"]].code == "hold_not_found"
    assert got[ids["release"]].code == "ok" and got[ids["release"]].available_minor == 7_500
    late = got[ids["late"]]
    assert (late.status, late.code, late.held_minor, late.available_minor) == (
        "REJECTED",
        "hold_expired",
        0,
        7_500,
    )


def test_untouched_hold_is_expired_by_billy(io):
    sender, results, _, topics = io
    t = topics.commands(TENANT)
    _fund(io, "c3", 1_000)
    h = sender.command(t, cmd("c3", Hold("soon", "boost", 600, "RUB", now_ms() + 1_500)))
    sender.flush()
    got, _ = _results(results, [h])
    assert got[h].held_minor == 600

    def expired(records):
        return any(
            decode_result(m.value()).command_id.startswith("billy-expire:")
            and decode_result(m.value()).client_id == "c3"
            for m in records
        )

    results.poll_until(expired, timeout_s=30)
    expiry = [
        decode_result(m.value())
        for m in results.records
        if decode_result(m.value()).client_id == "c3"
    ][-1]
    assert (expiry.status, expiry.code, expiry.held_minor, expiry.available_minor) == (
        "APPLIED",
        "ok",
        0,
        1_000,
    )


def test_refunds(io):
    sender, results, _, topics = io
    t = topics.commands(TENANT)
    _fund(io, "c4", 10_000)
    charge = cmd("c4", Charge("listing", 3_000, "RUB"))
    ids = {
        "charge": sender.command(t, charge),
        "part": sender.command(t, cmd("c4", Refund(charge.command_id, 1_000))),
        "over": sender.command(t, cmd("c4", Refund(charge.command_id, 2_500))),
        "rest": sender.command(t, cmd("c4", Refund(charge.command_id))),
        "empty": sender.command(t, cmd("c4", Refund(charge.command_id))),
        "unknown": sender.command(t, cmd("c4", Refund("no-such-charge"))),
    }
    sender.flush()
    got, _ = _results(results, list(ids.values()))
    assert got[ids["part"]].code == "ok" and got[ids["part"]].available_minor == 8_000
    assert got[ids["over"]].code == "exceeds_refundable"
    assert got[ids["rest"]].code == "ok" and got[ids["rest"]].available_minor == 10_000
    assert got[ids["empty"]].code == "exceeds_refundable"
    assert got[ids["unknown"]].code == "charge_not_found"


def test_resend_and_conflict(io):
    sender, results, _, topics = io
    t = topics.commands(TENANT)
    _fund(io, "c5", 5_000)
    first = cmd("c5", Charge("listing", 1_000, "RUB"), command_id="fixed-id-1")
    sender.command(t, first)
    sender.flush()
    _results(results, ["fixed-id-1"])
    sender.command(t, first)  # a new record, same id, same payload
    sender.command(t, cmd("c5", Charge("listing", 2_000, "RUB"), command_id="fixed-id-1"))
    sender.flush()
    results.poll_until(
        lambda rs: sum(decode_result(m.value()).command_id == "fixed-id-1" for m in rs) >= 3
    )
    answers = [
        decode_result(m.value())
        for m in results.records
        if decode_result(m.value()).command_id == "fixed-id-1"
    ]
    original, resent, conflict = answers
    assert not original.duplicate and original.available_minor == 4_000
    assert resent.duplicate and (resent.code, resent.available_minor, resent.wallet_version) == (
        original.code,
        original.available_minor,
        original.wallet_version,
    )
    assert (conflict.status, conflict.code) == ("REJECTED", "idempotency_conflict")
    assert conflict.available_minor == 4_000  # nothing changed


def test_poison_goes_to_dlq_and_processing_goes_on(io, settings):
    sender, results, _, topics = io
    t = topics.commands(TENANT)
    _fund(io, "c6", 5_000)
    sender.raw(t, b"c6", b"\x00garbage")
    sender.raw(t, b"c6", b"\xc3\x01" + b"\x00" * 8 + b"junk")
    sender.command(t, cmd("c6", Charge("listing", 100, "RUB")), key="someone-else")
    after = sender.command(t, cmd("c6", Charge("listing", 100, "RUB")))
    sender.flush()
    got, _ = _results(results, [after])
    assert got[after].code == "ok" and got[after].available_minor == 4_900
    dlq = Reader(settings, topics.dlq)
    try:
        dlq.poll_until(lambda rs: len(rs) >= 3)
        reasons = []
        for m in dlq.records:
            headers = dict(m.headers())
            assert headers["billy-source-topic"] == t.encode()
            assert int(headers["billy-source-offset"]) >= 0
            reasons.append(headers["billy-dlq-reason"].decode())
        assert any("key: does not match" in r for r in reasons)
        assert any("UnknownFingerprint" in r or "fingerprint" in r.lower() for r in reasons)
    finally:
        dlq.close()


def test_applied_services_and_wallet_snapshots(io, settings):
    sender, results, _, topics = io
    t = topics.commands(TENANT)
    _fund(io, "c7", 5_000)
    charge = cmd("c7", Charge("listing", 1_200, "RUB"))
    refund = cmd("c7", Refund(charge.command_id, 200))
    sender.command(t, charge)
    sender.command(t, refund)
    sender.flush()
    got, _ = _results(results, [charge.command_id, refund.command_id])
    final_version = got[refund.command_id].wallet_version
    log = Reader(settings, topics.applied_services)
    wallets = Reader(settings, topics.wallets)
    try:
        log.poll_until(lambda rs: sum(m.key() == f"{TENANT}/c7".encode() for m in rs) >= 2)
        lines = [
            decode_applied_service(m.value())
            for m in log.records
            if m.key() == f"{TENANT}/c7".encode()
        ]
        assert [(x.kind, x.amount_minor, x.refund_of) for x in lines] == [
            ("CHARGE", 1_200, None),
            ("REFUND", 200, charge.command_id),
        ]

        def latest(rs):
            mine = [
                decode_wallet_snapshot(m.value()) for m in rs if m.key() == f"{TENANT}/c7".encode()
            ]
            return mine and mine[-1].wallet_version == final_version

        wallets.poll_until(latest)
        snap = [
            decode_wallet_snapshot(m.value())
            for m in wallets.records
            if m.key() == f"{TENANT}/c7".encode()
        ][-1]
        assert (snap.available_minor, snap.held_minor) == (4_000, 0)
    finally:
        log.close()
        wallets.close()


def test_text_postgresql_cannot_store_is_refused_not_fatal(io, settings):
    """A NUL in a field would make PostgreSQL refuse the write and stall the partition."""
    sender, results, _, topics = io
    t = topics.commands(TENANT)
    _fund(io, "c8", 1_000)
    bad_product = sender.command(t, cmd("c8", Charge("list\x00ing", 100, "RUB")))
    bad_id = sender.command(t, cmd("c8", Charge("listing", 100, "RUB"), command_id="nul\x00id"))
    after = sender.command(t, cmd("c8", Charge("listing", 100, "RUB")))
    sender.flush()
    got, _ = _results(results, [bad_product, bad_id, after])
    assert (got[bad_product].code, got[bad_id].code, got[after].code) == (
        "invalid",
        "invalid",
        "ok",
    )
    assert "product_id" in got[bad_product].message
    assert got[bad_id].message.startswith("command_id:")
    # Never remembered: the same invalid command again is answered invalid again.
    sender.command(t, cmd("c8", Charge("listing", 100, "RUB"), command_id="nul\x00id"))
    sender.flush()
    results.poll_until(
        lambda rs: sum(decode_result(m.value()).command_id == bad_id for m in rs) >= 2
    )
    answers = [decode_result(m.value()) for m in results.records]
    answers = [r for r in answers if r.command_id == bad_id]
    assert [(r.code, r.duplicate) for r in answers] == [("invalid", False), ("invalid", False)]


def test_expire_hold_before_its_time_is_refused(io):
    from billy_core.commands import ExpireHold

    sender, results, _, topics = io
    t = topics.commands(TENANT)
    _fund(io, "c9", 1_000)
    hold = sender.command(t, cmd("c9", Hold("later", "boost", 300, "RUB", now_ms() + 3_600_000)))
    early = sender.command(t, cmd("c9", ExpireHold("later")))
    sender.flush()
    got, _ = _results(results, [hold, early])
    assert (got[early].status, got[early].code, got[early].held_minor) == (
        "REJECTED",
        "hold_not_expired",
        300,
    )
