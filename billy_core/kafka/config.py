"""Kafka client configurations. Every option that correctness depends on is written out here,
once, with the reason; the rest of billy asks these functions and never builds a config itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # only for types: the SDK uses this module without the server's settings
    from billy_core.settings import Settings


class KafkaSettings(Protocol):
    """What a client config needs from settings. billy's `Settings` fits; so does the SDK's
    bootstrap-only stand-in (producers._config), which spares a vertical service
    pydantic-settings and billy's environment."""

    @property
    def kafka_bootstrap(self) -> str: ...


# The contract's partitioner (DESIGN.md, Topics): Kafka's Java default, murmur2 of the key
# bytes, so a JVM service and billy put a client on the same partition. librdkafka's own
# default (consistent_random, CRC32) would not; null keys stay random, as in Java.
JAVA_COMPATIBLE_PARTITIONER = "murmur2_random"


def client_security(settings: KafkaSettings) -> dict[str, Any]:
    """The librdkafka options that authenticate this process (SASL) and check the broker
    (TLS), from settings' `kafka_security_protocol`, `kafka_sasl_*` and `kafka_ssl_ca_location`.

    Every config below includes it; a client built by hand (a test, a tool) adds it too.
    Settings without these fields (the SDK's bootstrap-only stand-in) give {}: a service
    passes its own SASL options as `extra_config` (see `producers.sasl_config`).
    """
    protocol = getattr(settings, "kafka_security_protocol", "PLAINTEXT")
    if protocol == "PLAINTEXT":
        return {}
    conf: dict[str, Any] = {"security.protocol": protocol}
    if protocol.startswith("SASL_"):
        password: Any = getattr(settings, "kafka_sasl_password", None)
        conf["sasl.mechanism"] = getattr(settings, "kafka_sasl_mechanism", "SCRAM-SHA-512")
        conf["sasl.username"] = getattr(settings, "kafka_sasl_username", None)
        # A SecretStr in billy's Settings: its value leaves it only here, into librdkafka.
        conf["sasl.password"] = (
            password.get_secret_value() if hasattr(password, "get_secret_value") else password
        )
    if protocol.endswith("SSL"):
        ca = getattr(settings, "kafka_ssl_ca_location", None)
        if ca:
            conf["ssl.ca.location"] = ca
        # librdkafka checks the broker's name against its certificate by default; said here
        # so nobody turns it off to "fix" a certificate error.
        conf["ssl.endpoint.identification.algorithm"] = "https"
    return conf


def _common(settings: KafkaSettings, client_id: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "client.id": client_id,
        # Two busy cores can stall the broker for seconds; do not give up on it early.
        "socket.timeout.ms": 30_000,
        **client_security(settings),
    }


def ledger_consumer(settings: Settings, client_id: str = "billy-ledger") -> dict[str, Any]:
    return {
        **_common(settings, client_id),
        "group.id": settings.ledger_group,
        # Offsets live in PostgreSQL, advanced in the ledger transaction; Kafka's own
        # commits would be a second, disagreeing source of truth.
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        # Only a partition with no stored offset in PostgreSQL starts here, and then every
        # record must be applied: the earliest one, never "latest".
        "auto.offset.reset": "earliest",
        # Only committed records of transactional producers are commands.
        "isolation.level": "read_committed",
        # Cooperative rebalancing moves only the partitions that change owner.
        "partition.assignment.strategy": "cooperative-sticky",
        # A member silent this long loses its partitions; a zombie is then fenced by the
        # offset compare-and-set, not by this timeout.
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 2_000,
        # One batch (one PostgreSQL transaction per partition) must finish well within this.
        "max.poll.interval.ms": 60_000,
        # Notice new tenants' command topics quickly.
        "topic.metadata.refresh.interval.ms": 5_000,
        "fetch.wait.max.ms": 20,
        "queued.max.messages.kbytes": 32_768,
    }


def plain_producer(settings: KafkaSettings, client_id: str) -> dict[str, Any]:
    """An idempotent producer for commands (the SDK, the sweeper) and the DLQ."""
    return {
        **_common(settings, client_id),
        # Keys land where a Java producer puts them: see JAVA_COMPATIBLE_PARTITIONER.
        "partitioner": JAVA_COMPATIBLE_PARTITIONER,
        # Every in-sync replica has the record before it counts as sent.
        "acks": "all",
        # No duplicates or reordering from the producer's own retries.
        "enable.idempotence": True,
        "max.in.flight.requests.per.connection": 5,
        # Retries end at this bound; a delivery error is then reported, never swallowed.
        "delivery.timeout.ms": 60_000,
        # 5 ms: at 2,000 commands/s into one partition, linger.ms 0 meant a produce request
        # per record and 2-3x the broker's CPU (bench/README.md, issue 12). The SDK's clients
        # linger only while earlier records are in flight (producers/_idle_flush.py).
        "linger.ms": 5,
        "compression.type": "lz4",
    }


def transactional_producer(settings: KafkaSettings, transactional_id: str) -> dict[str, Any]:
    """The relay's producer: outputs and the relay's own position in one Kafka transaction.
    Its keyed outputs use the contract's partitioner too (inherited from plain_producer)."""
    return {
        **plain_producer(settings, transactional_id),
        # A new instance with the same id fences the old one and aborts its open transaction.
        "transactional.id": transactional_id,
        # A transaction left open by a dead relay blocks read_committed readers this long at most.
        "transaction.timeout.ms": 30_000,
        # librdkafka requires a delivery to end (or fail) within the transaction's lifetime.
        "delivery.timeout.ms": 25_000,
        # The relay listens for refusals only (a record too large): a report per delivered
        # record would call into Python three times a command for nothing. The bindings
        # drop the successful ones in C (confluent-kafka-python #84, #140).
        "delivery.report.only.error": True,
        # Uncompressed: the broker decompresses every compressed batch to validate its records
        # (keys of the compacted wallets topic, timestamps), and its CPU is billy's on a small
        # machine: lz4 cost the broker 52-53 µs per command against 28-29 without, and saved
        # the relay nothing measurable (bench/README.md, issue 12). Outputs are ~100-byte
        # records; a deployment with a costly network may set it back per producer.
        "compression.type": "none",
    }


def reader(
    settings: KafkaSettings, group_id: str, client_id: str = "billy-reader"
) -> dict[str, Any]:
    """A consumer that reads outputs the way a tenant's service should: committed data only."""
    return {
        **_common(settings, client_id),
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    }


def admin(settings: KafkaSettings) -> dict[str, Any]:
    return _common(settings, "billy-admin")


def super_admin(settings: Settings) -> dict[str, Any]:
    """An admin client as the super user (`kafka_admin_sasl_*`), for `billy tenants` and
    `billy security`: credentials and ACLs. Without those settings, the process's own
    principal (which then needs ALTER on the cluster)."""
    conf = admin(settings)
    if settings.kafka_admin_sasl_username and settings.kafka_admin_sasl_password:
        conf["sasl.username"] = settings.kafka_admin_sasl_username
        conf["sasl.password"] = settings.kafka_admin_sasl_password.get_secret_value()
    return conf
