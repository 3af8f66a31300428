"""Kafka configs for the SDK: billy's own (billy_core.kafka.config) plus the service's extras.

The service passes a bootstrap string, not billy's Settings: `SdkSettings` carries only
that, so a vertical service's own `BILLY_*` variables (or their absence) cannot change what
the SDK does, and the SDK needs neither pydantic-settings nor anything else of the server.
Extra options (SASL, TLS, client tuning) are merged over billy's; the few options
correctness depends on cannot be overridden.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The options whose values the exactly-once contract rests on; an extra config may not touch them.
PROTECTED_OPTIONS = frozenset(
    {
        "bootstrap.servers",  # the constructor argument
        "acks",
        "enable.idempotence",
        "max.in.flight.requests.per.connection",
        "transactional.id",
        "group.id",  # the constructor argument
        "isolation.level",
        "enable.auto.commit",
        "on_delivery",
        # The contract's partitioner: another one sends a client's commands to a partition
        # where billy's own ExpireHold for that client does not go (order lost).
        "partitioner",
    }
)
_TENANT = re.compile(r"^[a-z0-9-]+$")
_RESERVED_TENANTS = frozenset({"admin", "internal"})


@dataclass(frozen=True, slots=True)
class SdkSettings:
    """All of billy's settings the SDK's client configs read (billy_core.kafka.config's
    KafkaSettings)."""

    kafka_bootstrap: str


def settings_for(bootstrap: str) -> SdkSettings:
    """Raises ValueError for an empty or non-string bootstrap."""
    if not isinstance(bootstrap, str) or not bootstrap.strip():
        raise ValueError("bootstrap: must be 'host:port[,host:port...]'")
    return SdkSettings(kafka_bootstrap=bootstrap.strip())


def check_tenant(tenant: str) -> str:
    if not isinstance(tenant, str) or not _TENANT.match(tenant):
        raise ValueError(f"tenant: must be lower-case letters, digits or '-', got {tenant!r}")
    if tenant in _RESERVED_TENANTS:
        raise ValueError(f"tenant: {tenant!r} is a reserved topic word")
    return tenant


def sasl_config(
    username: str,
    password: str,
    *,
    protocol: str = "SASL_SSL",
    ca_location: str | None = None,
    mechanism: str = "SCRAM-SHA-512",
) -> dict[str, Any]:
    """The `extra_config` that authenticates a service as its own principal (what `billy
    tenants add` printed): SCRAM over TLS by default; `ca_location` is the PEM file of the CA
    that signed the broker's certificate when it is not in the system's store."""
    if protocol not in ("SASL_SSL", "SASL_PLAINTEXT"):
        raise ValueError(f"protocol: must be SASL_SSL or SASL_PLAINTEXT, got {protocol!r}")
    if not username or not password:
        raise ValueError("username, password: both are needed")
    conf: dict[str, Any] = {
        "security.protocol": protocol,
        "sasl.mechanism": mechanism,
        "sasl.username": username,
        "sasl.password": password,
    }
    if ca_location:
        conf["ssl.ca.location"] = ca_location
    return conf


def merged(base: dict[str, Any], extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """`base` with `extra` over it; raises ValueError naming a protected option in `extra`."""
    conf = dict(base)
    for key, value in (extra or {}).items():
        if key in PROTECTED_OPTIONS:
            raise ValueError(f"extra_config: {key!r} is set by billy and cannot be overridden")
        conf[key] = value
    return conf


def linger_s(conf: Mapping[str, Any]) -> float:
    """The producer's `linger.ms` (or its alias `queue.buffering.max.ms`) in seconds."""
    ms = conf.get("linger.ms", conf.get("queue.buffering.max.ms", 5))
    return float(ms) / 1000


def with_logging(conf: dict[str, Any], logger: logging.Logger) -> dict[str, Any]:
    """Route librdkafka's own log lines and client-level errors (broker down, auth failed) to
    `logger` instead of stderr, unless the service set its own `logger` or `error_cb`.
    librdkafka hands them over during poll and flush."""
    conf.setdefault("logger", logger)
    conf.setdefault("error_cb", lambda err: logger.warning("kafka: %s", err))
    return conf
