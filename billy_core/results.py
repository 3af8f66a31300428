"""Result codes and the Result value billy publishes for every command record.

The codes are a closed set (DESIGN.md, "Commands and results"); adding one is a contract
change. Rejections are values, never exceptions (TigerBeetle style).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Status(StrEnum):
    APPLIED = "APPLIED"
    REJECTED = "REJECTED"


class Code(StrEnum):
    """Why a command ended as it did. The ledger checks them in the order listed in
    `billy_core.ledger.core` (precedence); the first that applies wins."""

    OK = "ok"
    INVALID = "invalid"  # a field can never be valid; the message names it
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"  # same command_id, other payload
    UNKNOWN_CLIENT = "unknown_client"  # no RegisterClient applied for this client
    CLIENT_EXISTS = "client_exists"  # RegisterClient for a registered client
    CURRENCY_MISMATCH = "currency_mismatch"  # the wallet has another currency
    HOLD_EXISTS = "hold_exists"  # Hold with a hold_id already used by this client
    HOLD_NOT_FOUND = "hold_not_found"
    HOLD_SETTLED = "hold_settled"  # the hold was confirmed or released before
    HOLD_EXPIRED = "hold_expired"  # the hold expired (its expiry is its own ExpireHold result)
    HOLD_NOT_EXPIRED = "hold_not_expired"  # ExpireHold arrived before expires_at
    EXCEEDS_HOLD = "exceeds_hold"  # confirm more than is held
    CHARGE_NOT_FOUND = "charge_not_found"  # Refund of an unknown or non-refundable command
    EXCEEDS_REFUNDABLE = "exceeds_refundable"  # refund more than is left
    INSUFFICIENT_FUNDS = "insufficient_funds"
    BALANCE_OVERFLOW = "balance_overflow"  # a balance would pass 2^63-1 minor units
    UNSUPPORTED = "unsupported"  # no longer returned (Balance-bound commands before the gateway)
    # Balance-bound commands, answered when Balance has answered (consumers/gateway):
    # Balance refused (details balance_code, balance_message, balance_field) or stayed
    # unreachable past the gateway's deadline. (A RegisterClient whose Balance part failed is
    # APPLIED ok, details balance_status=failed: the wallet exists; UpdateClient retries.)
    BALANCE_ERROR = "balance_error"
    PAYER_NOT_FOUND = "payer_not_found"  # no payer with this id (or none at all) for the client
    CONTRACT_NOT_FOUND = "contract_not_found"  # no such contract, or none of the needed type
    CREDIT_LIMIT_EXCEEDED = "credit_limit_exceeded"  # TransferCredit above the limit left
    # (details limit_left_minor)
    # billy's own event, not an answer: money from Balance credited (billy-payment:<order>:<tid>)
    PAYMENT_RECEIVED = "payment_received"


@dataclass(slots=True, init=False, unsafe_hash=True)
class Result:
    # A hot-path value: explicit __init__, Final fields (billy_core.compiled, "Values").
    command_id: Final[str]
    client_id: Final[str]
    status: Final[Status]
    code: Final[Code | str]  # a str when decoded from a newer billy that added a code
    message: Final[str]
    currency: Final[str | None]
    available_minor: Final[int]
    held_minor: Final[int]
    wallet_version: Final[int]
    duplicate: Final[bool]
    processed_at_ms: Final[int]
    details: Final[dict[str, str]]

    def __init__(
        self,
        command_id: str,
        client_id: str,
        status: Status,
        code: Code | str,
        message: str,
        currency: str | None,
        available_minor: int,
        held_minor: int,
        wallet_version: int,
        duplicate: bool,
        processed_at_ms: int,
        details: dict[str, str] | None = None,
    ) -> None:
        self.command_id = command_id
        self.client_id = client_id
        self.status = status
        self.code = code
        self.message = message
        self.currency = currency
        self.available_minor = available_minor
        self.held_minor = held_minor
        self.wallet_version = wallet_version
        self.duplicate = duplicate
        self.processed_at_ms = processed_at_ms
        self.details = {} if details is None else details
