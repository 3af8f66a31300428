"""Bad input, in the pure step (TESTING.md "Bad input"; issue 10, item 1): every text field of
every command body has a length bound checked first and no control characters, every number
a range; messages quote at most a short, escaped prefix; results and DLQ copies are bounded
by construction, whatever the input's size."""

from __future__ import annotations

import dataclasses
import unicodedata
from typing import Any

import pytest

from billy_core import commands as c
from billy_core.codec import decode_result, encode_command
from billy_core.kafka.topics import TopicNames
from billy_core.limits import (
    ECHO_CHARS_MAX,
    MESSAGE_CHARS_MAX,
    OUTPUT_ID_CHARS_MAX,
    OUTPUT_RECORD_BYTES_MAX,
)
from billy_core.money import MoneyError, check_currency
from billy_core.stream import Outbox, Poison, Record, dlq
from billy_core.text import (
    SHORTENED_MARK,
    bounded,
    echo,
    has_control_chars,
    shorten_id,
    shorten_key,
)
from consumers.ledger.decode import Decoded, decode
from consumers.ledger.handler import LedgerHandler, _Batch

HUGE = 1_000_000  # code points
CONTROL_CHARS = [chr(i) for i in range(0x110000) if unicodedata.category(chr(i)) == "Cc"]
EXPIRES = 1_800_000_000_000

# Every body with a sound value, its text fields (attribute names) and, for maps, the map.
SOUND: list[tuple[c.Body, tuple[str, ...]]] = [
    (c.RegisterClient("Dealer", "d@example.ru", "RUB", "+7 900"), ("name", "email", "phone")),
    (c.UpdateClient("Dealer", "d@example.ru", "+7 900"), ("name", "email", "phone")),
    (c.UpsertPayer("p-1", "ur", {"name": "OOO Roga"}), ("payer_id",)),
    (c.UpsertContract("k-1", "p-1", "postpay", 1000, "RUB", 15), ("contract_id", "payer_id")),
    (c.RequestInvoice(100, "RUB", "p-1", "k-1"), ("payer_id", "contract_id")),
    (c.TransferCredit(100, "RUB", "k-1"), ("contract_id",)),
    (c.Charge("vas", 1, "RUB"), ("product_id",)),
    (c.Hold("h-1", "call", 1, "RUB", EXPIRES), ("hold_id", "product_id")),
    (c.ConfirmHold("h-1", 1), ("hold_id",)),
    (c.ReleaseHold("h-1"), ("hold_id",)),
    (c.Refund("cmd-1", 1), ("charge_command_id",)),
    (c.Adjust(5, "RUB", "why", "qa"), ("reason", "operator")),
    (c.ExpireHold("h-1"), ("hold_id",)),
]
# Closed-set words: any bad value is invalid, named, and quoted short.
WORDS: list[tuple[c.Body, str]] = [
    (c.RegisterClient("Dealer", "d@example.ru", "RUB"), "currency"),
    (c.UpsertPayer("p-1", "ph", {}), "type"),
    (c.UpsertContract("k-1", "p-1", "prepay", None, "RUB"), "payment_type"),
    (c.UpsertContract("k-1", "p-1", "prepay", None, "RUB"), "currency"),
    (c.RequestInvoice(100, "RUB", "p-1"), "currency"),
    (c.TransferCredit(100, "RUB"), "currency"),
    (c.Charge("vas", 1, "RUB"), "currency"),
    (c.Hold("h-1", "call", 1, "RUB", EXPIRES), "currency"),
    (c.Adjust(5, "RUB", "why", "qa"), "currency"),
]


def _command(body: c.Body, **fields: Any) -> c.Command:
    return dataclasses.replace(c.Command("cmd-1", "client-1", 1_700_000_000_000, body), **fields)


def _invalid(command: c.Command) -> str:
    admin = isinstance(command.body, c.Adjust)
    with pytest.raises(c.InvalidCommand) as caught:
        c.validate(command, admin=admin)
    message = str(caught.value)
    assert len(message) <= MESSAGE_CHARS_MAX
    return message


def _ids(body: c.Body, fields: tuple[str, ...]) -> list[str]:
    return [f"{type(body).__name__}.{f}" for f in fields]


def test_every_sound_body_is_valid() -> None:
    for body, _ in SOUND + [(b, "") for b, _ in WORDS]:
        c.validate(_command(body), admin=isinstance(body, c.Adjust))


@pytest.mark.parametrize(
    ("body", "name"), [(b, f) for b, fs in SOUND for f in fs], ids=lambda x: str(x)[:30]
)
def test_a_huge_text_field_is_invalid_named_and_never_quoted(body: c.Body, name: str) -> None:
    huge = "x" * HUGE
    message = _invalid(_command(dataclasses.replace(body, **{name: huge})))  # type: ignore[arg-type]
    assert message.startswith(f"body.{name}:"), message
    assert "x" * (ECHO_CHARS_MAX + 1) not in message


@pytest.mark.parametrize(
    ("body", "name"), [(b, f) for b, fs in SOUND for f in fs], ids=lambda x: str(x)[:30]
)
def test_every_control_character_in_every_text_field_is_invalid(body: c.Body, name: str) -> None:
    for char in CONTROL_CHARS:
        value = f"a{char}b@"  # '@' keeps an email otherwise sound
        message = _invalid(_command(dataclasses.replace(body, **{name: value})))  # type: ignore[arg-type]
        assert message.startswith(f"body.{name}:"), (repr(char), message)


@pytest.mark.parametrize("field", ["command_id", "client_id"])
def test_ids_of_the_command_are_bounded_and_clean(field: str) -> None:
    body = c.Charge("vas", 1, "RUB")
    for value in ["", "x" * 65, "x" * HUGE, *(f"a{ch}" for ch in CONTROL_CHARS)]:
        message = _invalid(_command(body, **{field: value}))
        assert message.startswith(f"{field}:"), message
    c.validate(_command(body, **{field: "x" * 64}))  # the bound itself is sound


@pytest.mark.parametrize(("body", "name"), WORDS, ids=lambda x: str(x)[:30])
def test_closed_set_words_are_named_and_quoted_short(body: c.Body, name: str) -> None:
    for value in ["", "x" * HUGE, "RUB\x00", "rub", "\u0000" * 1000, "руб"]:
        message = _invalid(_command(dataclasses.replace(body, **{name: value})))  # type: ignore[arg-type]
        assert message.startswith(f"body.{name}:"), message
        assert "x" * (ECHO_CHARS_MAX + 1) not in message


def test_payer_field_names_and_values_are_bounded() -> None:
    def payer(fields: dict[str, str]) -> c.Command:
        return _command(c.UpsertPayer(None, "ur", fields))

    huge_name = "n" * HUGE
    message = _invalid(payer({huge_name: "v"}))
    assert message.startswith("body.fields:") and "n" * (ECHO_CHARS_MAX + 1) not in message
    assert _invalid(payer({"name\x00": "v"})).startswith("body.fields:")
    assert _invalid(payer({"name": "v" * HUGE})).startswith("body.fields.name:")
    for char in CONTROL_CHARS:
        assert _invalid(payer({"inn": f"7{char}7"})).startswith("body.fields.inn:")
    c.validate(payer({"name": "v" * 256, "inn": ""}))


@pytest.mark.parametrize(
    ("body", "name", "bad"),
    [
        (c.Charge("vas", 1, "RUB"), "amount_minor", [0, -1, 10**13 + 1, 2**63 - 1, -(2**63)]),
        (c.Hold("h", "p", 1, "RUB", EXPIRES), "expires_at_ms", [-1, 2**63 - 1, -(2**63)]),
        (c.UpsertContract("k", "p", "postpay", 1, "RUB", 15), "payment_term_days", [0, 366, -1]),
        (c.UpsertContract("k", "p", "postpay", 1, "RUB"), "credit_limit_minor", [0, 10**13 + 1]),
        (c.ConfirmHold("h", 1), "amount_minor", [0, -5, 2**63 - 1]),
        (c.Refund("c", 1), "amount_minor", [0, -(2**63)]),
        (c.Adjust(1, "RUB", "r", "qa"), "amount_minor", [0, 10**13 + 1, -(10**13) - 1]),
    ],
    ids=lambda x: str(x)[:30],
)
def test_every_number_has_a_range(body: c.Body, name: str, bad: list[int]) -> None:
    for value in bad:
        message = _invalid(_command(dataclasses.replace(body, **{name: value})))  # type: ignore[arg-type]
        field = "expires_at" if name == "expires_at_ms" else name
        assert message.startswith(f"body.{field}:"), message


def test_issued_at_has_a_range() -> None:
    for value in (-1, 2**63 - 1, -(2**63)):
        assert _invalid(_command(c.ReleaseHold("h"), issued_at_ms=value)).startswith("issued_at:")


def test_money_messages_quote_a_short_escaped_prefix() -> None:
    with pytest.raises(MoneyError) as caught:
        check_currency("Q" * 300_000, "body.currency")
    assert len(str(caught.value)) < 200 and "Q" * (ECHO_CHARS_MAX + 1) not in str(caught.value)
    with pytest.raises(MoneyError) as caught:
        check_currency("\x00\x01X", "body.currency")
    assert "\\x00" in str(caught.value)  # escaped, never raw


def test_text_helpers() -> None:
    assert all(has_control_chars(f"a{ch}") for ch in CONTROL_CHARS)
    assert not has_control_chars("Иван Петров, ООО «Рога» ☎ 😀")
    assert echo("x" * 100) == repr("x" * ECHO_CHARS_MAX) + "..."
    assert echo("a\x00") == "'a\\x00'"
    assert len(bounded("m" * 10_000)) == MESSAGE_CHARS_MAX
    assert shorten_id("x" * OUTPUT_ID_CHARS_MAX) == "x" * OUTPUT_ID_CHARS_MAX
    short = shorten_id("y" * HUGE)
    assert SHORTENED_MARK in short and len(short) <= OUTPUT_ID_CHARS_MAX
    assert shorten_id("y" * HUGE) == short and shorten_id("y" * (HUGE + 1)) != short
    assert shorten_key(b"") == b"" and len(shorten_key(b"k" * HUGE)) <= OUTPUT_ID_CHARS_MAX


# --- outputs bounded by construction -------------------------------------------------------

TOPICS = TopicNames("billy")


def _record(key: bytes | None, value: bytes | None, headers: tuple = ()) -> Record:
    return Record("billy.autoru.commands", 0, 7, 1_700_000_000_000, key, value, headers)


def _results(item: Decoded) -> list[tuple[bytes | None, bytes]]:
    box = Outbox("billy", "billy.autoru.commands/0", 0)
    _Batch(TOPICS, box).command(item, {}, {})
    return [(r.key, r.value) for _, r in box.records if r.value is not None]


def test_a_result_for_a_huge_client_id_and_command_id_is_bounded() -> None:
    huge_client, huge_id = "c" * HUGE, "i" * HUGE
    command = c.Command(huge_id, huge_client, 1, c.Charge("vas", 1, "RUB"))
    item = decode(
        _record(huge_client.encode(), encode_command(command)), TOPICS, frozenset({"autoru"})
    )
    assert isinstance(item, Decoded) and item.invalid is not None
    ((key, value),) = _results(item)
    assert key is not None and len(key) + len(value) < 2_000
    result = decode_result(value)
    assert result.code.value == "invalid" and result.message.startswith("command_id:")
    assert result.client_id.encode() == key and SHORTENED_MARK in result.client_id
    assert result.command_id == shorten_id(huge_id)


def test_a_rejection_quoting_a_huge_field_is_bounded() -> None:
    command = c.Command("cmd-1", "client-1", 1, c.Charge("vas", 1, "Q" * 300_000))
    item = decode(_record(b"client-1", encode_command(command)), TOPICS, frozenset({"autoru"}))
    assert isinstance(item, Decoded)
    ((_, value),) = _results(item)
    assert len(value) < 1_000 and decode_result(value).message.startswith("body.currency:")


def test_an_admin_dead_letter_answer_for_a_huge_key_is_bounded() -> None:
    box = Outbox("billy", "billy.admin.commands/0", 0)
    record = Record("billy.admin.commands", 0, 3, 1, b"autoru/" + b"k" * HUGE, b"junk")
    LedgerHandler(TOPICS, frozenset({"autoru"}), "g").answer_poison(Poison(record, "value: x"), box)
    ((_, answer),) = box.records
    assert answer.key is not None and len(answer.key) <= OUTPUT_ID_CHARS_MAX
    assert answer.value is not None and len(answer.value) < 2_000


def test_a_dlq_copy_that_fits_is_exact_and_one_that_does_not_is_a_bounded_stand_in() -> None:
    box = Outbox("billy", "s", 0)
    small = _record(b"", None, (("trace", b"t"),))
    dlq.dead_letter(box, "billy.dlq", Poison(small, "value: empty"))
    big = _record(b"k" * 300, b"v" * 1_040_000, (("trace", b"h" * 5000),))
    dlq.dead_letter(box, "billy.dlq", Poison(big, "value: " + "r" * 10_000))
    (_, exact), (_, stand_in) = box.records
    assert (exact.key, exact.value, exact.headers[0]) == (b"", None, ("trace", b"t"))
    assert stand_in.value is None and stand_in.key is not None and len(stand_in.key) < 300
    assert dlq.record_bytes(stand_in.key, stand_in.value, stand_in.headers) < 4_000
    headers = dict(stand_in.headers)
    assert headers[dlq.ORIGINAL_BYTES] == str(300 + 1_040_000 + 5 + 5000).encode()
    assert headers[dlq.OMITTED] == b"value,headers,key"
    assert headers[dlq.SOURCE_OFFSET] == b"7" and len(headers[dlq.REASON]) <= MESSAGE_CHARS_MAX
    import hashlib

    assert (
        headers[dlq.ORIGINAL_VALUE_SHA256] == hashlib.sha256(big.value or b"").hexdigest().encode()
    )
    assert OUTPUT_RECORD_BYTES_MAX < 1_048_588


# --- what the engine may dead-letter: refusals about a record's data only -------------------


@pytest.mark.parametrize(
    ("sqlstate", "by_data"),
    [
        ("54000", True),
        ("23514", True),
        ("22021", True),
        ("22001", True),
        ("42P01", False),
        ("42501", False),
        ("XX000", False),
    ],
)
def test_a_permanent_error_says_whether_the_data_caused_it(sqlstate: str, by_data: bool) -> None:
    import psycopg

    from billy_core import db
    from billy_core.errors import PermanentDatabaseError

    refused = db.classify(psycopg.errors.lookup(sqlstate)("refused"))
    assert isinstance(refused, PermanentDatabaseError) and refused.sqlstate == sqlstate
    assert refused.caused_by_data is by_data


def test_the_driver_refusing_a_nul_is_about_the_data() -> None:
    import psycopg

    from billy_core import db
    from billy_core.errors import PermanentDatabaseError

    refused = db.classify(psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00)"))
    assert isinstance(refused, PermanentDatabaseError) and refused.caused_by_data
    assert refused.sqlstate is None  # the engine's reason then says "database: client ..."
