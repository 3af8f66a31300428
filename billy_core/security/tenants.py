"""Onboarding in one call: a tenant's topics, SCRAM credentials, ACLs and read-API token; its
removal revokes all of them. And `init`: the principals of billy's roles, the billing team and
the warehouse for one deployment.

Kafka work is done as the super user (`BILLY_KAFKA_ADMIN_SASL_*`, kafka_config.super_admin);
database work in one transaction on `engine`. Secrets are returned to the caller, which shows
them once; nothing here logs them. Raises KafkaException when the broker refuses and
ValueError for a bad tenant name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Engine

from billy_core.kafka import config as kafka_config
from billy_core.kafka.admin import ensure_topics
from billy_core.security import acls, tokens
from billy_core.security import kafka as broker
from billy_core.settings import Settings
from billy_core.store.tables import tenants as tenants_table

_RESERVED = frozenset({"admin", "internal"})


@dataclass(frozen=True, slots=True)
class Onboarded:
    tenant: str
    principal: str
    password: str = field(repr=False)  # secrets never in a repr, a log line or a traceback
    token: str = field(repr=False)
    acl_count: int = 0
    topic_lines: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TenantInfo:
    tenant: str
    principal: str
    created_at: datetime | None
    tokens_live: int
    configured: bool  # in BILLY_TENANTS: the ledger reads its commands topic


def check_name(tenant: str) -> str:
    if not tenant or not tenant.replace("-", "").isalnum() or tenant != tenant.lower():
        raise ValueError(f"tenant: {tenant!r} must be lower-case letters, digits or '-'")
    if not tenant.isascii() or tenant in _RESERVED:
        raise ValueError(f"tenant: {tenant!r} is reserved or not ASCII")
    return tenant


def _as_super_user(settings: Settings, **update: object) -> Settings:
    """`settings` whose ordinary Kafka principal is the super user (topic creation)."""
    if settings.kafka_admin_sasl_username and settings.kafka_admin_sasl_password:
        update |= {
            "kafka_sasl_username": settings.kafka_admin_sasl_username,
            "kafka_sasl_password": settings.kafka_admin_sasl_password,
        }
    return settings.model_copy(update=update)


def add(settings: Settings, engine: Engine, tenant: str) -> Onboarded:
    """Create (or complete) everything tenant `tenant` needs; a new password and a new token
    each time (an add of an existing tenant re-keys it: the old password stops working)."""
    check_name(tenant)
    prefix = settings.topic_prefix
    principal = acls.tenant_principal(prefix, tenant)
    conf = kafka_config.super_admin(settings)
    lines = ensure_topics(_as_super_user(settings, tenants=(tenant,)))
    password = broker.new_password()
    broker.set_password(conf, principal, password)
    count = broker.grant(
        conf, [*acls.tenant_bindings(prefix, tenant), *acls.tenant_role_bindings(prefix, tenant)]
    )
    with engine.begin() as conn:
        conn.execute(
            insert(tenants_table)
            .values(tenant=tenant, principal=principal)
            .on_conflict_do_update(index_elements=["tenant"], set_={"principal": principal})
        )
        token = tokens.issue(conn, tenant)
    return Onboarded(tenant, principal, password, token, count, lines)


def remove(settings: Settings, engine: Engine, tenant: str) -> dict[str, int]:
    """Revoke the tenant's ACLs (and the roles' for its topics), its SCRAM credential and its
    tokens. Its topics and ledger stay (money and history are kept); returns what went."""
    check_name(tenant)
    prefix = settings.topic_prefix
    principal = acls.tenant_principal(prefix, tenant)
    conf = kafka_config.super_admin(settings)
    gone = {
        "acls": broker.revoke_principal(conf, principal)
        + broker.revoke(conf, acls.tenant_role_bindings(prefix, tenant)),
        "credentials": int(broker.delete_user(conf, principal)),
    }
    with engine.begin() as conn:
        gone["tokens"] = tokens.revoke_all(conn, tenant)
        conn.execute(tenants_table.delete().where(tenants_table.c.tenant == tenant))
    return gone


def rotate_token(engine: Engine, tenant: str, overlap_s: float) -> str:
    check_name(tenant)
    with engine.begin() as conn:
        return tokens.rotate(conn, tenant, overlap_s)


def listing(settings: Settings, engine: Engine) -> list[TenantInfo]:
    """Onboarded tenants and configured ones, with their live token counts."""
    with engine.connect() as conn:
        rows = {r.tenant: r for r in conn.execute(sa.select(tenants_table))}
        live: dict[str, int] = {}
        now = conn.execute(sa.select(sa.func.now())).scalar_one()
        for t in tokens.listing(conn):
            if t.expires_at is None or t.expires_at > now:
                live[t.tenant] = live.get(t.tenant, 0) + 1
    names = sorted({*rows, *settings.tenants})
    return [
        TenantInfo(
            name,
            rows[name].principal
            if name in rows
            else acls.tenant_principal(settings.topic_prefix, name),
            rows[name].created_at if name in rows else None,
            live.get(name, 0),
            name in settings.tenants,
        )
        for name in names
    ]


def init_deployment(settings: Settings, rotate: bool = False) -> dict[str, str]:
    """The principals of billy's roles, the billing team and the warehouse for this
    deployment (topic prefix, BILLY_TENANTS), with their ACLs; topics created. Returns the
    passwords of the principals made now (existing ones keep theirs unless `rotate`)."""
    prefix = settings.topic_prefix
    conf = kafka_config.super_admin(settings)
    ensure_topics(_as_super_user(settings))
    wanted: dict[str, list[acls.Binding]] = {
        acls.billing_principal(prefix): acls.billing_bindings(prefix),
        acls.warehouse_principal(prefix): acls.warehouse_bindings(prefix),
    }
    for role in acls.ROLES:
        wanted[acls.role_principal(prefix, role)] = acls.role_bindings(
            prefix, role, settings.tenants, settings.ledger_group, settings.gateway_group
        )
    existing = set(broker.users(conf))
    made: dict[str, str] = {}
    for principal, bindings in wanted.items():
        if rotate or principal not in existing:
            made[principal] = broker.new_password()
            broker.set_password(conf, principal, made[principal])
        broker.grant(conf, bindings)
    return made
