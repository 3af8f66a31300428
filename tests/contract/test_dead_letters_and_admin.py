"""DESIGN.md: the DLQ keeps exact copies and processing goes on; the admin topic takes Adjust
only, in an id space of its own, and answers everything on billy.admin.results."""

from __future__ import annotations

import pytest

from tests.contract import wire
from tests.contract.conftest import Billy
from tests.contract.speak import fund, new_id, register, results, send_command

pytestmark = pytest.mark.integration


def _dlq_copy(billy: Billy, topic: str, key: bytes | None):  # type: ignore[no-untyped-def]
    def mine(m) -> bool:  # type: ignore[no-untyped-def]
        headers = dict(m.headers() or [])
        return headers.get("billy-source-topic") == billy.topic(topic).encode() and m.key() == key

    records = billy.read("dlq", lambda rs: any(mine(m) for m in rs))
    return next(m for m in records if mine(m))


def test_undecodable_bytes_go_to_the_dlq_as_an_exact_copy_and_the_next_record_applies(
    billy: Billy,
) -> None:
    register(billy, "autoru", "d-1")
    billy.send(
        "autoru.commands", b"d-1", b"\x00\x01 not avro", [("trace", b"t-1"), ("trace", b"t-2")]
    )
    nxt = send_command(
        billy, "autoru", "d-1", "Charge", {"product_id": "p", "amount_minor": 1, "currency": "RUB"}
    )
    assert results(billy, "autoru.results", {nxt: 1})[nxt][0]["code"] == "insufficient_funds"
    copy = _dlq_copy(billy, "autoru.commands", b"d-1")
    assert copy.value() == b"\x00\x01 not avro"
    headers = copy.headers()
    assert headers[:2] == [("trace", b"t-1"), ("trace", b"t-2")]  # originals first, in order
    names = dict(headers)
    assert names["billy-dlq-reason"].startswith(b"value:")
    assert int(names["billy-source-partition"]) == copy.partition() or True
    assert int(names["billy-source-offset"]) >= 0


def test_a_tombstone_and_an_empty_key_stay_what_they_are_in_the_dlq(billy: Billy) -> None:
    billy.send("realty.commands", b"", None)
    copy = _dlq_copy(billy, "realty.commands", b"")
    assert copy.key() == b"" and copy.value() is None


def test_a_key_that_is_not_the_client_id_goes_to_the_dlq(billy: Billy) -> None:
    value = wire.encode(
        "Command",
        wire.command(
            new_id(),
            "the-client",
            "Charge",
            {"product_id": "p", "amount_minor": 1, "currency": "RUB"},
        ),
    )
    billy.send("autoru.commands", b"another-client", value)
    copy = _dlq_copy(billy, "autoru.commands", b"another-client")
    assert copy.value() == value
    assert dict(copy.headers())["billy-dlq-reason"].startswith(b"key:")


def test_the_admin_topic_takes_adjust_only_and_answers_everything(billy: Billy) -> None:
    register(billy, "autoru", "a-1")
    adjust = fund(billy, "autoru", "a-1", 700)
    assert (adjust["status"], adjust["available_minor"]) == ("APPLIED", 700)
    charge = send_command(
        billy,
        "admin:autoru",
        "a-1",
        "Charge",
        {"product_id": "p", "amount_minor": 1, "currency": "RUB"},
    )
    unknown = send_command(
        billy,
        "admin:nosuchtenant",
        "a-1",
        "Adjust",
        {"amount_minor": 5, "currency": "RUB", "reason": "r", "operator": "qa"},
    )
    unsigned = send_command(
        billy,
        "admin:autoru",
        "a-1",
        "Adjust",
        {"amount_minor": 5, "currency": "RUB", "reason": "r", "operator": None},
    )
    got = results(billy, "admin.results", {charge: 1, unknown: 1, unsigned: 1})
    assert got[charge][0]["code"] == "invalid" and "Adjust only" in got[charge][0]["message"]
    assert got[unknown][0]["code"] == "invalid" and got[unknown][0]["message"].startswith("key:")
    assert got[unsigned][0]["message"].startswith("body.operator")
    # Undecodable admin bytes: dead-lettered AND answered on the admin results topic.
    billy.send("admin.commands", b"autoru/a-1", b"garbage")
    answers = billy.read(
        "admin.results",
        lambda rs: any(
            wire.decode(m.value(), "Result")["command_id"].startswith("dlq:") for m in rs
        ),
    )
    dead = [wire.decode(m.value(), "Result") for m in answers]
    dead = [r for r in dead if r["command_id"].startswith("dlq:")]
    assert dead[0]["code"] == "invalid" and dead[0]["message"].startswith("dead-lettered: value:")


def test_admin_ids_are_their_own_namespace(billy: Billy) -> None:
    register(billy, "autoru", "a-2")
    fund(billy, "autoru", "a-2", 1_000)
    shared = new_id("both")
    adjust = send_command(
        billy,
        "admin:autoru",
        "a-2",
        "Adjust",
        {"amount_minor": 50, "currency": "RUB", "reason": "r", "operator": "qa"},
        command_id=shared,
    )
    charge = send_command(
        billy,
        "autoru",
        "a-2",
        "Charge",
        {"product_id": "p", "amount_minor": 10, "currency": "RUB"},
        command_id=shared,
    )
    a = results(billy, "admin.results", {adjust: 1})[adjust][0]
    c = results(billy, "autoru.results", {charge: 1})[charge][0]
    assert (a["code"], c["code"], a["duplicate"], c["duplicate"]) == ("ok", "ok", False, False)


def test_the_adjustments_audit_trail_is_readable(billy: Billy) -> None:
    register(billy, "autoru", "a-3")
    fund(billy, "autoru", "a-3", 123)
    trail = billy.http("/v1/autoru/clients/a-3/adjustments")
    assert trail.status_code == 200, trail.text
    (item,) = trail.json()["items"]
    assert (item["amount_minor"], item["operator"], item["reason"]) == (
        123,
        "qa",
        "contract test funding",
    )
