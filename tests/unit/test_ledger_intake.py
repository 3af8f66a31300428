"""The ledger's intake, without services: how records are classified, and the DLQ cap."""

from __future__ import annotations

import pytest

from billy_core.codec import encode_command
from billy_core.commands import Adjust, Charge, Command
from billy_core.kafka.topics import TopicNames
from billy_core.stream import Poison, Record
from billy_core.stream.poison_cap import PoisonCap
from consumers.ledger.decode import Decoded, decode

TOPICS = TopicNames("billy")
TENANTS = frozenset({"autoru", "realty"})
CHARGE = Command("id-1", "c-1", 1, Charge("p", 100, "RUB"))


def _record(value, key=b"c-1", topic="billy.autoru.commands", ts=1_000) -> Record:
    return Record(topic, 0, 7, ts, key, value)


def test_a_sound_command_is_decoded_with_its_tenant():
    item = decode(_record(encode_command(CHARGE)), TOPICS, TENANTS)
    assert isinstance(item, Decoded)
    assert (item.tenant, item.admin, item.command, item.invalid) == ("autoru", False, CHARGE, None)


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (_record(b"\x00junk"), "value:"),
        (_record(None), "value: empty"),
        (_record(encode_command(CHARGE), key=b"c-2"), "key: does not match"),
        (_record(encode_command(CHARGE), key=b"\xff\xfe"), "key: not UTF-8"),
        (_record(encode_command(CHARGE), ts=-1), "timestamp:"),
        (_record(encode_command(CHARGE), topic="billy.autoru.results"), "topic:"),
    ],
)
def test_poison_names_the_field_and_reason(record, reason):
    item = decode(record, TOPICS, TENANTS)
    assert isinstance(item, Poison)
    assert item.reason.startswith(reason), item.reason


@pytest.mark.parametrize(
    ("record", "field"),
    [
        (
            _record(encode_command(Command("bad\x00id", "c-1", 1, Charge("p", 1, "RUB")))),
            "command_id",
        ),
        (
            _record(encode_command(Command("x", "c\x01", 1, Charge("p", 1, "RUB"))), key=b"c\x01"),
            "client_id",
        ),
        (
            _record(encode_command(Command("x" * 4000, "c-1", 1, Charge("p", 1, "RUB")))),
            "command_id",
        ),
    ],
)
def test_bad_ids_are_invalid_commands_answered_not_poison(record, field):
    item = decode(record, TOPICS, TENANTS)
    assert isinstance(item, Decoded) and item.invalid is not None
    assert item.invalid.startswith(f"{field}:"), item.invalid


def test_a_bad_value_is_a_rejection_not_poison():
    item = decode(
        _record(encode_command(Command("i", "c-1", 1, Charge("p", 0, "RUB")))), TOPICS, TENANTS
    )
    assert isinstance(item, Decoded) and "amount_minor" in item.invalid


def test_admin_records_name_tenant_and_client_in_the_key():
    adjust = Command("a-1", "c-1", 1, Adjust(-500, "RUB", "correction", "ops"))
    ok = decode(
        _record(encode_command(adjust), key=b"realty/c-1", topic="billy.admin.commands"),
        TOPICS,
        TENANTS,
    )
    assert isinstance(ok, Decoded) and (ok.tenant, ok.admin, ok.invalid) == ("realty", True, None)
    unknown = decode(
        _record(encode_command(adjust), key=b"nobody/c-1", topic="billy.admin.commands"),
        TOPICS,
        TENANTS,
    )
    # An Adjust for an unknown tenant is answered (invalid), not only dead-lettered.
    assert isinstance(unknown, Decoded) and unknown.invalid.startswith("key:")
    # The admin topic takes Adjust only.
    charge = Command("a-2", "c-1", 1, Charge("p", 1, "RUB"))
    other = decode(
        _record(encode_command(charge), key=b"realty/c-1", topic="billy.admin.commands"),
        TOPICS,
        TENANTS,
    )
    assert isinstance(other, Decoded) and "Adjust only" in other.invalid
    # An Adjust without its operator is invalid: the audit trail needs one.
    anonymous = Command("a-3", "c-1", 1, Adjust(-500, "RUB", "correction"))
    unsigned = decode(
        _record(encode_command(anonymous), key=b"realty/c-1", topic="billy.admin.commands"),
        TOPICS,
        TENANTS,
    )
    assert isinstance(unsigned, Decoded) and unsigned.invalid.startswith("body.operator:")
    # Adjust outside the admin topic is refused as invalid.
    tenant_side = decode(_record(encode_command(adjust)), TOPICS, TENANTS)
    assert isinstance(tenant_side, Decoded) and "admin" in tenant_side.invalid


def test_poison_cap_lets_a_few_through_and_pauses_on_a_flood():
    cap = PoisonCap(ratio_max=0.5, window=10)
    assert cap.flooded([True, False, False, True, False]) is None
    assert cap.flooded([False] * 20 + [True] * 5) is None  # 5 of the last 10: at the cap
    reason = cap.flooded([True])
    assert reason is not None and "6 of the last 10" in reason


def test_poison_cap_judges_only_a_full_window():
    cap = PoisonCap(ratio_max=0.5, window=10)
    assert cap.flooded([True] * 9) is None  # a bad start, but too few records to judge
    assert cap.flooded([True]) is not None


def test_a_flooding_batch_is_not_counted_so_it_is_judged_the_same_again():
    cap = PoisonCap(ratio_max=0.5, window=10)
    assert cap.flooded([False] * 10) is None
    flood = [True] * 8
    assert cap.flooded(flood) is not None
    assert cap.flooded(flood) is not None  # the same batch again: the same verdict
    assert cap.flooded([False] * 3) is None  # the window still holds only the good records
