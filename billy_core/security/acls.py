"""The principals of one deployment and the ACLs each needs, as plain data.

Nothing here talks to a broker: `billy_core.security.kafka` applies these bindings, and the
tests compare them with what the broker allows. Every binding is an ALLOW on a LITERAL or
PREFIXED resource; what is not listed is denied (`allow.everyone.if.no.acl.found=false`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from billy_core.kafka.topics import TopicNames

ResourceType = Literal["topic", "group", "transactional_id", "cluster"]
PatternType = Literal["literal", "prefixed"]
Operation = Literal["read", "write", "describe", "create", "idempotent_write", "all"]

ROLES = ("ledger", "relay", "sweeper", "gateway", "api", "intake")
CLUSTER = "kafka-cluster"  # the only name a cluster resource has


@dataclass(frozen=True, slots=True, order=True)
class Binding:
    """ALLOW `principal` to `operation` on a resource, from any host."""

    principal: str  # the SCRAM user name, without "User:"
    resource_type: ResourceType
    name: str
    pattern: PatternType
    operation: Operation


def tenant_principal(prefix: str, tenant: str) -> str:
    return f"{prefix}-tenant-{tenant}"


def role_principal(prefix: str, role: str) -> str:
    return f"{prefix}-{role}"


def billing_principal(prefix: str) -> str:
    return f"{prefix}-billing"


def warehouse_principal(prefix: str) -> str:
    return f"{prefix}-warehouse"


def tenant_group_prefix(prefix: str, tenant: str) -> str:
    """A tenant's consumer groups start with this (tenant names have no '.', so no tenant's
    prefix is another's)."""
    return f"{prefix}.{tenant}."


def billing_group_prefix(prefix: str) -> str:
    return f"{prefix}.admin."  # 'admin' is no tenant's name


def warehouse_group_prefix(prefix: str) -> str:
    return f"{prefix}.internal.warehouse."  # 'internal' is no tenant's name


def warehouse_topics(prefix: str) -> tuple[str, ...]:
    return tuple(
        f"{prefix}.{name}" for name in ("applied-services", "wallets", "acts", "reconciliation")
    )


def _topic(principal: str, name: str, *ops: Operation) -> list[Binding]:
    return [Binding(principal, "topic", name, "literal", op) for op in ops]


def _group(principal: str, name: str, pattern: PatternType) -> list[Binding]:
    return [Binding(principal, "group", name, pattern, "read")]


def tenant_bindings(prefix: str, tenant: str) -> list[Binding]:
    """The tenant's service: its own commands (write) and results (read), its own groups.
    WRITE and READ imply DESCRIBE on the same topic."""
    t = TopicNames(prefix)
    p = tenant_principal(prefix, tenant)
    return [
        *_topic(p, t.commands(tenant), "write"),
        *_topic(p, t.results(tenant), "read"),
        *_group(p, tenant_group_prefix(prefix, tenant), "prefixed"),
    ]


def billing_bindings(prefix: str) -> list[Binding]:
    t = TopicNames(prefix)
    p = billing_principal(prefix)
    return [
        *_topic(p, t.admin_commands, "write"),
        *_topic(p, t.admin_results, "read"),
        *_group(p, billing_group_prefix(prefix), "prefixed"),
    ]


def warehouse_bindings(prefix: str) -> list[Binding]:
    p = warehouse_principal(prefix)
    return [
        *(b for name in warehouse_topics(prefix) for b in _topic(p, name, "read")),
        *_group(p, warehouse_group_prefix(prefix), "prefixed"),
    ]


def role_bindings(
    prefix: str, role: str, tenants: tuple[str, ...], ledger_group: str, gateway_group: str
) -> list[Binding]:
    """What one billy role needs on the broker, for the given tenants.

    ledger   READ every tenant's commands, the admin commands and internal events; its group
    relay    WRITE every output topic (results, logs, snapshots, DLQ, internal), READ its own
             positions topic; its transactional ids; idempotent writes
    sweeper  WRITE every tenant's commands (ExpireHold on the client's own partition)
    gateway  READ the Balance requests; its group
    api      DESCRIBE billy's topics only (the start-up topic check); it reads PostgreSQL
    intake   WRITE the internal events (confirmed Balance notifications); idempotent writes
    """
    t = TopicNames(prefix)
    p = role_principal(prefix, role)
    if role == "ledger":
        topics = [t.commands(x) for x in tenants] + [t.admin_commands, t.internal_events]
        return [
            *(b for name in topics for b in _topic(p, name, "read")),
            *_group(p, ledger_group, "literal"),
        ]
    if role == "relay":
        outputs = [t.results(x) for x in tenants] + [
            t.admin_results,
            t.applied_services,
            t.wallets,
            t.acts,
            t.reconciliation,
            t.dlq,
            t.balance_requests,
            t.internal_events,
            t.relay_positions,
        ]
        return [
            *(b for name in outputs for b in _topic(p, name, "write")),
            *_topic(p, t.relay_positions, "read"),
            *_group(p, "billy-relay-positions-reader", "literal"),
            Binding(p, "transactional_id", f"{prefix}-relay-", "prefixed", "write"),
            Binding(p, "transactional_id", f"{prefix}-relay-", "prefixed", "describe"),
            Binding(p, "cluster", CLUSTER, "literal", "idempotent_write"),
        ]
    if role == "sweeper":
        return [
            *(b for x in tenants for b in _topic(p, t.commands(x), "write")),
            Binding(p, "cluster", CLUSTER, "literal", "idempotent_write"),
        ]
    if role == "gateway":
        return [*_topic(p, t.balance_requests, "read"), *_group(p, gateway_group, "literal")]
    if role == "api":
        return [Binding(p, "topic", f"{prefix}.", "prefixed", "describe")]
    if role == "intake":
        return [
            *_topic(p, t.internal_events, "write"),
            Binding(p, "cluster", CLUSTER, "literal", "idempotent_write"),
        ]
    raise ValueError(f"unknown role {role!r}; choose from {', '.join(ROLES)}")


def tenant_role_bindings(prefix: str, tenant: str) -> list[Binding]:
    """What billy's roles need for one more tenant (granted by `billy tenants add`)."""
    t = TopicNames(prefix)
    return [
        *_topic(role_principal(prefix, "ledger"), t.commands(tenant), "read"),
        *_topic(role_principal(prefix, "sweeper"), t.commands(tenant), "write"),
        *_topic(role_principal(prefix, "relay"), t.results(tenant), "write"),
    ]
