"""The fuzz tier's records: good commands with known answers, and bad records of every kind,
each with the outcome the contract promises. Wire only (tests/contract/wire.py): no billy
import, as a JVM service would write them.

A bad record expects one of:
- "result": a result with this command_id (shortened when over 256 code points), REJECTED;
- "dlq": a DLQ entry whose billy-source-topic/-partition/-offset headers name it;
- "either": a mutation that may still decode (a bit flip): one result with its command_id
  (any status: the flip may have made a sound command) or one DLQ entry, never both.

Good commands use their own clients ("fz-good-*"), bad ones others ("fz-bad-*"), so a
mutation that happens to decode as a sound charge cannot change a good command's answer.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import fastavro

from tests.contract import wire

CONTROL_CHARS = [chr(i) for i in range(0xA0) if unicodedata.category(chr(i)) == "Cc"]
EXPIRES = 1_900_000_000_000
NOW_MS = 1_790_000_000_000


@dataclass
class Sent:
    kind: str  # what was done to it: good, random_bytes, bit_flip, truncation, ...
    topic: str  # short name: "autoru.commands", "admin.commands"
    key: bytes | None
    value: bytes | None
    expect: str  # good | result | dlq | either
    command_id: str | None = None  # as it will appear in the result (shortened if long)
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    good_answer: tuple[str, str, bool] | None = None  # (status, code, duplicate)
    partition: int = -1  # from the delivery report
    offset: int = -1

    @property
    def size(self) -> int:
        return (
            len(self.key or b"")
            + len(self.value or b"")
            + sum(len(n) + len(v) for n, v in self.headers)
        )


def shortened(value: str) -> str:
    if len(value) <= 256:
        return value
    return value[:64] + "...sha256:" + hashlib.sha256(value.encode()).hexdigest()


# --- sound bodies and their text fields --------------------------------------------------------


def bodies() -> dict[str, dict[str, Any]]:
    return {
        "RegisterClient": {"name": "Dealer", "email": "d@x.ru", "currency": "RUB", "phone": None},
        "UpdateClient": {"name": "Dealer", "email": "d@x.ru", "phone": "+7"},
        "UpsertPayer": {"payer_id": "p-1", "type": "ur", "fields": {"name": "OOO", "inn": "77"}},
        "UpsertContract": {
            "contract_id": "k-1",
            "payer_id": "p-1",
            "payment_type": "postpay",
            "credit_limit_minor": 100,
            "currency": "RUB",
            "payment_term_days": 15,
        },
        "RequestInvoice": {
            "amount_minor": 100,
            "currency": "RUB",
            "payer_id": "p-1",
            "contract_id": None,
        },
        "TransferCredit": {"amount_minor": 100, "currency": "RUB", "contract_id": "k-1"},
        "Charge": {"product_id": "vas", "amount_minor": 5, "currency": "RUB"},
        "Hold": {
            "hold_id": "h-1",
            "product_id": "call",
            "amount_minor": 5,
            "currency": "RUB",
            "expires_at": EXPIRES,
        },
        "ConfirmHold": {"hold_id": "h-1", "amount_minor": None},
        "ReleaseHold": {"hold_id": "h-1"},
        "Refund": {"charge_command_id": "c-1", "amount_minor": None},
        "Adjust": {"amount_minor": 5, "currency": "RUB", "reason": "r", "operator": "qa"},
        "ExpireHold": {"hold_id": "h-1"},
    }


# (body, field) of every text field a body has, plus the command's own ids.
TEXT_FIELDS: list[tuple[str, str]] = [
    (body, name)
    for body, values in bodies().items()
    for name, value in values.items()
    if isinstance(value, str) or (value is None and name in ("phone", "contract_id", "operator"))
] + [("UpsertPayer", "fields.key"), ("UpsertPayer", "fields.value")]
# ... and the command's own ids, for control characters (huge ones are their own case).
CC_FIELDS = [("Command", "command_id"), ("Command", "client_id"), *TEXT_FIELDS]
# Longs and where they break.
LONG_FIELDS: list[tuple[str, str, list[int]]] = [
    ("Charge", "amount_minor", [0, -1, 10**13 + 1, 2**63 - 1, -(2**63)]),
    ("Hold", "amount_minor", [0, -(2**63), 2**63 - 1]),
    ("Hold", "expires_at", [-1, -(2**63), 2**63 - 1]),
    ("ConfirmHold", "amount_minor", [0, -5, 2**63 - 1]),
    ("Refund", "amount_minor", [0, -(2**63)]),
    ("RequestInvoice", "amount_minor", [0, 2**63 - 1]),
    ("TransferCredit", "amount_minor", [-7, 10**13 + 1]),
    ("UpsertContract", "credit_limit_minor", [0, -(2**63)]),
    ("UpsertContract", "payment_term_days", [0, 366, 2**63 - 1, -(2**63)]),
    ("Adjust", "amount_minor", [0, 2**63 - 1]),  # Adjust on a tenant topic: invalid anyway
]


def _set(body: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
    body = dict(body)
    if name == "fields.key":
        body["fields"] = {value: "v"}
    elif name == "fields.value":
        body["fields"] = {"name": value}
    else:
        body[name] = value
    return body


def encode_command(
    command_id: str, client: str, body_type: str, body: dict[str, Any], issued_at: int = NOW_MS
) -> bytes:
    datum = {
        "command_id": command_id,
        "client_id": client,
        "issued_at": issued_at,
        "body": (f"billy.v1.{body_type}", body),
    }
    return wire.encode("Command", datum)


def _zigzag_len(n: int) -> int:
    z, size = (n << 1) ^ (n >> 63), 1
    while z >= 0x80:
        z >>= 7
        size += 1
    return size


def ids_end(command_id: str, client: str) -> int:
    """Where the body of a single-object Command starts, after its two ids (a flip past
    it keeps the ids, so the record can still be matched)."""
    a, b = command_id.encode(), client.encode()
    return 10 + _zigzag_len(len(a)) + len(a) + _zigzag_len(len(b)) + len(b)


# --- the generator --------------------------------------------------------------------------

KINDS = (
    "random_bytes",
    "bit_flip",
    "truncation",
    "extreme_value",
    "huge_string",
    "control_char",
    "oversized_key",
    "oversized_headers",
    "wrong_schema",
    "not_utf8_key",
    "tombstone",
    "key_mismatch",
    "admin_garbage",
    "admin_invalid",
)


class Generator:
    def __init__(self, seed: int, bad_clients: int = 30) -> None:
        self.rng = random.Random(seed)
        self.n = 0
        self.bad_clients = [f"fz-bad-{i}" for i in range(bad_clients)]
        self._cc = 0  # walks the (control char, text field) pairs in order

    def _id(self, kind: str) -> str:
        self.n += 1
        return f"fz-{kind}-{self.n}"

    def _client(self) -> str:
        return self.rng.choice(self.bad_clients)

    def _size(self, low: int, high: int) -> int:
        """Log-uniform: mostly small, now and then up to `high`."""
        return int(round(2 ** self.rng.uniform(low.bit_length(), high.bit_length() - 1)))

    def good(self, clients: int) -> list[list[Sent]]:
        """Per good client, four commands with known answers, to send in order."""
        out = []
        register = bodies()["RegisterClient"]
        for i in range(clients):
            client = f"fz-good-{i}"
            reg_id = self._id("good-register")
            reg = encode_command(reg_id, client, "RegisterClient", register)
            charge_id, release_id = self._id("good-charge"), self._id("good-release")
            out.append(
                [
                    Sent(
                        "good",
                        "autoru.commands",
                        client.encode(),
                        reg,
                        "good",
                        reg_id,
                        good_answer=("APPLIED", "ok", False),
                    ),
                    Sent(
                        "good",
                        "autoru.commands",
                        client.encode(),
                        encode_command(charge_id, client, "Charge", bodies()["Charge"]),
                        "good",
                        charge_id,
                        good_answer=("REJECTED", "insufficient_funds", False),
                    ),
                    Sent(
                        "good",
                        "autoru.commands",
                        client.encode(),
                        encode_command(release_id, client, "ReleaseHold", {"hold_id": "none"}),
                        "good",
                        release_id,
                        good_answer=("REJECTED", "hold_not_found", False),
                    ),
                    Sent(
                        "good",
                        "autoru.commands",
                        client.encode(),
                        reg,
                        "good",
                        reg_id,
                        good_answer=("APPLIED", "ok", True),
                    ),
                ]
            )
        return out

    def bad(self, kind: str) -> Sent:
        return getattr(self, f"_{kind}")()

    def every_control_char_in_every_field(self) -> list[Sent]:
        return [self._control_char(pair) for pair in range(len(CONTROL_CHARS) * len(CC_FIELDS))]

    # --- one maker per kind --------------------------------------------------------------

    def _sound(self, kind: str) -> tuple[str, str, str, bytes]:
        body_type = self.rng.choice(["Charge", "Hold", "ReleaseHold", "RegisterClient"])
        cid, client = self._id(kind), self._client()
        return cid, client, body_type, encode_command(cid, client, body_type, bodies()[body_type])

    def _random_bytes(self) -> Sent:
        value = os.urandom(self._size(1, 4096))
        if self.rng.random() < 0.3:  # looks framed, has no known fingerprint
            value = b"\xc3\x01" + value
        return Sent("random_bytes", "autoru.commands", self._client().encode(), value, "dlq")

    def _bit_flip(self) -> Sent:
        cid, client, _, value = self._sound("flip")
        start = ids_end(cid, client)
        data = bytearray(value)
        for _ in range(self.rng.randint(1, 8)):
            position = self.rng.randrange(start, len(data))
            data[position] ^= 1 << self.rng.randrange(8)
        return Sent("bit_flip", "autoru.commands", client.encode(), bytes(data), "either", cid)

    def _truncation(self) -> Sent:
        _, client, _, value = self._sound("cut")
        cut = self.rng.randrange(0, len(value))
        return Sent("truncation", "autoru.commands", client.encode(), value[:cut], "dlq")

    def _extreme_value(self) -> Sent:
        body_type, name, values = self.rng.choice(LONG_FIELDS)
        cid, client = self._id("extreme"), self._client()
        if self.rng.random() < 0.15:  # the command's own timestamp
            value = encode_command(
                cid,
                client,
                "ReleaseHold",
                {"hold_id": "h"},
                issued_at=self.rng.choice([-1, -(2**63), 2**63 - 1]),
            )
        else:
            body = _set(bodies()[body_type], name, self.rng.choice(values))
            value = encode_command(cid, client, body_type, body)
        return Sent(
            "extreme_value", "autoru.commands", client.encode(), value, "result", shortened(cid)
        )

    def _huge_string(self) -> Sent:
        size = min(self._size(65, 2**21), 1_000_000)  # bytes, up to ~1 MB
        char = self.rng.choice("xЖ😀")
        # Past every text limit (500), and unique: two huge ids are never the same id.
        huge = f"{self._id('h')}-" + char * max(501, size // len(char.encode()))
        target = self.rng.choice(["command_id", "client_id", *[f"{b}.{f}" for b, f in TEXT_FIELDS]])
        cid, client = self._id("huge"), self._client()
        if target == "command_id":
            cid = huge
            value = encode_command(cid, client, "Charge", bodies()["Charge"])
        elif target == "client_id":
            client = huge
            value = encode_command(cid, client, "Charge", bodies()["Charge"])
        else:
            body_type, name = target.split(".", 1)
            value = encode_command(cid, client, body_type, _set(bodies()[body_type], name, huge))
        return Sent(
            "huge_string", "autoru.commands", client.encode(), value, "result", shortened(cid)
        )

    def _control_char(self, pair: int | None = None) -> Sent:
        if pair is None:
            pair, self._cc = self._cc, self._cc + 1
        char = CONTROL_CHARS[pair % len(CONTROL_CHARS)]
        body_type, name = CC_FIELDS[(pair // len(CONTROL_CHARS)) % len(CC_FIELDS)]
        cid, client = self._id("cc"), self._client()
        text = f"a{char}b@"
        if name == "command_id":
            cid = cid + text
        elif name == "client_id":
            client = client + text
        if body_type == "Command":
            value = encode_command(cid, client, "Charge", bodies()["Charge"])
        else:
            value = encode_command(cid, client, body_type, _set(bodies()[body_type], name, text))
        return Sent("control_char", "autoru.commands", client.encode(), value, "result", cid)

    def _oversized_key(self) -> Sent:
        key = self.rng.choice("kЖ").encode() * self._size(300, 900_000)
        _, _, _, value = self._sound("bigkey")  # its client_id is not this key
        return Sent("oversized_key", "autoru.commands", key[:900_000], value, "dlq")

    def _oversized_headers(self) -> Sent:
        size = min(self._size(1024, 2**21), 1_000_000)  # some past the DLQ's 921,600 bytes
        headers = [("trace", b"t"), ("blob", os.urandom(size))]
        if self.rng.random() < 0.5:  # garbage with big headers: dead-lettered
            return Sent(
                "oversized_headers",
                "autoru.commands",
                self._client().encode(),
                b"junk",
                "dlq",
                headers=headers,
            )
        cid, client = self._id("hdr"), self._client()
        value = encode_command(cid, client, "Charge", dict(bodies()["Charge"], amount_minor=0))
        return Sent(
            "oversized_headers",
            "autoru.commands",
            client.encode(),
            value,
            "result",
            cid,
            headers=headers,
        )

    def _wrong_schema(self) -> Sent:
        """A well-formed Result (the published example) on a commands topic."""
        example = wire.SCHEMAS / "examples" / "Result" / "applied-charge.json"
        schema, _ = wire.writer_schema("Result")
        one_line = json.dumps(json.loads(example.read_text()))  # json_reader: one per line
        datum = next(fastavro.json_reader(io.StringIO(one_line), schema))
        return Sent(
            "wrong_schema",
            "autoru.commands",
            self._client().encode(),
            wire.encode("Result", datum),
            "dlq",
        )

    def _not_utf8_key(self) -> Sent:
        _, _, _, value = self._sound("utf8")
        return Sent("not_utf8_key", "autoru.commands", b"\xff\xfe" + os.urandom(4), value, "dlq")

    def _tombstone(self) -> Sent:
        key = self.rng.choice([b"", None, self._client().encode()])
        return Sent("tombstone", "autoru.commands", key, None, "dlq")

    def _key_mismatch(self) -> Sent:
        _, client, _, value = self._sound("mismatch")
        return Sent("key_mismatch", "autoru.commands", (client + "-other").encode(), value, "dlq")

    def _admin_garbage(self) -> Sent:
        return Sent(
            "admin_garbage",
            "admin.commands",
            b"autoru/" + self._client().encode(),
            os.urandom(self._size(1, 512)),
            "dlq",
        )

    def _admin_invalid(self) -> Sent:
        cid, client = self._id("admin"), self._client()
        body = _set(bodies()["Adjust"], "reason", "r" * self._size(501, 300_000))
        return Sent(
            "admin_invalid",
            "admin.commands",
            f"autoru/{client}".encode(),
            encode_command(cid, client, "Adjust", body),
            "result",
            cid,
        )
