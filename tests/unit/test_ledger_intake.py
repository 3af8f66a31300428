"""The ledger's intake, without services: how records are classified, and the DLQ cap."""

from __future__ import annotations

import pytest

from billy_core.codec import encode_command
from billy_core.commands import Adjust, Charge, Command
from billy_core.errors import PoisonFlood
from billy_core.kafka.topics import TopicNames
from consumers.ledger.poison_guard import PoisonGuard
from consumers.ledger.records import Decoded, Poison, Record, classify

TOPICS = TopicNames("billy")
TENANTS = frozenset({"autoru", "realty"})
CHARGE = Command("id-1", "c-1", 1, Charge("p", 100, "RUB"))


def _record(value, key=b"c-1", topic="billy.autoru.commands", ts=1_000) -> Record:
    return Record(topic, 0, 7, ts, key, value)


def test_a_sound_command_is_decoded_with_its_tenant():
    item = classify(_record(encode_command(CHARGE)), TOPICS, TENANTS)
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
        (_record(encode_command(Command("bad\x00id", "c-1", 1, Charge("p", 1, "RUB")))),
         "command_id: contains control"),
        (_record(encode_command(Command("x", "c\x01", 1, Charge("p", 1, "RUB"))), key=b"c\x01"),
         "client_id: contains control"),
    ],
)
def test_poison_names_the_field_and_reason(record, reason):
    item = classify(record, TOPICS, TENANTS)
    assert isinstance(item, Poison)
    assert item.reason.startswith(reason), item.reason


def test_a_bad_value_is_a_rejection_not_poison():
    item = classify(_record(encode_command(Command("i", "c-1", 1, Charge("p", 0, "RUB")))),
                    TOPICS, TENANTS)
    assert isinstance(item, Decoded) and "amount_minor" in item.invalid


def test_admin_records_name_tenant_and_client_in_the_key():
    adjust = Command("a-1", "c-1", 1, Adjust(-500, "RUB", "correction"))
    ok = classify(_record(encode_command(adjust), key=b"realty/c-1",
                          topic="billy.admin.commands"), TOPICS, TENANTS)
    assert isinstance(ok, Decoded) and (ok.tenant, ok.admin, ok.invalid) == ("realty", True, None)
    unknown = classify(_record(encode_command(adjust), key=b"nobody/c-1",
                               topic="billy.admin.commands"), TOPICS, TENANTS)
    assert isinstance(unknown, Poison) and unknown.reason.startswith("key:")
    # Adjust outside the admin topic is refused as invalid.
    tenant_side = classify(_record(encode_command(adjust)), TOPICS, TENANTS)
    assert isinstance(tenant_side, Decoded) and "admin" in tenant_side.invalid


def test_poison_guard_lets_a_few_through_and_stops_a_flood():
    guard = PoisonGuard(ratio_max=0.5, window=10)
    guard.check([True, False, False, True, False])
    guard.check([False] * 20 + [True] * 5)  # 5 of the last 10: at the cap, not over it
    with pytest.raises(PoisonFlood, match="6 of the last 10"):
        guard.check([True])


def test_poison_guard_judges_only_a_full_window():
    guard = PoisonGuard(ratio_max=0.5, window=10)
    guard.check([True] * 9)  # a bad start, but too few records to judge
    with pytest.raises(PoisonFlood):
        guard.check([True])
