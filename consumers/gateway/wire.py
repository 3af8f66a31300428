"""The two internal records between the ledger and the gateway, as versioned JSON.

    <prefix>.internal.balance-requests   ledger -> gateway   BalanceRequest   (an intent)
    <prefix>.internal.events             gateway -> ledger   BalanceOutcome   (its outcome)

Both are keyed `<tenant>/<client id>`, so one client's records stay on one partition, in
order. Internal to billy (not a public contract): JSON with a version field `v`; a reader
refuses another version (`WireError`, the record is dead-lettered). Values carry personal
data (names, emails, payer fields): never log them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

VERSION = 1


class WireError(ValueError):
    """Bytes that are not a record of this module's version; the message names the field."""


@dataclass(frozen=True, slots=True)
class BalanceRequest:
    """A Balance-bound command as the ledger recorded it: what the gateway must perform."""

    tenant: str
    client_id: str
    command_id: str
    kind: str  # the body's type name: RegisterClient, UpdateClient, UpsertPayer, ...
    body: dict[str, Any]  # the body's fields (commands.<kind>), money as int minor units
    currency: str  # the wallet's currency

    @property
    def key(self) -> str:
        return f"{self.tenant}/{self.client_id}"


@dataclass(frozen=True, slots=True)
class BalanceOutcome:
    """What Balance did for one request: the command's result-to-be and the mapping found.

    `status`/`code`/`message`/`details` become the command's Result. `account`, `payer`,
    `contract` and `invoice` are what the ledger stores for reads (None: nothing new);
    `credit_minor` (TransferCredit, APPLIED) is credited to the wallet; `client` (name,
    email, phone) updates the ledger's client row after an UpdateClient.
    """

    tenant: str
    client_id: str
    command_id: str
    kind: str
    status: str  # "APPLIED" | "REJECTED"
    code: str
    message: str
    details: dict[str, str] = field(default_factory=dict)
    account: dict[str, Any] | None = None  # balance_client_id, service_order_id, status
    payer: dict[str, Any] | None = None  # payer_id, person_id, kind
    contract: dict[str, Any] | None = None  # contract_id, balance_contract_id, ...
    invoice: dict[str, Any] | None = None  # invoice_id, request_id, amount_minor, ...
    credit_minor: int | None = None
    currency: str | None = None
    client: dict[str, Any] | None = None  # name, email, phone
    # TransferCredit, APPLIED: the order's money in Balance read right after the credit
    # invoice (GetOrdersInfo); None when that read did not answer (billy_core.ledger.payments)
    order_sum_minor: int | None = None

    @property
    def key(self) -> str:
        return f"{self.tenant}/{self.client_id}"


def encode_request(request: BalanceRequest) -> bytes:
    return _dump(asdict(request))


def decode_request(value: bytes | None) -> BalanceRequest:
    data = _load(value)
    try:
        return BalanceRequest(
            tenant=_str(data, "tenant"),
            client_id=_str(data, "client_id"),
            command_id=_str(data, "command_id"),
            kind=_str(data, "kind"),
            body=_dict(data, "body"),
            currency=_str(data, "currency"),
        )
    except KeyError as exc:
        raise WireError(f"{exc.args[0]}: missing") from None


def encode_outcome(outcome: BalanceOutcome) -> bytes:
    return _dump(asdict(outcome))


def decode_outcome(value: bytes | None) -> BalanceOutcome:
    data = _load(value)
    try:
        status = _str(data, "status")
        if status not in ("APPLIED", "REJECTED"):
            raise WireError(f"status: {status[:16]!r} is not APPLIED or REJECTED")
        credit = data.get("credit_minor")
        if credit is not None and (isinstance(credit, bool) or not isinstance(credit, int)):
            raise WireError("credit_minor: not an integer")
        order_sum = data.get("order_sum_minor")  # absent in outcomes written before it existed
        if order_sum is not None and (
            isinstance(order_sum, bool) or not isinstance(order_sum, int) or order_sum < 0
        ):
            raise WireError("order_sum_minor: not an integer >= 0")
        details = _dict(data, "details")
        return BalanceOutcome(
            tenant=_str(data, "tenant"),
            client_id=_str(data, "client_id"),
            command_id=_str(data, "command_id"),
            kind=_str(data, "kind"),
            status=status,
            code=_str(data, "code"),
            message=_str(data, "message"),
            details={str(k): str(v) for k, v in details.items()},
            account=_opt_dict(data, "account"),
            payer=_opt_dict(data, "payer"),
            contract=_opt_dict(data, "contract"),
            invoice=_opt_dict(data, "invoice"),
            credit_minor=credit,
            currency=data.get("currency"),
            client=_opt_dict(data, "client"),
            order_sum_minor=order_sum,
        )
    except KeyError as exc:
        raise WireError(f"{exc.args[0]}: missing") from None


def _dump(data: dict[str, Any]) -> bytes:
    return json.dumps({"v": VERSION, **data}, separators=(",", ":"), sort_keys=True).encode()


def _load(value: bytes | None) -> dict[str, Any]:
    if value is None:
        raise WireError("value: empty")
    try:
        data = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"value: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise WireError("value: not a JSON object")
    if data.get("v") != VERSION:
        raise WireError(f"v: version {data.get('v')!r} is not {VERSION}")
    return data


def _str(data: dict[str, Any], name: str) -> str:
    value = data[name]
    if not isinstance(value, str):
        raise WireError(f"{name}: not a string")
    return value


def _dict(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data[name]
    if not isinstance(value, dict):
        raise WireError(f"{name}: not an object")
    return value


def _opt_dict(data: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise WireError(f"{name}: not an object")
    return value
