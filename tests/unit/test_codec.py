"""The codec: single-object framing, domain mapping, errors, and the registry framing."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from io import BytesIO

import pytest
from fastavro import schemaless_reader, schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import billy_core.codec as codec
from billy_core import commands as c
from billy_core.acts import wire as act_wire
from billy_core.codec import mapping, single_object
from billy_core.codec.errors import (
    CorruptBody,
    DecodeError,
    EncodeError,
    NotConfluentFramed,
    NotSingleObject,
    RegistryUnavailable,
    UnknownFingerprint,
    UnknownSchemaId,
    WrongSchema,
)
from billy_core.codec.examples import example_paths, load_example
from billy_core.codec.mapping import AppliedService, ServiceKind, WalletSnapshot
from billy_core.codec.schemas import schema_set
from billy_core.money import AMOUNT_MINOR_MAX
from billy_core.results import Code, Result, Status
from tests.unit.examples import scaled

SCHEMAS = schema_set()
SO = single_object.default_codec()
EXAMPLES = example_paths(SCHEMAS)

CHARGE = c.Command(
    command_id="chg-000123",
    client_id="dealer-1042",
    issued_at_ms=1_764_151_200_123,
    body=c.Charge(product_id="placement-premium", amount_minor=149_900, currency="RUB"),
)
RESULT = Result(
    command_id="chg-000123",
    client_id="dealer-1042",
    status=Status.APPLIED,
    code=Code.OK,
    message="",
    currency="RUB",
    available_minor=850_100,
    held_minor=30_000,
    wallet_version=17,
    duplicate=False,
    processed_at_ms=1_764_151_200_165,
)

_FROM_AVRO = {
    "Command": mapping.command_from_avro,
    "Result": mapping.result_from_avro,
    "AppliedService": mapping.applied_service_from_avro,
    "WalletSnapshot": mapping.wallet_snapshot_from_avro,
    "BalanceAct": act_wire.act_from_avro,
    "Reconciliation": act_wire.reconciliation_from_avro,
}
_TO_AVRO = {
    "Command": mapping.command_to_avro,
    "Result": mapping.result_to_avro,
    "AppliedService": mapping.applied_service_to_avro,
    "WalletSnapshot": mapping.wallet_snapshot_to_avro,
    "BalanceAct": act_wire.act_to_avro,
    "Reconciliation": act_wire.reconciliation_to_avro,
}
_ENCODE = {
    "Command": codec.encode_command,
    "Result": codec.encode_result,
    "AppliedService": codec.encode_applied_service,
    "WalletSnapshot": codec.encode_wallet_snapshot,
    "BalanceAct": act_wire.encode_act,
    "Reconciliation": act_wire.encode_reconciliation,
}
_DECODE = {
    "Command": codec.decode_command,
    "Result": codec.decode_result,
    "AppliedService": codec.decode_applied_service,
    "WalletSnapshot": codec.decode_wallet_snapshot,
    "BalanceAct": act_wire.decode_act,
    "Reconciliation": act_wire.decode_reconciliation,
}


# ---- examples ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_example_round_trips_through_bytes_and_the_domain(path):
    name, datum = load_example(path, SCHEMAS)
    data = SO.encode(name, datum)
    assert SO.decode(data) == (name, datum)
    assert SO.encode(name, SO.decode(data)[1]) == data

    value = _FROM_AVRO[name](datum)
    assert _TO_AVRO[name](value) == datum  # the mapping loses nothing
    assert _ENCODE[name](value) == data  # high level == low level, byte for byte
    assert _DECODE[name](data) == value


# ---- single-object framing -----------------------------------------------------------------


def test_header_is_c3_01_then_the_little_endian_fingerprint():
    data = codec.encode_command(CHARGE)
    fp = SCHEMAS.current["Command"].fingerprint
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == fp == SCHEMAS.current["Command"].fingerprint_int.to_bytes(8, "little")
    # The body is plain Avro binary of the current schema.
    body = BytesIO(data[10:])
    datum = schemaless_reader(
        body, SCHEMAS.current["Command"].parsed_plain, None, return_record_name=True
    )
    assert datum["body"] == (
        "billy.v1.Charge",
        {"product_id": "placement-premium", "amount_minor": 149_900, "currency": "RUB"},
    )


def _zigzag_long(n: int) -> bytes:
    """Avro's long encoding, written out from the spec (independent of fastavro)."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _avro_string(s: str) -> bytes:
    raw = s.encode("utf-8")
    return _zigzag_long(len(raw)) + raw


def test_zigzag_helper_matches_the_spec_table():
    assert [_zigzag_long(n) for n in (0, -1, 1, -2, 2, -64, 64)] == [
        b"\x00",
        b"\x01",
        b"\x02",
        b"\x03",
        b"\x04",
        b"\x7f",
        b"\x80\x01",
    ]


def test_charge_bytes_follow_the_avro_spec():
    # A change here is a wire-format change for every JVM and Python peer.
    body = (
        _avro_string("chg-000123")
        + _avro_string("dealer-1042")
        + _zigzag_long(1_764_151_200_123)  # issued_at
        + _zigzag_long(5)  # union branch 5: Charge
        + _avro_string("placement-premium")
        + _zigzag_long(149_900)
        + _avro_string("RUB")
    )
    assert (
        codec.encode_command(CHARGE) == b"\xc3\x01" + SCHEMAS.current["Command"].fingerprint + body
    )


def test_unknown_fingerprint():
    data = bytearray(codec.encode_command(CHARGE))
    data[2:10] = bytes.fromhex("0123456789abcdef")
    with pytest.raises(UnknownFingerprint) as err:
        codec.decode_command(bytes(data))
    assert err.value.fingerprint_hex == "0123456789abcdef"
    assert "0123456789abcdef" in str(err.value)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc3",
        b"\xc3\x01",
        b"\xc3\x01" + b"\x00" * 7,
        b"\x00" * 20,
        b"\xc3\x02" + b"\x00" * 20,
        b'{"json": 1}',
    ],
)
def test_not_single_object(data):
    with pytest.raises(NotSingleObject):
        codec.decode_command(data)


def test_every_truncation_is_a_named_decode_error():
    data = codec.encode_command(CHARGE)
    for n in range(len(data)):
        expected = NotSingleObject if n < 10 else CorruptBody
        with pytest.raises(expected):
            codec.decode_command(data[:n])


def test_trailing_bytes_are_corrupt():
    with pytest.raises(CorruptBody, match="1 bytes after the record"):
        codec.decode_command(codec.encode_command(CHARGE) + b"\x00")


def test_bad_union_index_and_bad_utf8_are_corrupt():
    header = b"\xc3\x01" + SCHEMAS.current["Command"].fingerprint
    with pytest.raises(CorruptBody):  # union branch 40
        codec.decode_command(header + b"\x02a\x02b\x02\x50\x02h")
    with pytest.raises(CorruptBody):  # command_id is not UTF-8
        codec.decode_command(header + b"\x04\xff\xfe\x02b\x02\x10\x02h")


def test_other_record_is_wrong_schema():
    with pytest.raises(WrongSchema, match="expected a Command record, got Result"):
        codec.decode_command(codec.encode_result(RESULT))
    with pytest.raises(WrongSchema):
        codec.decode_result(codec.encode_command(CHARGE))


def test_decode_error_tree():
    for exc in (
        NotSingleObject,
        UnknownFingerprint,
        CorruptBody,
        WrongSchema,
        NotConfluentFramed,
        UnknownSchemaId,
    ):
        assert issubclass(exc, DecodeError)
    assert not issubclass(RegistryUnavailable, DecodeError)
    assert not issubclass(EncodeError, DecodeError)


@settings(max_examples=scaled(400), suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_garbage_after_a_valid_header_raises_only_decode_errors(tail):
    header = b"\xc3\x01" + SCHEMAS.current["Command"].fingerprint
    try:
        command = codec.decode_command(header + tail)
    except DecodeError:
        return
    assert isinstance(command, c.Command)


@given(st.binary(max_size=64))
def test_any_bytes_raise_only_decode_errors(data):
    try:
        codec.decode_command(data)
    except DecodeError:
        pass


# ---- encoding refuses what Avro would mangle ---------------------------------------------------


@pytest.mark.parametrize("amount", [1.5, 150.0, True, "100", 2**63])
def test_money_must_be_an_int_in_range(amount):
    command = dataclasses.replace(CHARGE, body=c.Charge("p", amount, "RUB"))
    with pytest.raises(EncodeError):
        codec.encode_command(command)


def test_fastavro_alone_would_truncate_a_float():
    # Why mapping checks types itself: fastavro writes 1.5 as the long 1.
    out = BytesIO()
    schemaless_writer(
        out,
        SCHEMAS.current["Charge"].parsed,
        {"product_id": "p", "amount_minor": 1.5, "currency": "RUB"},
    )
    read = schemaless_reader(BytesIO(out.getvalue()), SCHEMAS.current["Charge"].parsed)
    assert read["amount_minor"] == 1


def test_encode_errors():
    with pytest.raises(EncodeError, match="no schema for"):
        codec.encode_command(dataclasses.replace(CHARGE, body=object()))
    with pytest.raises(EncodeError, match="issued_at_ms"):
        codec.encode_command(dataclasses.replace(CHARGE, issued_at_ms=1.0))
    with pytest.raises(EncodeError):  # a str field that is None
        codec.encode_command(dataclasses.replace(CHARGE, command_id=None))
    with pytest.raises(EncodeError, match="more fields"):
        SO.encode("Charge", {"product_id": "p", "amount_minor": 1, "currency": "RUB", "x": 1})
    with pytest.raises(KeyError):
        SO.encode("Nope", {})


# ---- timestamps ----------------------------------------------------------------------------

_LONG = st.integers(min_value=-(2**63), max_value=2**63 - 1)
# The range fastavro can turn into a datetime (years 1..9999).
_DATETIME_MS = st.integers(min_value=-62_135_596_800_000, max_value=253_402_300_799_999)


@given(_DATETIME_MS)
def test_datetimes_from_fastavro_convert_to_exact_milliseconds(ms):
    # The registry path reads timestamp-millis as datetimes; the mapping must not round.
    rec = SCHEMAS.current["Command"]
    command = dataclasses.replace(CHARGE, issued_at_ms=ms)
    body = BytesIO(codec.encode_command(command)[10:])
    datum = schemaless_reader(body, rec.parsed, None, return_record_name=True)
    assert isinstance(datum["issued_at"], datetime)
    assert mapping.command_from_avro(datum).issued_at_ms == ms


def test_naive_datetimes_are_refused():
    datum = mapping.command_to_avro(CHARGE)
    datum["issued_at"] = datetime(2025, 1, 1)
    with pytest.raises(CorruptBody):
        mapping.command_from_avro(datum)
    datum["issued_at"] = datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=3)))
    assert mapping.command_from_avro(datum).issued_at_ms == 1_735_678_800_000


# ---- property tests: random values round-trip --------------------------------------------------

_TEXT = st.text(max_size=80)  # any code point but surrogates, by default
_ID = st.text(min_size=1, max_size=64)
_CUR = st.sampled_from(["RUB", "USD", "EUR", "KZT"]) | st.text(max_size=5)
_AMOUNT = st.integers(min_value=1, max_value=AMOUNT_MINOR_MAX) | _LONG
_MAYBE_AMOUNT = st.none() | _AMOUNT

_BODIES = st.one_of(
    st.builds(c.RegisterClient, name=_TEXT, email=_TEXT, currency=_CUR),
    st.builds(
        c.UpsertPayer,
        payer_id=st.none() | _ID,
        type=st.sampled_from(["ph", "ur"]) | _TEXT,
        fields=st.dictionaries(_TEXT, _TEXT, max_size=5),
    ),
    st.builds(
        c.UpsertContract,
        contract_id=st.none() | _ID,
        payer_id=_ID,
        payment_type=st.sampled_from(["prepay", "postpay"]),
        credit_limit_minor=_MAYBE_AMOUNT,
        currency=_CUR,
    ),
    st.builds(c.RequestInvoice, amount_minor=_AMOUNT, currency=_CUR, payer_id=_ID),
    st.builds(c.TransferCredit, amount_minor=_AMOUNT, currency=_CUR),
    st.builds(c.UpdateClient, name=_TEXT, email=_TEXT, phone=st.none() | _TEXT),
    st.builds(c.Charge, product_id=_ID, amount_minor=_AMOUNT, currency=_CUR),
    st.builds(
        c.Hold,
        hold_id=_ID,
        product_id=_ID,
        amount_minor=_AMOUNT,
        currency=_CUR,
        expires_at_ms=_LONG,
    ),
    st.builds(c.ConfirmHold, hold_id=_ID, amount_minor=_MAYBE_AMOUNT),
    st.builds(c.ReleaseHold, hold_id=_ID),
    st.builds(c.Refund, charge_command_id=_ID, amount_minor=_MAYBE_AMOUNT),
    st.builds(
        c.Adjust,
        amount_minor=st.integers(min_value=-AMOUNT_MINOR_MAX, max_value=AMOUNT_MINOR_MAX),
        currency=_CUR,
        reason=_TEXT,
    ),
    st.builds(c.ExpireHold, hold_id=_ID),
)
_COMMANDS = st.builds(c.Command, command_id=_ID, client_id=_ID, issued_at_ms=_LONG, body=_BODIES)


@settings(max_examples=scaled(500))
@given(_COMMANDS)
def test_random_commands_round_trip(command):
    data = codec.encode_command(command)
    decoded = codec.decode_command(data)
    assert decoded == command
    assert type(decoded.body) is type(command.body)
    assert codec.encode_command(decoded) == data


def test_every_body_type_is_generated():
    seen = set()

    # 14 body types: enough draws that each is reached (a miss is ~1e-5 at 200).
    @settings(max_examples=scaled(1000), database=None)
    @given(_BODIES)
    def collect(body):
        seen.add(type(body))

    collect()
    assert seen == set(mapping._BODY_FIELDS)


_RESULTS = st.builds(
    Result,
    command_id=_ID,
    client_id=_ID,
    status=st.sampled_from(Status),
    code=st.sampled_from(Code),
    message=_TEXT,
    currency=st.none() | _CUR,
    available_minor=_LONG,
    held_minor=_LONG,
    wallet_version=_LONG,
    duplicate=st.booleans(),
    processed_at_ms=_LONG,
    details=st.dictionaries(_TEXT, _TEXT, max_size=4),
)


@settings(max_examples=scaled(300))
@given(_RESULTS)
def test_random_results_round_trip(result):
    assert codec.decode_result(codec.encode_result(result)) == result


def test_a_result_code_from_a_newer_billy_is_kept_as_a_string():
    datum = {**mapping.result_to_avro(RESULT), "code": "overdraft_exceeded"}
    result = codec.decode_result(SO.encode("Result", datum))
    assert result.code == "overdraft_exceeded" and not isinstance(result.code, Code)
    assert isinstance(codec.decode_result(codec.encode_result(RESULT)).code, Code)


@given(
    st.builds(
        AppliedService,
        tenant=_ID,
        client_id=_ID,
        command_id=_ID,
        kind=st.sampled_from(ServiceKind),
        product_id=_ID,
        amount_minor=_AMOUNT,
        currency=_CUR,
        applied_at_ms=_LONG,
        refund_of=st.none() | _ID,
    ),
    st.builds(
        WalletSnapshot,
        tenant=_ID,
        client_id=_ID,
        currency=_CUR,
        available_minor=_LONG,
        held_minor=_LONG,
        wallet_version=_LONG,
        updated_at_ms=_LONG,
    ),
)
def test_random_log_lines_and_snapshots_round_trip(line, snapshot):
    assert codec.decode_applied_service(codec.encode_applied_service(line)) == line
    assert codec.decode_wallet_snapshot(codec.encode_wallet_snapshot(snapshot)) == snapshot


# ---- Confluent Schema Registry framing (confluent-kafka's mock registry) -----------------------


@pytest.fixture
def registry():
    pytest.importorskip(
        "confluent_kafka.schema_registry.avro",
        reason="needs confluent-kafka[schemaregistry] (attrs, cachetools, authlib, httpx2)",
        exc_type=ImportError,
    )
    from billy_core.codec.registry import RegistryCodec

    return RegistryCodec("mock://billy-unit")


def test_registry_framing_round_trip(registry):
    data = registry.encode("Command", mapping.command_to_avro(CHARGE))
    registered = registry.client.get_latest_version("billy.v1.Command")  # record-name subject
    assert data[0] == 0
    assert int.from_bytes(data[1:5], "big") == registered.schema_id
    # The body after the 5-byte header is the same Avro binary as after the 10-byte one.
    assert data[5:] == codec.encode_command(CHARGE)[10:]
    name, datum = registry.decode(data)
    assert name == "Command" and isinstance(datum["issued_at"], datetime)
    assert mapping.command_from_avro(datum) == CHARGE


def test_registry_codec_high_level(registry):
    high = codec.Codec(registry)
    for command in (
        CHARGE,
        dataclasses.replace(CHARGE, body=c.Hold("h", "p", 5, "RUB", 1_764_151_200_999)),
    ):
        assert high.decode_command(high.encode_command(command)) == command
    assert high.decode_result(high.encode_result(RESULT)) == RESULT
    with pytest.raises(WrongSchema):
        high.decode_command(high.encode_result(RESULT))


def test_registry_decode_errors(registry):
    with pytest.raises(NotConfluentFramed):
        registry.decode(b"\x00\x00\x00")
    with pytest.raises(NotConfluentFramed):
        registry.decode(codec.encode_command(CHARGE))  # single-object bytes
    with pytest.raises(UnknownSchemaId) as err:
        registry.decode(b"\x00\x00\x00\x03\xe7" + b"\x02a")
    assert err.value.schema_id == 999
    good = registry.encode("Command", mapping.command_to_avro(CHARGE))
    with pytest.raises(CorruptBody):
        registry.decode(good[:-2])


def test_registry_reads_an_older_writer_schema(registry):
    from confluent_kafka.schema_registry import Schema

    old_json = {
        "type": "record",
        "name": "billy.v1.WalletSnapshot",
        "fields": [
            {"name": f, "type": t}
            for f, t in [
                ("tenant", "string"), ("client_id", "string"), ("currency", "string"),
                ("available_minor", "long"), ("held_minor", "long"), ("wallet_version", "long"),
                ("updated_at", {"type": "long", "logicalType": "timestamp-millis"}),
                ("legacy_note", "string"),  # a field the current schema has dropped
            ]
        ],
    }  # fmt: skip
    import json

    schema_id = registry.client.register_schema(
        "billy.v1.WalletSnapshot", Schema(json.dumps(old_json), "AVRO")
    )
    out = BytesIO()
    snapshot = WalletSnapshot("autoru", "dealer-1", "RUB", 5, 0, 3, 1_764_151_200_123)
    schemaless_writer(
        out, old_json, {**mapping.wallet_snapshot_to_avro(snapshot), "legacy_note": "x"}
    )
    data = b"\x00" + schema_id.to_bytes(4, "big") + out.getvalue()
    assert codec.Codec(registry).decode_wallet_snapshot(data) == snapshot


def test_registry_outage_is_not_a_decode_error(registry):
    class Down:
        def get_schema(self, schema_id):
            raise ConnectionError("registry down")

    registry.client = Down()
    with pytest.raises(RegistryUnavailable):
        registry.decode(b"\x00\x00\x00\x00\x01\x02a")
