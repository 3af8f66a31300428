"""Ledger account names: one function per account, so a name is spelled in one place.

Per wallet: `w:<tenant>/<client_id>:available` and `w:<tenant>/<client_id>:held`.
Per tenant: `t:<tenant>:payments` (money from Balance), `t:<tenant>:credit` (postpay),
`t:<tenant>:revenue:<product_id>`, `t:<tenant>:adjustments` (billing-team corrections).

Names stay unambiguous because a tenant comes from a Kafka topic name
(`[A-Za-z0-9._-]`, no `/` or `:`): the tenant ends at the first `/` or `:`, and wallet
names end with a fixed suffix whatever the client id contains.
"""

from __future__ import annotations

__all__ = ["adjustments", "available", "credit", "held", "payments", "revenue"]


def available(tenant: str, client_id: str) -> str:
    return f"w:{tenant}/{client_id}:available"


def held(tenant: str, client_id: str) -> str:
    return f"w:{tenant}/{client_id}:held"


def payments(tenant: str) -> str:
    return f"t:{tenant}:payments"


def credit(tenant: str) -> str:
    return f"t:{tenant}:credit"


def revenue(tenant: str, product_id: str) -> str:
    return f"t:{tenant}:revenue:{product_id}"


def adjustments(tenant: str) -> str:
    return f"t:{tenant}:adjustments"
