"""Issue 10's wedges, from the outside: billy as a process, spoken to only in wire bytes.

Each record here once stopped billy (or one partition of it) until an operator edited the
database. Now each gets a REJECTED result or a DLQ entry, and the record after it on the same
partition is answered. Shortened ids follow the published rule (schemas/limits.json): over
256 code points, the first 64 + "...sha256:" + the hex SHA-256 of the UTF-8 bytes.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from confluent_kafka import Producer

from tests.contract import wire
from tests.contract.conftest import Billy
from tests.contract.speak import fund, new_id, register, results, send_command

pytestmark = pytest.mark.integration

CHARGE = {"product_id": "vas-top", "amount_minor": 10, "currency": "RUB"}


def shortened(value: str) -> str:
    if len(value) <= 256:
        return value
    return value[:64] + "...sha256:" + hashlib.sha256(value.encode()).hexdigest()


def _security() -> dict[str, str]:
    try:  # the stack's broker may require authentication (tests/contract/conftest.py)
        from tests.contract.conftest import kafka_security  # type: ignore[attr-defined]
    except ImportError:
        return {}
    return dict(kafka_security())


def _big_producer(billy: Billy) -> Producer:
    """A producer that sends records up to the broker's own limit (librdkafka checks 1 MB
    before compressing; the broker checks the compressed batch)."""
    return Producer(
        {
            "bootstrap.servers": billy.bootstrap,
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            "acks": "all",
            "message.max.bytes": 4_000_000,
            "compression.type": "lz4",
            **_security(),
        }
    )


def _send_big(billy: Billy, topic: str, key: bytes | None, value: bytes | None) -> None:
    producer = _big_producer(billy)
    producer.produce(billy.topic(topic), key=key, value=value)
    assert producer.flush(60) == 0


def _next_is_answered(billy: Billy, client: str) -> None:
    """The record after the bad one, same client (so same partition), gets its result."""
    nxt = send_command(billy, "autoru", client, "Charge", CHARGE)
    got = results(billy, "autoru.results", {nxt: 1})[nxt]
    assert [r["code"] for r in got] == ["ok"]


def _one(billy: Billy, command_id: str, topic: str = "autoru.results") -> dict[str, Any]:
    got = results(billy, topic, {command_id: 1})[command_id]
    assert len(got) == 1, got
    return got[0]


@pytest.fixture(scope="module")
def client(billy: Billy) -> str:
    register(billy, "autoru", "bad-1")
    fund(billy, "autoru", "bad-1", 1_000_000)
    return "bad-1"


def test_a_hold_id_with_a_nul_is_rejected_and_the_partition_moves_on(
    billy: Billy, client: str
) -> None:
    body = {
        "hold_id": "h\x00old",
        "product_id": "call",
        "amount_minor": 5,
        "currency": "RUB",
        "expires_at": 1_900_000_000_000,
    }
    cid = send_command(billy, "autoru", client, "Hold", body)
    for confirm, extra in (("ConfirmHold", {"amount_minor": None}), ("ReleaseHold", {})):
        other = send_command(billy, "autoru", client, confirm, {"hold_id": "h\x00old", **extra})
        r = _one(billy, other)
        assert (r["code"], r["message"].split(":")[0]) == ("invalid", "body.hold_id")
    r = _one(billy, cid)
    assert (r["status"], r["code"]) == ("REJECTED", "invalid")
    assert r["message"].startswith("body.hold_id: must not contain control characters")
    _next_is_answered(billy, client)


def test_a_refund_of_a_charge_id_with_a_nul_is_rejected(billy: Billy, client: str) -> None:
    cid = send_command(
        billy, "autoru", client, "Refund", {"charge_command_id": "c\x00", "amount_minor": None}
    )
    r = _one(billy, cid)
    assert (r["code"], r["message"].split(":")[0]) == ("invalid", "body.charge_command_id")
    _next_is_answered(billy, client)


def test_a_4000_character_command_id_is_rejected_and_answered_under_its_short_form(
    billy: Billy, client: str
) -> None:
    long_id = "x" * 4000
    send_command(billy, "autoru", client, "Charge", CHARGE, command_id=long_id)
    r = _one(billy, shortened(long_id))
    assert r["code"] == "invalid" and r["message"].startswith("command_id:")
    assert len(r["message"]) <= 500
    _next_is_answered(billy, client)


def test_a_rejection_never_quotes_a_300000_character_field(billy: Billy, client: str) -> None:
    cid = send_command(billy, "autoru", client, "Charge", dict(CHARGE, currency="Q" * 300_000))
    r = _one(billy, cid)
    assert r["code"] == "invalid" and r["message"].startswith("body.currency:")
    assert len(r["message"]) < 200 and "Q" * 41 not in r["message"]
    name = send_command(
        billy,
        "autoru",
        "bad-name",
        "RegisterClient",
        {"name": "N" * 300_000, "email": "e@x.ru", "currency": "RUB"},
    )
    r = _one(billy, name)
    assert r["message"].startswith("body.name:") and len(r["message"]) < 200
    _next_is_answered(billy, client)


def test_every_control_character_is_rejected_in_an_id(billy: Billy, client: str) -> None:
    sent = {}
    for code in [*range(0x20), 0x7F, *range(0x80, 0xA0)]:
        hold = f"h{chr(code)}"
        sent[send_command(billy, "autoru", client, "ReleaseHold", {"hold_id": hold})] = code
    got = results(billy, "autoru.results", {cid: 1 for cid in sent})
    for cid, code in sent.items():
        assert got[cid][0]["code"] == "invalid", hex(code)
    _next_is_answered(billy, client)


def test_the_dlq_copy_of_a_1040000_byte_record_is_a_bounded_stand_in(
    billy: Billy, client: str
) -> None:
    value = b"\xc3\x01" + os.urandom(1_040_000 - 2)  # magic, then no known fingerprint
    key = client.encode()
    _send_big(billy, "autoru.commands", key, value)
    digest = hashlib.sha256(value).hexdigest().encode()

    def mine(m: Any) -> bool:
        return dict(m.headers() or []).get("billy-original-value-sha256") == digest

    copies = [m for m in billy.read("dlq", lambda rs: any(mine(m) for m in rs)) if mine(m)]
    assert len(copies) == 1
    copy = copies[0]
    headers = dict(copy.headers())
    assert copy.value() is None and copy.key() == key
    assert headers["billy-dlq-reason"].startswith(b"value:")
    assert int(headers["billy-original-bytes"]) >= 1_040_000
    assert headers["billy-source-topic"] == billy.topic("autoru.commands").encode()
    assert int(headers["billy-source-offset"]) >= 0
    _next_is_answered(billy, client)


def test_a_result_for_a_1_mb_key_is_published_with_the_key_shortened(billy: Billy) -> None:
    huge = "k" * 1_000_000
    cid = new_id()
    value = wire.encode("Command", wire.command(cid, huge, "Charge", CHARGE))
    _send_big(billy, "autoru.commands", huge.encode(), value)
    r = _one(billy, cid)
    assert r["code"] == "invalid" and r["message"].startswith("client_id:")
    assert r["client_id"] == shortened(huge)
    records = billy.read(
        "autoru.results",
        lambda rs: any(wire.decode(m.value(), "Result")["command_id"] == cid for m in rs),
    )
    (record,) = [m for m in records if wire.decode(m.value(), "Result")["command_id"] == cid]
    assert record.key() == shortened(huge).encode()
    # and billy goes on
    register(billy, "autoru", "after-huge-key")


def test_an_empty_key_stays_empty_in_the_dlq_and_in_a_result(billy: Billy) -> None:
    billy.send("autoru.commands", b"", b"garbage")
    cid = new_id()
    billy.send(
        "autoru.commands", b"", wire.encode("Command", wire.command(cid, "", "Charge", CHARGE))
    )

    def dead(m: Any) -> bool:
        return m.key() == b"" and m.value() == b"garbage"

    copies = [m for m in billy.read("dlq", lambda rs: any(dead(m) for m in rs)) if dead(m)]
    assert copies[0].key() == b""  # not None
    r = _one(billy, cid)
    assert r["code"] == "invalid" and r["message"].startswith("client_id:")
    records = billy.read(
        "autoru.results",
        lambda rs: any(wire.decode(m.value(), "Result")["command_id"] == cid for m in rs),
    )
    (record,) = [m for m in records if wire.decode(m.value(), "Result")["command_id"] == cid]
    assert record.key() == b""


def test_huge_headers_on_a_poison_record_leave_a_bounded_copy(billy: Billy, client: str) -> None:
    producer = _big_producer(billy)
    marker = new_id("hdr").encode()
    producer.produce(
        billy.topic("autoru.commands"),
        key=client.encode(),
        value=b"junk " + marker,
        headers=[("trace", marker), ("blob", os.urandom(950_000))],
    )
    assert producer.flush(60) == 0

    def mine(m: Any) -> bool:
        return m.key() == client.encode() and (
            dict(m.headers() or []).get("billy-original-value-sha256")
            == hashlib.sha256(b"junk " + marker).hexdigest().encode()
        )

    (copy,) = [m for m in billy.read("dlq", lambda rs: any(mine(m) for m in rs)) if mine(m)]
    assert copy.value() is None and dict(copy.headers())["billy-original-headers"] == b"2"
    _next_is_answered(billy, client)
