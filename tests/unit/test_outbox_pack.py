"""Packed outbox batches (billy_core.stream.outbox.pack / unpack): every record comes back
exactly, nulls and empties apart, headers in order; bytes pack did not write are refused."""

from __future__ import annotations

import pytest

from billy_core.stream.outbox import OutputRecord, pack, unpack

RECORDS = [
    OutputRecord("billy.autoru.results", b"client-1", b"\xc3\x01result", "result:t:0:1"),
    OutputRecord("billy.dlq", None, None, "dlq:t:0:2", (("trace", None), ("b", b""))),
    OutputRecord("billy.dlq", b"", b"", "dlq:t:0:3", (("x", b"\x00" * 70_000),)),
    OutputRecord("billy.wallets", "autoru/кошелёк".encode(), b"v" * 100_000, "wallet:é:1"),
]


def _fields(r: OutputRecord) -> tuple:
    return (r.topic, r.key, r.value, r.event_id, list(r.headers))


def test_records_come_back_exactly() -> None:
    assert unpack(pack(RECORDS)) == [_fields(r) for r in RECORDS]


def test_null_and_empty_stay_apart() -> None:
    ((_, key, value, _, headers), (_, key2, value2, _, _)) = unpack(pack(RECORDS[1:3]))
    assert (key, value, headers) == (None, None, [("trace", None), ("b", b"")])
    assert (key2, value2) == (b"", b"")


@pytest.mark.parametrize(
    "bad",
    [b"", b"\x02", pack(RECORDS)[:-1], pack(RECORDS)[:20], pack(RECORDS) + b"\x00"],
    ids=["empty", "unknown format", "last byte cut", "head cut", "trailing byte"],
)
def test_bytes_pack_did_not_write_are_refused(bad: bytes) -> None:
    with pytest.raises(ValueError):
        unpack(bad)
