"""Security without services: the principals' ACLs as data, client security options from
settings, the SDK's SASL helper. The broker's side is tests/integration/test_security.py."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from billy_core.kafka import config as kafka_config
from billy_core.kafka.admin import topic_specs
from billy_core.kafka.topics import TopicNames
from billy_core.security import acls
from billy_core.settings import Settings
from producers import sasl_config
from producers._config import settings_for

P = "billy"
TENANTS = ("autoru", "realty", "cmexpert")


def _everyone() -> list[acls.Binding]:
    out = [*acls.billing_bindings(P), *acls.warehouse_bindings(P)]
    for tenant in TENANTS:
        out += acls.tenant_bindings(P, tenant)
    for role in acls.ROLES:
        out += acls.role_bindings(P, role, TENANTS, "billy-ledger", "billy-gateway")
    return out


def test_only_the_billing_team_writes_the_admin_topic():
    admin = TopicNames(P).admin_commands
    writers = {
        b.principal
        for b in _everyone()
        if b.resource_type == "topic"
        and b.operation in ("write", "all")
        and (b.name == admin or (b.pattern == "prefixed" and admin.startswith(b.name)))
    }
    assert writers == {acls.billing_principal(P)}


def test_a_tenant_touches_only_its_own_topics_and_groups():
    t = TopicNames(P)
    for tenant in TENANTS:
        bindings = acls.tenant_bindings(P, tenant)
        assert {(b.resource_type, b.name, b.pattern, b.operation) for b in bindings} == {
            ("topic", t.commands(tenant), "literal", "write"),
            ("topic", t.results(tenant), "literal", "read"),
            ("group", f"{P}.{tenant}.", "prefixed", "read"),
        }
        assert {b.principal for b in bindings} == {f"{P}-tenant-{tenant}"}


def test_no_group_prefix_covers_another_principals_groups():
    prefixes = [acls.tenant_group_prefix(P, t) for t in (*TENANTS, "auto", "autoru-x")]
    prefixes += [acls.billing_group_prefix(P), acls.warehouse_group_prefix(P)]
    for a in prefixes:
        for b in prefixes:
            assert a == b or not b.startswith(a), (a, b)


def test_no_binding_is_a_wildcard_or_a_cluster_admin_right():
    for b in _everyone():
        assert b.name not in ("*", "") and b.operation != "all", b
        if b.resource_type == "cluster":
            assert b.operation == "idempotent_write", b


def test_role_bindings_name_only_topics_billy_creates():
    settings = Settings(tenants=TENANTS, topic_prefix=P)
    made = {s.name for s in topic_specs(settings)}
    for b in _everyone():
        if b.resource_type == "topic" and b.pattern == "literal":
            assert b.name in made or b.name in acls.warehouse_topics(P), b.name


def test_unknown_role_is_refused():
    with pytest.raises(ValueError, match="unknown role"):
        acls.role_bindings(P, "cashier", TENANTS, "g", "g")


def test_client_security_from_settings():
    plain = Settings(kafka_security_protocol="PLAINTEXT")
    assert kafka_config.client_security(plain) == {}
    sasl = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="billy-ledger",
        kafka_sasl_password="pw",
        kafka_ssl_ca_location="/ca.pem",
    )
    conf = kafka_config.ledger_consumer(sasl)
    assert conf["security.protocol"] == "SASL_SSL"
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (conf["sasl.username"], conf["sasl.password"]) == ("billy-ledger", "pw")
    assert conf["ssl.ca.location"] == "/ca.pem"
    assert conf["ssl.endpoint.identification.algorithm"] == "https"
    assert "pw" not in repr(sasl)  # a SecretStr: never in a repr or a log line
    # The SDK's bootstrap-only settings carry no security: the service passes extra_config.
    assert kafka_config.client_security(settings_for("k:9092")) == {}


def test_sasl_without_credentials_is_a_settings_error():
    with pytest.raises(ValidationError, match="BILLY_KAFKA_SASL_USERNAME"):
        Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username=None)


def test_super_admin_uses_the_admin_credentials():
    s = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="billy-api",
        kafka_sasl_password="a",
        kafka_admin_sasl_username="admin",
        kafka_admin_sasl_password="b",
    )
    assert kafka_config.admin(s)["sasl.username"] == "billy-api"
    conf = kafka_config.super_admin(s)
    assert (conf["sasl.username"], conf["sasl.password"]) == ("admin", "b")


def test_sdk_sasl_config():
    conf = sasl_config("billy-tenant-autoru", "pw", ca_location="/ca.pem")
    assert conf == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "billy-tenant-autoru",
        "sasl.password": "pw",
        "ssl.ca.location": "/ca.pem",
    }
    with pytest.raises(ValueError, match="protocol"):
        sasl_config("u", "p", protocol="PLAINTEXT")
    with pytest.raises(ValueError, match="username"):
        sasl_config("", "p")
