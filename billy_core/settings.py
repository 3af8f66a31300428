"""One validated, frozen settings object, built once at start and passed down.

Every value comes from the environment with the `BILLY_` prefix (or a `.state/stack.env`
file written by `make up`). Names carry their unit last (`_ms`, `_s`, `_max`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
# BILLY_STATE_DIR: a second local stack's folder (deploy/stack.sh); its stack.env is read.
STATE_DIR = Path(os.environ.get("BILLY_STATE_DIR") or REPO_ROOT / ".state")
STACK_ENV_FILE = STATE_DIR / "stack.env"
# The local Kafka super user's credentials (BILLY_KAFKA_ADMIN_SASL_*), written by
# `deploy/stack.sh up` in security mode sasl; only `billy tenants`/`billy security` use them.
ADMIN_ENV_FILE = STATE_DIR / "kafka" / "secrets" / "admin.env"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BILLY_",
        env_file=(STACK_ENV_FILE, ADMIN_ENV_FILE),
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    # --- connections -------------------------------------------------------------------
    kafka_bootstrap: str = Field("127.0.0.1:19092", description="Kafka bootstrap servers")
    database_url: str = Field(
        "postgresql://billy@127.0.0.1:55432/billy", description="PostgreSQL URL (libpq form)"
    )
    # --- kafka security (billy_core.kafka.config.client_security) ------------------------
    # Each process authenticates as its own principal: one per role in production
    # (BILLY_KAFKA_SASL_USERNAME per process); `billy run` and the local stack use one
    # combined local principal (deploy/README.md, "Security").
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = Field(
        "PLAINTEXT", description="Kafka security.protocol"
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism (SASL_* protocols)"
    )
    kafka_sasl_username: str | None = Field(None, description="This process's Kafka principal")
    kafka_sasl_password: SecretStr | None = Field(None, description="Its SCRAM password")
    kafka_ssl_ca_location: str | None = Field(
        None, description="CA certificate (PEM file) that signed the broker's (SSL protocols)"
    )
    kafka_ssl_bootstrap: str | None = Field(
        None, description="The broker's SASL_SSL listener, when another than kafka_bootstrap"
    )
    kafka_admin_sasl_username: str | None = Field(
        None, description="Super user for `billy tenants`/`billy security` (never the roles)"
    )
    kafka_admin_sasl_password: SecretStr | None = Field(None, description="Its password")
    schema_registry_url: str | None = Field(
        None,
        description="When set: Confluent framing via the registry, not single-object encoding",
    )

    # --- topics --------------------------------------------------------------------------
    topic_prefix: str = Field("billy", description="First part of every topic name")
    # NoDecode: BILLY_TENANTS is a plain comma list ("autoru,realty"), not JSON.
    tenants: Annotated[tuple[str, ...], NoDecode] = Field(
        ("autoru", "realty", "cmexpert"), description="Known tenants"
    )
    topic_replication: int = Field(
        1, ge=1, le=7, description="Replicas per topic (3 in production)"
    )
    topic_partitions_max: int | None = Field(
        None, ge=1, le=1024, description="Caps every topic's partitions (small test or demo stacks)"
    )

    # --- ledger consumer ---------------------------------------------------------------
    ledger_group: str = "billy-ledger"
    ledger_workers: int = Field(
        4, ge=1, le=64, description="Partition transactions a ledger runs side by side"
    )
    # 5,000, not 2,000: a backlog is fetched one partition after another, so a bigger poll
    # spans more partitions, whose transactions then overlap (Python in one, PostgreSQL in
    # another). Bench, alternating: 9,139-9,172 against 7,759-8,055 commands/s, peak RSS
    # 134-137 against 123 MiB; 8,000 was slower (the relay's tail after the last batch).
    batch_size_max: int = Field(5000, ge=1, le=100_000, description="Records per poll batch")
    merge_records_max: int = Field(
        1000,
        ge=0,
        le=100_000,
        description="Small partition batches of one topic share a transaction up to this many"
        " records (0: never)",
    )
    batch_wait_ms: int = Field(
        0,
        ge=0,
        le=5000,
        description="How long an idle poll waits for more records after the first (0: none;"
        " under load a poll takes what was fetched meanwhile)",
    )
    dlq_ratio_max: float = Field(
        0.5, gt=0, le=1, description="Share of poison records in a window that stops the consumer"
    )
    dlq_window_min: int = Field(
        200, ge=1, description="Records seen before the poison ratio is judged"
    )
    retry_backoff_max_s: float = Field(10.0, gt=0)

    # --- relay ---------------------------------------------------------------------------
    relay_instance: int = Field(0, ge=0, description="This relay's index among relay_instances")
    relay_instances: int = Field(1, ge=1, le=256, description="Relays that split the outbox shards")
    relay_batch_max: int = Field(5000, ge=1, le=100_000)
    relay_idle_sleep_ms: int = Field(
        200,
        ge=1,
        le=5000,
        description="Longest idle wait between outbox reads (engines wake the relay at once)",
    )

    # --- hold expiry -------------------------------------------------------------------------
    hold_sweep_interval_s: float = Field(2.0, gt=0, le=3600)

    # --- consumption reports and acts (the sweeper role; jobs.consumption, jobs.acts) -------
    consumption_interval_s: float = Field(
        60.0, gt=0, le=86400, description="How often the sweeper reports consumption to Balance"
    )
    consumption_settle_s: float = Field(
        10.0,
        ge=0,
        le=3600,
        description="Revenue is reported only once this old: a ledger transaction started"
        " before a report's cutoff must have committed by then",
    )
    acts_interval_s: float = Field(
        3600.0, gt=0, le=86400, description="How often the sweeper looks for last month's acts"
    )

    # --- metrics ---
    metrics_port: int | None = Field(
        None, ge=1, le=65535, description="Serve /metrics here (roles without the api role)"
    )

    # --- api -------------------------------------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = Field(8080, ge=1, le=65535)
    api_tokens: dict[str, str] = Field(
        default_factory=dict, description='Per-tenant read tokens, JSON: {"<token>": "<tenant>"}'
    )

    # --- balance -----------------------------------------------------------------------------
    # Defaults reach a local balance-emulator (its default port, its seeded products and
    # payment systems); production sets every one of these.
    balance_url: str = Field(
        "http://127.0.0.1:18090/xmlrpc", description="Balance's XML-RPC endpoint (path /xmlrpc)"
    )
    balance_operator_uid: int = Field(
        1, ge=1, le=10**18, description="Operator uid, first argument of Balance's write methods"
    )
    balance_service_id: int = Field(
        1000, ge=1, le=2**31 - 1, description="billy's ServiceID: owns every billy order"
    )
    balance_service_token: str = Field(
        "billy", min_length=1, max_length=256, description="Service token for GetClientActs"
    )
    balance_product_id: int = Field(
        503162, ge=1, le=2**31 - 1, description="The order's product: money, priced 1 per unit"
    )
    balance_firm_id: int = Field(1, ge=1, le=2**31 - 1, description="Firm of billy's contracts")
    balance_individual_paysys_id: int = Field(
        1001, ge=1, le=2**31 - 1, description="Payment system for invoices to individuals (ph)"
    )
    balance_legal_entity_paysys_id: int = Field(
        1003, ge=1, le=2**31 - 1, description="Payment system for invoices to companies (ur)"
    )
    balance_connect_timeout_s: float = Field(
        3.0, gt=0, le=60, description="Longest wait to connect to Balance"
    )
    balance_timeout_s: float = Field(
        30.0, gt=0, le=600, description="Longest wait for each read or write of a Balance call"
    )
    balance_breaker_failures_max: int = Field(
        5, ge=1, le=1000, description="Consecutive transport failures that open the breaker"
    )
    balance_breaker_cooldown_s: float = Field(
        30.0, gt=0, le=3600, description="How long an open breaker refuses before one trial call"
    )

    # --- balance gateway ------------------------------------------------------------------------
    balance_gateway: bool = Field(
        True,
        description="Balance-bound commands go through the gateway (false: billy without"
        " Balance: RegisterClient answered at once, the others REJECTED unsupported)",
    )
    gateway_group_name: str | None = Field(
        None, description="The gateway's consumer group (default: <topic_prefix>-gateway)"
    )
    gateway_workers: int = Field(
        4, ge=1, le=64, description="Clients whose Balance requests are performed side by side"
    )
    gateway_call_attempts_max: int = Field(
        8, ge=1, le=100, description="Attempts of one Balance call before the request waits"
    )
    gateway_retry_max_s: float = Field(
        60.0, gt=0, le=3600, description="Longest wait before a waiting request is tried again"
    )
    gateway_deadline_s: float = Field(
        3600.0, gt=0, description="After this long unreachable, a request is answered balance_error"
    )
    gateway_unclear_settle_s: float = Field(
        60.0,
        ge=0,
        le=3600,
        description="After a creating Balance call ends unclear, wait this long before looking"
        " for what it made (it may still be running in Balance)",
    )
    gateway_idle_s: float = Field(
        0.1, gt=0, le=10, description="How often an idle performer looks for new requests"
    )

    # --- intake (Balance notifications; intake/) ------------------------------------------
    intake_host: str = Field("127.0.0.1", description="Where the intake listens for Balance")
    intake_port: int = Field(8081, ge=1, le=65535, description="The intake's HTTP port")
    intake_path: str = Field(
        "/balance", pattern=r"^/[A-Za-z0-9._~/-]*$", description="Base path of the notify URL"
    )
    balance_notify_secret: SecretStr | None = Field(
        None, description="HMAC key of X-Balance-Signature (shared with Balance); none: refuse all"
    )
    intake_allow_cidrs: tuple[str, ...] = Field(
        ("127.0.0.0/8", "::1/128"),
        description="Source addresses Balance calls from (JSON list of CIDRs)",
    )
    intake_kafka_timeout_s: float = Field(
        10.0, gt=0, le=120, description="Longest wait for Kafka to confirm a notification"
    )
    intake_body_bytes_max: int = Field(
        1_048_576, ge=1024, le=64 * 1_048_576, description="Largest notification body taken"
    )

    @field_validator("intake_allow_cidrs")
    @classmethod
    def _check_cidrs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        import ipaddress

        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:
                raise ValueError(f"intake_allow_cidrs: {cidr!r} is not a CIDR ({exc})") from None
        return value

    @model_validator(mode="after")
    def _check_kafka_security(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"kafka_sasl_username: kafka_security_protocol {self.kafka_security_protocol}"
                " needs BILLY_KAFKA_SASL_USERNAME and BILLY_KAFKA_SASL_PASSWORD"
            )
        return self

    @property
    def gateway_group(self) -> str:
        return self.gateway_group_name or f"{self.topic_prefix}-gateway"

    @field_validator("tenants", mode="before")
    @classmethod
    def _split_tenants(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(t.strip() for t in value.split(",") if t.strip())
        return value

    @field_validator("tenants")
    @classmethod
    def _check_tenants(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for tenant in value:
            if not tenant.replace("-", "").isalnum() or tenant != tenant.lower():
                raise ValueError(f"tenants: {tenant!r} must be lower-case letters, digits or '-'")
            if tenant in ("admin", "internal"):
                raise ValueError(f"tenants: {tenant!r} is a reserved topic word")
        return value

    @property
    def sqlalchemy_url(self) -> str:
        """The same database through SQLAlchemy's psycopg 3 dialect (for Alembic)."""
        url = self.database_url
        for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        raise ValueError(f"database_url: must start with postgresql://, got {url.split(':')[0]!r}")


def load() -> Settings:
    """Build the settings once; a bad value raises pydantic's ValidationError naming the field."""
    return Settings()
