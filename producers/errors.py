"""What the producer SDK raises.

::

    ValueError
    └── InvalidCommand (billy_core.commands)  a bad argument, found before anything is sent;
                                               the message names the parameter
    ValueError                                 a bad constructor argument (tenant, extra_config)
    TimeoutError                               ResultReader.wait_for: no result in time
    BillyClientError                           base of the SDK's own errors
    ├── DeliveryError                          records the broker did not take, or a flush or
    │                                          enqueue that ran out of time; lists what failed
    └── ResultDecodeError                      a result record that cannot be decoded (billy
                                               and this SDK disagree on the schema)

confluent_kafka.KafkaException comes through unchanged for fatal client errors (for
example failed SASL authentication reported as fatal by librdkafka).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BillyClientError", "DeliveryError", "DeliveryFailure", "ResultDecodeError"]


class BillyClientError(Exception):
    """Base of the producer SDK's own errors."""


@dataclass(frozen=True, slots=True)
class DeliveryFailure:
    """One record the broker did not take."""

    command_id: str
    topic: str
    key: str
    error: str
    retriable: bool

    def __str__(self) -> str:
        return f"{self.command_id} -> {self.topic} [key {self.key}]: {self.error}"


class DeliveryError(BillyClientError):
    """Records were not delivered: `failures` were refused or timed out in the client;
    `undelivered` were still in flight when the flush timeout ran out (their fate is then
    reported by a later `flush`). Sending a failed command again with the same command_id
    is safe: billy applies a command id once."""

    def __init__(
        self, failures: list[DeliveryFailure], undelivered: int = 0, note: str = ""
    ) -> None:
        self.failures = list(failures)
        self.undelivered = undelivered
        parts = []
        if note:
            parts.append(note)
        if self.failures:
            listed = "; ".join(str(f) for f in self.failures[:20])
            more = f" (and {len(self.failures) - 20} more)" if len(self.failures) > 20 else ""
            parts.append(f"{len(self.failures)} record(s) failed: {listed}{more}")
        if undelivered:
            parts.append(f"{undelivered} record(s) still in flight after the timeout")
        super().__init__("; ".join(parts) or "delivery failed")

    @property
    def command_ids(self) -> list[str]:
        return [f.command_id for f in self.failures]


class ResultDecodeError(BillyClientError):
    """A record on the results topic that is not a Result this SDK can read. The reader has
    moved past it; reading again continues with the next record."""

    def __init__(self, topic: str, partition: int, offset: int, reason: str) -> None:
        self.topic, self.partition, self.offset, self.reason = topic, partition, offset, reason
        super().__init__(f"undecodable result at {topic}[{partition}]@{offset}: {reason}")
