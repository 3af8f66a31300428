"""Apply principals to the broker: SCRAM credentials and ACLs through the Kafka Admin API.

Every call takes an AdminClient config of the super user (`kafka_config.super_admin`) and
waits at most `timeout_s`. Raises KafkaException when the broker refuses (for instance
CLUSTER_AUTHORIZATION_FAILED for a principal that may not alter ACLs).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported, unlisted
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from billy_core.kafka.logs import KAFKA_LOG
from billy_core.security.acls import Binding

# Kafka's minimum is 4096; 8192 is what its own tools use.
SCRAM_ITERATIONS = 8192
_RESOURCE = {
    "topic": ResourceType.TOPIC,
    "group": ResourceType.GROUP,
    "transactional_id": ResourceType.TRANSACTIONAL_ID,
    "cluster": ResourceType.BROKER,  # librdkafka calls the cluster resource BROKER
}
_PATTERN = {"literal": ResourcePatternType.LITERAL, "prefixed": ResourcePatternType.PREFIXED}
_OPERATION = {
    "read": AclOperation.READ,
    "write": AclOperation.WRITE,
    "describe": AclOperation.DESCRIBE,
    "create": AclOperation.CREATE,
    "idempotent_write": AclOperation.IDEMPOTENT_WRITE,
    "all": AclOperation.ALL,
}


def new_password() -> str:
    """32 random bytes as hex: no commas, quotes or '=' (SCRAM and JAAS configs break on them)."""
    return secrets.token_hex(32)


def _admin(conf: dict[str, Any]) -> AdminClient:
    """A new client; callers keep it referenced until their futures are done (a collected
    client destroys its handle and fails them with _DESTROY)."""
    return AdminClient(conf, logger=KAFKA_LOG)


def _acl(binding: Binding) -> AclBinding:
    return AclBinding(
        _RESOURCE[binding.resource_type],
        binding.name,
        _PATTERN[binding.pattern],
        f"User:{binding.principal}",
        "*",
        _OPERATION[binding.operation],
        AclPermissionType.ALLOW,
    )


def set_password(conf: dict[str, Any], user: str, password: str, timeout_s: float = 30.0) -> None:
    """Create or replace `user`'s SCRAM-SHA-512 credential."""
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    admin = _admin(conf)
    futures = admin.alter_user_scram_credentials(
        [UserScramCredentialUpsertion(user, info, password.encode())],
        request_timeout=timeout_s,
    )
    for future in futures.values():
        future.result(timeout_s)


def delete_user(conf: dict[str, Any], user: str, timeout_s: float = 30.0) -> bool:
    """Remove `user`'s SCRAM credential; False when there was none."""
    admin = _admin(conf)
    futures = admin.alter_user_scram_credentials(
        [UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_512)],
        request_timeout=timeout_s,
    )
    try:
        for future in futures.values():
            future.result(timeout_s)
    except Exception as exc:  # RESOURCE_NOT_FOUND: no such credential
        if "RESOURCE_NOT_FOUND" in str(exc) or "not found" in str(exc).lower():
            return False
        raise
    return True


def users(conf: dict[str, Any], timeout_s: float = 30.0) -> list[str]:
    """Every user with a SCRAM credential."""
    admin = _admin(conf)
    future = admin.describe_user_scram_credentials(request_timeout=timeout_s)
    if isinstance(future, dict):  # only when users are named; None asks for all
        raise TypeError("describe_user_scram_credentials: expected one future")
    return sorted(future.result(timeout_s))


def grant(conf: dict[str, Any], bindings: Iterable[Binding], timeout_s: float = 30.0) -> int:
    """Create the ACLs (creating an existing one is a no-op on the broker); returns how many."""
    acls = [_acl(b) for b in sorted(set(bindings))]
    if not acls:
        return 0
    admin = _admin(conf)
    futures = admin.create_acls(acls, request_timeout=timeout_s)
    for future in futures.values():
        future.result(timeout_s)
    return len(acls)


def revoke_principal(conf: dict[str, Any], principal: str, timeout_s: float = 30.0) -> int:
    """Delete every ACL of `principal`; returns how many went."""
    match = AclBindingFilter(  # None matches any name and any host (librdkafka)
        ResourceType.ANY,
        None,  # type: ignore[arg-type]
        ResourcePatternType.ANY,
        f"User:{principal}",
        None,  # type: ignore[arg-type]
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    admin = _admin(conf)
    futures = admin.delete_acls([match], request_timeout=timeout_s)
    return sum(len(future.result(timeout_s)) for future in futures.values())


def revoke(conf: dict[str, Any], bindings: Iterable[Binding], timeout_s: float = 30.0) -> int:
    """Delete exactly these ACLs; returns how many went."""
    filters = [
        AclBindingFilter(
            _RESOURCE[b.resource_type],
            b.name,
            _PATTERN[b.pattern],
            f"User:{b.principal}",
            "*",
            _OPERATION[b.operation],
            AclPermissionType.ALLOW,
        )
        for b in sorted(set(bindings))
    ]
    if not filters:
        return 0
    admin = _admin(conf)
    futures = admin.delete_acls(filters, request_timeout=timeout_s)
    return sum(len(future.result(timeout_s)) for future in futures.values())


def principals_with_acls(conf: dict[str, Any], timeout_s: float = 30.0) -> dict[str, int]:
    """ACL count per principal (without "User:")."""
    match = AclBindingFilter(  # None matches anything (librdkafka)
        ResourceType.ANY,
        None,  # type: ignore[arg-type]
        ResourcePatternType.ANY,
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    counts: dict[str, int] = {}
    admin = _admin(conf)
    for acl in admin.describe_acls(match, request_timeout=timeout_s).result(timeout_s):
        name = acl.principal.removeprefix("User:")
        counts[name] = counts.get(name, 0) + 1
    return counts
