"""Response models of the read API (pydantic 2). Money is an integer of minor units with its
ISO 4217 currency, never a float; times are ISO 8601 in UTC, with the exact integer
milliseconds beside them where billy stores them so. Names and emails are never here."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AppliedService", "AppliedServicesPage", "Health", "Hold", "Holds", "Problem", "Wallet"]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Wallet(_Out):
    tenant: str
    client_id: str
    currency: str = Field(description="ISO 4217; a wallet has one currency")
    available_minor: int = Field(description="Spendable money, minor units (kopecks)")
    held_minor: int = Field(description="Money in open holds, minor units")
    version: int = Field(description="Grows by one with every change of the wallet")
    updated_at: datetime


class Hold(_Out):
    hold_id: str
    product_id: str
    amount_minor: int
    currency: str
    expires_at: datetime
    expires_at_ms: int = Field(description="expires_at as milliseconds since the epoch")
    created_at: datetime


class Holds(_Out):
    tenant: str
    client_id: str
    holds: list[Hold] = Field(description="Open holds, soonest expiry first")


class AppliedService(_Out):
    command_id: str
    kind: Literal["CHARGE", "REFUND"]
    product_id: str
    amount_minor: int = Field(description="Always positive; a REFUND gives money back")
    currency: str
    refund_of: str | None = Field(description="For a REFUND: the command_id it refunds")
    applied_at: datetime
    applied_at_ms: int = Field(description="applied_at as milliseconds since the epoch")


class AppliedServicesPage(_Out):
    tenant: str
    client_id: str
    items: list[AppliedService] = Field(description="Oldest first")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page"
    )


class Health(_Out):
    status: Literal["ok", "unavailable"]


class Problem(_Out):
    detail: str
