"""Persons (payers): CreatePerson, GetClientPersons. Input keys are lower_case.

Types: `ph` (an individual) and `ur` (a legal entity), each with mandatory fields. An INN
is checked like Russia's tax service does: 10 digits (legal entity) or 12 (individual or
sole trader), with their check digits.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping

from balance_emulator import values
from balance_emulator.errors import BalanceError, invalid_param
from balance_emulator.methods import Call, balance_method
from balance_emulator.methods.common import check_owner, client_row, inserted_id, person_row

MANDATORY: dict[str, tuple[str, ...]] = {
    "ph": ("lname", "fname", "mname", "phone", "email"),
    "ur": (
        "name",
        "longname",
        "phone",
        "email",
        "legaladdress",
        "postaddress",
        "postcode",
        "inn",
        "kpp",
        "bik",
        "account",
    ),
}
OPTIONAL: dict[str, tuple[str, ...]] = {
    "ph": ("inn", "fax", "postcode", "postaddress", "birthday", "city"),
    "ur": ("fax", "representative", "signer_person_name", "ogrn", "city", "address"),
}
_CONTROL_FIELDS = frozenset({"client_id", "type", "person_id"})


@balance_method("CreatePerson", writes=True)
def create_person(call: Call, uid: object, params: object) -> int:
    """Without person_id: a new person on EVERY call. With person_id: update that one."""
    values.parse_uid(uid)
    struct = values.require_struct(params, "person")
    person_type = struct.get("type")
    if person_type not in MANDATORY:
        raise invalid_param(f"type must be 'ph' or 'ur', got {person_type!r}")
    allowed = _CONTROL_FIELDS | set(MANDATORY[person_type]) | set(OPTIONAL[person_type])
    values.refuse_unknown_keys(struct, frozenset(allowed), "person")
    if "client_id" not in struct:
        raise invalid_param("client_id is required")
    client_id = values.parse_id(struct["client_id"], "client_id")
    client_row(call.conn, client_id)
    given = _read_fields(struct, person_type)
    now = call.now.isoformat(sep=" ")
    if struct.get("person_id") not in (None, "", 0, "0"):
        person_id = values.parse_id(struct["person_id"], "person_id")
        current = person_row(call.conn, person_id)
        check_owner(current["client_id"], client_id, f"Person {person_id}")
        if current["type"] != person_type:
            raise BalanceError(
                "PERSON_TYPE_MISMATCH",
                f"Person {person_id} has type {current['type']}, cannot change it to {person_type}",
                person_id=person_id,
            )
        merged = {**json.loads(current["fields"]), **given}
        _check_complete(merged, person_type)
        call.conn.execute(
            "UPDATE persons SET fields = ?, updated_at = ? WHERE id = ?",
            (json.dumps(merged), now, person_id),
        )
        return person_id
    _check_complete(given, person_type)
    cursor = call.conn.execute(
        "INSERT INTO persons (client_id, type, fields, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (client_id, person_type, json.dumps(given), now, now),
    )
    return inserted_id(cursor)


def _read_fields(struct: Mapping[str, object], person_type: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for key, raw in struct.items():
        if key in _CONTROL_FIELDS:
            continue
        if isinstance(raw, int) and not isinstance(raw, bool):
            raw = str(raw)  # postcode, inn, kpp... are digits; ints are fine
        text = values.parse_text(raw, key).strip()
        if key == "email" and text:
            text = values.parse_email(text, "email")
        if key == "inn" and text:
            check_inn(text, person_type)
        if key in ("kpp", "bik") and text and not (text.isdigit() and len(text) == 9):
            raise invalid_param(f"{key} must be 9 digits, got {text!r}")
        if key == "account" and text and not (text.isdigit() and len(text) == 20):
            raise invalid_param(f"account must be 20 digits, got {text!r}")
        fields[key] = text
    return fields


def _check_complete(fields: Mapping[str, str], person_type: str) -> None:
    for name in MANDATORY[person_type]:
        if not fields.get(name):
            raise BalanceError(
                "MISSING_MANDATORY_PERSON_FIELD",
                f"Missing mandatory person field '{name}' for person type {person_type}",
                field_name=name,
                person_type=person_type,
            )


_INN10_WEIGHTS = (2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN12_WEIGHTS_11 = (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN12_WEIGHTS_12 = (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)


def _check_digit(digits: str, weights: tuple[int, ...]) -> int:
    return sum(int(d) * w for d, w in zip(digits, weights, strict=False)) % 11 % 10


def inn_is_valid(inn: str) -> bool:
    if not inn.isdigit():
        return False
    if len(inn) == 10:
        return _check_digit(inn, _INN10_WEIGHTS) == int(inn[9])
    if len(inn) == 12:
        return _check_digit(inn, _INN12_WEIGHTS_11) == int(inn[10]) and _check_digit(
            inn, _INN12_WEIGHTS_12
        ) == int(inn[11])
    return False


def check_inn(inn: str, person_type: str) -> None:
    lengths = (10, 12) if person_type == "ur" else (12,)
    if len(inn) not in lengths or not inn_is_valid(inn):
        raise BalanceError(
            "INVALID_INN",
            f"Invalid INN {inn!r} for person type {person_type}: "
            f"{' or '.join(map(str, lengths))} digits with valid check digits expected",
            inn=inn,
        )


def person_struct(row: sqlite3.Row) -> dict[str, object]:
    """GetClientPersons: UPPER_CASE keys, every value a string (as Balance gives them)."""
    fields: dict[str, str] = json.loads(row["fields"])
    if row["type"] == "ph":
        name = " ".join(fields.get(k, "") for k in ("lname", "fname", "mname")).strip()
    else:
        name = fields.get("name", "")
    struct: dict[str, object] = {
        "ID": str(row["id"]),
        "CLIENT_ID": str(row["client_id"]),
        "TYPE": row["type"],
        "NAME": name,
        "EMAIL": fields.get("email", ""),
        "PHONE": fields.get("phone", ""),
        "INN": fields.get("inn", ""),
        "HIDDEN": "0",
        "DT": row["created_at"],
    }
    for key in (*MANDATORY[row["type"]], *OPTIONAL[row["type"]]):
        struct.setdefault(key.upper(), fields.get(key, ""))
    return struct


@balance_method("GetClientPersons", writes=False)
def get_client_persons(call: Call, client_id: object) -> list[dict[str, object]]:
    cid = values.parse_id(client_id, "client_id")
    client_row(call.conn, cid)
    rows = call.conn.execute(
        "SELECT * FROM persons WHERE client_id = ? ORDER BY id", (cid,)
    ).fetchall()
    return [person_struct(row) for row in rows]
