"""Clients: CreateClient, GetClientByIdBatch, FindClient. Keys are UPPER_CASE."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import cast

from balance_emulator import values
from balance_emulator.errors import BalanceError, invalid_param
from balance_emulator.methods import Call, balance_method
from balance_emulator.methods.common import client_row, inserted_id

_EXTRA_TEXT_FIELDS = ("FAX", "URL", "CITY", "REPRESENTATIVE")
_CLIENT_FIELDS = frozenset(
    {"CLIENT_ID", "NAME", "EMAIL", "PHONE", "CLIENT_TYPE_ID", "IS_AGENCY", "AGENCY_ID"}
    | {"REGION_ID", *_EXTRA_TEXT_FIELDS}
)
_FIND_FILTERS = frozenset({"ClientID", "Name", "Email", "Phone", "Url", "PrimaryClients"})


def client_struct(row: sqlite3.Row) -> dict[str, object]:
    extra = json.loads(row["extra"])
    struct: dict[str, object] = {
        "CLIENT_ID": row["id"],
        "NAME": row["name"],
        "EMAIL": row["email"] or "",
        "PHONE": row["phone"] or "",
        "CLIENT_TYPE_ID": row["client_type_id"],
        "IS_AGENCY": row["is_agency"],
        "AGENCY_ID": row["agency_id"],
    }
    for key in _EXTRA_TEXT_FIELDS:
        struct[key] = extra.get(key, "")
    struct["REGION_ID"] = extra.get("REGION_ID")
    return struct


@balance_method("CreateClient", writes=True)
def create_client(call: Call, uid: object, params: object) -> list[object]:
    """Without CLIENT_ID: a new client on EVERY call. With CLIENT_ID: update that client."""
    values.parse_uid(uid)
    struct = values.require_struct(params, "client")
    values.refuse_unknown_keys(struct, _CLIENT_FIELDS, "client")
    fields = _client_fields(call.conn, struct)
    now = call.now.isoformat(sep=" ")
    if struct.get("CLIENT_ID") is not None:
        client_id = values.parse_id(struct["CLIENT_ID"], "CLIENT_ID")
        current = client_row(call.conn, client_id)
        extra = json.loads(current["extra"])
        extra.update(cast(dict[str, object], fields.pop("extra")))
        assignments = ", ".join(f"{column} = ?" for column in fields)
        call.conn.execute(
            f"UPDATE clients SET {assignments}{', ' if fields else ''}extra = ?, updated_at = ? "
            "WHERE id = ?",
            (*fields.values(), json.dumps(extra), now, client_id),
        )
        return [0, "SUCCESS", client_id]
    if not fields.get("name"):
        raise invalid_param("NAME is required to create a client")
    extra = fields.pop("extra")
    cursor = call.conn.execute(
        "INSERT INTO clients (name, email, phone, client_type_id, is_agency, agency_id, extra,"
        " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            fields["name"],
            fields.get("email"),
            fields.get("phone"),
            fields.get("client_type_id", 0),
            fields.get("is_agency", 0),
            fields.get("agency_id"),
            json.dumps(extra),
            now,
            now,
        ),
    )
    return [0, "SUCCESS", inserted_id(cursor)]


def _client_fields(conn: sqlite3.Connection, struct: Mapping[str, object]) -> dict[str, object]:
    """Validated column values for the keys present (and `extra` for the rest)."""
    fields: dict[str, object] = {}
    extra: dict[str, object] = {}
    if "NAME" in struct:
        name = values.parse_text(struct["NAME"], "NAME").strip()
        if not name:
            raise invalid_param("NAME must not be empty")
        fields["name"] = name
    if "EMAIL" in struct and struct["EMAIL"] not in ("", None):
        fields["email"] = values.parse_email(struct["EMAIL"], "EMAIL")
    if "PHONE" in struct:
        fields["phone"] = values.parse_text(struct["PHONE"], "PHONE", max_len=64)
    if "CLIENT_TYPE_ID" in struct:
        client_type = values.parse_decimal(struct["CLIENT_TYPE_ID"], "CLIENT_TYPE_ID")
        if client_type not in (0, 1, 2, 3):
            raise invalid_param(f"CLIENT_TYPE_ID must be 0..3, got {struct['CLIENT_TYPE_ID']!r}")
        fields["client_type_id"] = int(client_type)
    if "IS_AGENCY" in struct:
        fields["is_agency"] = int(values.parse_flag(struct["IS_AGENCY"], "IS_AGENCY"))
    if struct.get("AGENCY_ID") not in (None, 0, "0", ""):
        agency_id = values.parse_id(struct["AGENCY_ID"], "AGENCY_ID")
        if not client_row(conn, agency_id)["is_agency"]:
            raise invalid_param(f"AGENCY_ID {agency_id} is not an agency")
        fields["agency_id"] = agency_id
    for key in _EXTRA_TEXT_FIELDS:
        if key in struct:
            extra[key] = values.parse_text(struct[key], key)
    if struct.get("REGION_ID") is not None:
        extra["REGION_ID"] = values.parse_id(struct["REGION_ID"], "REGION_ID")
    fields["extra"] = extra
    return fields


@balance_method("GetClientByIdBatch", writes=False)
def get_client_by_id_batch(call: Call, client_ids: object) -> list[object]:
    """[0, [client struct, ...]]; ids that do not exist are left out."""
    ids = [values.parse_id(item, "client_id") for item in values.require_list(client_ids, "ids")]
    found = []
    for client_id in dict.fromkeys(ids):
        row = call.conn.execute("SELECT * FROM clients WHERE id = ?", (client_id,)).fetchone()
        if row is not None:
            found.append(client_struct(row))
    return [0, found]


@balance_method("FindClient", writes=False)
def find_client(call: Call, filters: object) -> list[object]:
    """[0, 0, [client struct, ...]]. Name matches a case-insensitive substring; ClientID,
    Email (case-insensitive), Phone and Url match exactly. An empty filter is refused."""
    struct = values.require_struct(filters, "filter")
    values.refuse_unknown_keys(struct, _FIND_FILTERS, "filter")
    conditions: list[str] = []
    args: list[object] = []
    if struct.get("ClientID") not in (None, ""):
        conditions.append("id = ?")
        args.append(values.parse_id(struct["ClientID"], "ClientID"))
    if struct.get("Name") not in (None, ""):
        conditions.append("instr(lower(name), lower(?)) > 0")
        args.append(values.parse_text(struct["Name"], "Name"))
    if struct.get("Email") not in (None, ""):
        conditions.append("lower(email) = lower(?)")
        args.append(values.parse_text(struct["Email"], "Email").strip())
    if struct.get("Phone") not in (None, ""):
        conditions.append("phone = ?")
        args.append(values.parse_text(struct["Phone"], "Phone"))
    if struct.get("Url") not in (None, ""):
        conditions.append("json_extract(extra, '$.URL') = ?")
        args.append(values.parse_text(struct["Url"], "Url"))
    if not conditions:
        raise BalanceError(
            "INVALID_PARAM",
            "Invalid parameter for function: FindClient needs at least one of "
            "ClientID, Name, Email, Phone, Url",
        )
    if struct.get("PrimaryClients") not in (None, "", 0, "0", False):
        conditions.append("agency_id IS NULL")
    rows = call.conn.execute(
        f"SELECT * FROM clients WHERE {' AND '.join(conditions)} ORDER BY id LIMIT 1000",
        args,
    ).fetchall()
    return [0, 0, [client_struct(row) for row in rows]]
