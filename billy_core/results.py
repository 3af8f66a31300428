"""Result codes and the Result value billy publishes for every command record.

The codes are a closed set (DESIGN.md, "Commands and results"); adding one is a contract
change. Rejections are values, never exceptions (TigerBeetle style).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


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


@dataclass(frozen=True, slots=True)
class Result:
    command_id: str
    client_id: str
    status: Status
    code: Code | str  # a str when decoded from a newer billy that added a code
    message: str
    currency: str | None
    available_minor: int
    held_minor: int
    wallet_version: int
    duplicate: bool
    processed_at_ms: int
    details: dict[str, str] = field(default_factory=dict)
