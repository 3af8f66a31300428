"""Create billy's topics from their descriptions in `schemas/topics/*.json`. Idempotent.

A description names the topic as deployed with the default prefix ("billy.wallets",
"billy.{tenant}.commands"); `{tenant}` expands to every configured tenant. Existing topics are
left alone (their partition count is never changed: that would move clients to other
partitions and break per-client order).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # defined here; confluent_kafka.admin re-exports it

from billy_core.codec.schemas import schemas_dir
from billy_core.kafka import config as kafka_config
from billy_core.kafka.logs import KAFKA_LOG
from billy_core.settings import Settings

TOPICS_DIR = schemas_dir() / "topics"  # the repository's, or the installed wheel's copy
DEFAULT_PREFIX = "billy"
_NOT_AUTHORIZED = (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def topic_specs(settings: Settings, topics_dir: Path = TOPICS_DIR) -> list[TopicSpec]:
    specs = []
    for path in sorted(topics_dir.glob("*.json")):
        try:
            desc = json.loads(path.read_text())
            name, partitions = desc["name"], int(desc["partitions"])
            config = {k: str(v) for k, v in desc.get("config", {}).items()}
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path.name}: not JSON ({exc})") from None
        except KeyError as exc:
            raise ValueError(f"{path.name}: field {exc.args[0]!r} is missing") from None
        except (TypeError, ValueError, AttributeError):
            raise ValueError(
                f"{path.name}: partitions must be an integer, config an object"
            ) from None
        if not name.startswith(DEFAULT_PREFIX + "."):
            raise ValueError(f"{path.name}: name must start with '{DEFAULT_PREFIX}.', got {name!r}")
        if partitions < 1:
            raise ValueError(f"{path.name}: partitions must be >= 1, got {partitions}")
        name = settings.topic_prefix + name[len(DEFAULT_PREFIX) :]
        if settings.topic_partitions_max:
            partitions = min(partitions, settings.topic_partitions_max)
        names = [name.format(tenant=t) for t in settings.tenants] if "{tenant}" in name else [name]
        specs += [TopicSpec(n, partitions, config) for n in names]
    return specs


def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> list[str]:
    """Create every missing topic; return one line per topic saying what happened.

    Raises KafkaException when the broker refuses for another reason than "exists" or "not
    authorized" (a role's least-privilege principal may not create topics).
    """
    admin = AdminClient(kafka_config.admin(settings), logger=KAFKA_LOG)
    specs = topic_specs(settings)
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [s for s in specs if s.name not in existing]
    lines = [f"exists  {s.name}" for s in specs if s.name in existing]
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(
                    s.name,
                    num_partitions=s.partitions,
                    replication_factor=settings.topic_replication,
                    config=s.config,
                )
                for s in missing
            ],
            operation_timeout=timeout_s,
            request_timeout=timeout_s,
        )
        for spec in missing:
            try:
                futures[spec.name].result(timeout_s)
                lines.append(f"created {spec.name} ({spec.partitions} partitions)")
            except KafkaException as exc:
                code = exc.args[0].code()
                if code in _NOT_AUTHORIZED:
                    # A role's own principal sees and may create only what it needs; the
                    # topics are made by `billy security init` / `billy tenants add`.
                    lines.append(f"not authorized to create {spec.name}: left to the admin")
                    continue
                if code != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
                lines.append(f"exists  {spec.name}")
    return lines
