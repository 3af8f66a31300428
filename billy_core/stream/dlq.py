"""Dead-letter copies: the original record exactly (key, value, a null stays null, its own
headers in order), plus billy's headers saying why and where from.

Header names are part of the contract (`schemas/topics/dlq.json`, DESIGN.md, README).
"""

from __future__ import annotations

from billy_core.stream.outbox import Outbox
from billy_core.stream.record import Poison

REASON = "billy-dlq-reason"
SOURCE_TOPIC = "billy-source-topic"
SOURCE_PARTITION = "billy-source-partition"
SOURCE_OFFSET = "billy-source-offset"
SOURCE_TIMESTAMP = "billy-source-timestamp-ms"
HEADERS = (REASON, SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET, SOURCE_TIMESTAMP)


def dead_letter(outbox: Outbox, dlq_topic: str, poison: Poison) -> None:
    r = poison.record
    outbox.add(
        dlq_topic,
        r.key,
        r.value,
        f"dlq:{r.topic}:{r.partition}:{r.offset}",
        (
            *r.headers,
            (REASON, poison.reason.encode()),
            (SOURCE_TOPIC, r.topic.encode()),
            (SOURCE_PARTITION, str(r.partition).encode()),
            (SOURCE_OFFSET, str(r.offset).encode()),
            (SOURCE_TIMESTAMP, str(r.timestamp_ms).encode()),
        ),
    )
