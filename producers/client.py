"""Send commands to billy: `BillyClient` for a tenant's own commands topic,
`BillyAdminClient` for the billing team's `Adjust` corrections on the admin topic.

Every method builds a `billy_core.commands.Command`, checks it with
`billy_core.commands.validate` (a bad argument raises `InvalidCommand`, a ValueError whose
message names the parameter, and nothing is sent), encodes it with billy's codec, hands it
to an idempotent librdkafka producer (config: `billy_core.kafka.config.plain_producer`) and
returns the `command_id`. Keep that id: it is the idempotency key, and the Result on
`billy.<tenant>.results` carries it (see `producers.reader.ResultReader`).

Delivery is asynchronous. A failed delivery is never lost: it is kept and raised, as a
`DeliveryError` listing every failed record, by the next `flush()` (or by a method called
with `wait=True`, which flushes before returning). Resending a failed command with the same
`command_id` is always safe.

Batching: a record sent on an idle client (nothing in flight, nothing sent for `linger.ms`)
goes out at once; otherwise librdkafka lingers `linger.ms` (5 ms) for more records to batch
with (`producers._idle_flush`).

Blocking: a send blocks only when librdkafka's local queue is full, for at most
`enqueue_timeout_s`, then raises DeliveryError. `flush(timeout_s)` blocks at most
`timeout_s`. The clients are thread-safe.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol, Self

from confluent_kafka import KafkaError, Message, Producer

from billy_core import commands as c
from billy_core.kafka import config as kafka_config
from billy_core.kafka.topics import TopicNames
from producers import _config
from producers._idle_flush import IdleFlush
from producers.errors import DeliveryError, DeliveryFailure

__all__ = ["BillyAdminClient", "BillyClient", "CommandCodec"]

FLUSH_TIMEOUT_S = 30.0
"""Default time a `wait=True` send or `flush()` waits for the broker."""
ENQUEUE_TIMEOUT_S = 10.0
"""Default time a send waits for room in librdkafka's local queue."""

log = logging.getLogger("billy.producer")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class CommandCodec(Protocol):
    """What the clients need from a codec: `billy_core.codec` (the default, single-object
    encoding) and `billy_core.codec.codec_for(registry_url)` fit."""

    def encode_command(self, command: c.Command) -> bytes: ...


def _default_codec() -> CommandCodec:
    import billy_core.codec as codec  # module functions: the process-wide single-object codec

    return codec


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _datetime_ms(value: datetime, name: str) -> int:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise c.InvalidCommand(f"{name}: must be a timezone-aware datetime, got {value!r}")
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


class _Sender:
    """The producer, delivery bookkeeping and flush shared by both clients."""

    def __init__(
        self,
        bootstrap: str,
        client_name: str,
        extra_config: Mapping[str, Any] | None,
        codec: CommandCodec | None,
        enqueue_timeout_s: float,
    ) -> None:
        if not enqueue_timeout_s > 0:
            raise ValueError("enqueue_timeout_s: must be positive")
        settings = _config.settings_for(bootstrap)
        conf = _config.merged(kafka_config.plain_producer(settings, client_name), extra_config)
        self._producer = Producer(_config.with_logging(conf, log))
        self._codec = codec if codec is not None else _default_codec()
        self._enqueue_timeout_s = enqueue_timeout_s
        self._failures: list[DeliveryFailure] = []
        # Our records not yet reported; librdkafka's len() also counts protocol requests.
        self._in_flight = 0
        self._lock = threading.Lock()
        # A record sent on an idle client goes out at once, not after linger.ms.
        self._idle_flush = IdleFlush(self._producer, client_name, _config.linger_s(conf))

    # --- sending -----------------------------------------------------------------------------

    def _produce(
        self, topic: str, key: str, command: c.Command, wait: bool, timeout_s: float
    ) -> str:
        value = self._codec.encode_command(command)
        command_id = command.command_id

        def delivered(err: KafkaError | None, msg: Message) -> None:
            with self._lock:
                self._in_flight -= 1
                if err is not None:
                    self._failures.append(
                        DeliveryFailure(command_id, topic, key, str(err), bool(err.retriable()))
                    )

        # Reports first: whether anything is still in flight decides whether to linger.
        self._producer.poll(0)
        deadline = time.monotonic() + self._enqueue_timeout_s
        while True:
            try:
                with self._lock:  # counted first: the report may come from another thread's poll
                    nothing_in_flight = self._in_flight == 0
                    self._in_flight += 1
                self._producer.produce(topic, value=value, key=key.encode(), on_delivery=delivered)
                break
            except BaseException as exc:
                with self._lock:
                    self._in_flight -= 1
                if not isinstance(exc, BufferError):
                    raise
                # The local queue is full: serve delivery reports to make room, up to a bound.
                if time.monotonic() >= deadline:
                    raise DeliveryError(
                        [],
                        note=f"local queue full for {self._enqueue_timeout_s}s; "
                        f"{command_id} was not sent",
                    ) from None
                self._producer.poll(0.1)
        self._idle_flush.sent(nothing_in_flight and not wait)
        if wait:
            self.flush(timeout_s)
        return command_id

    def flush(self, timeout_s: float = FLUSH_TIMEOUT_S) -> None:
        """Wait up to `timeout_s` for every record sent so far; raise DeliveryError listing
        each record that failed since the last flush, or how many are still in flight."""
        self._producer.flush(timeout_s)
        with self._lock:
            failures, self._failures = self._failures, []
            undelivered = self._in_flight
        if failures or undelivered:
            raise DeliveryError(failures, undelivered)

    def poll(self, timeout_s: float = 0.0) -> int:
        """Serve delivery reports; failures are kept for the next flush. Returns events served."""
        return self._producer.poll(timeout_s)

    def pending(self) -> int:
        """Records sent through this client whose delivery is not yet reported."""
        with self._lock:
            return self._in_flight

    def close(self, timeout_s: float = FLUSH_TIMEOUT_S) -> None:
        """Flush (raising DeliveryError as `flush` does). The client may not be used after."""
        self._idle_flush.close()
        self.flush(timeout_s)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:  # do not hide the exception in flight; still try to deliver what was sent
            try:
                self.close()
            except DeliveryError as err:
                log.error("billy producer: on exit after an error: %s", err)

    @staticmethod
    def _checked(command: c.Command, method: str, *, admin: bool) -> c.Command:
        try:
            c.validate(command, admin=admin)
        except c.InvalidCommand as exc:
            # Name the parameter as the caller wrote it: "amount_minor", not "body.amount_minor".
            message = str(exc).removeprefix("body.")
            raise c.InvalidCommand(f"{method}: {message}") from None
        return command


class BillyClient(_Sender):
    """Send one tenant's commands to `<prefix>.<tenant>.commands`, keyed by client id.

    `extra_config` adds librdkafka options such as SASL/SCRAM credentials::

        {"security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512",
         "sasl.username": "autoru", "sasl.password": "..."}

    Options billy's guarantees rest on (acks, idempotence, ...) cannot be overridden.
    Every sending method returns the command_id (a fresh uuid4 hex unless `command_id=` is
    given; pass your own to make a retry after a crash idempotent).
    """

    def __init__(
        self,
        bootstrap: str,
        tenant: str,
        *,
        prefix: str = "billy",
        extra_config: Mapping[str, Any] | None = None,
        codec: CommandCodec | None = None,
        enqueue_timeout_s: float = ENQUEUE_TIMEOUT_S,
    ) -> None:
        self.tenant = _config.check_tenant(tenant)
        self.topic = TopicNames(prefix).commands(tenant)
        super().__init__(bootstrap, f"billy-sdk-{tenant}", extra_config, codec, enqueue_timeout_s)

    def send(
        self,
        client_id: str,
        body: c.Body,
        *,
        command_id: str | None = None,
        wait: bool = False,
        timeout_s: float = FLUSH_TIMEOUT_S,
    ) -> str:
        """Validate and send any tenant command body; return its command_id.

        With `wait=True`, flush before returning: raises DeliveryError if this record (or any
        earlier one not yet reported) failed or is not acknowledged within `timeout_s`.
        The typed methods below take the same keyword-only `command_id`, `wait`, `timeout_s`.
        """
        return self._send("send", client_id, body, command_id, wait, timeout_s)

    def register_client(
        self,
        client_id: str,
        name: str,
        email: str,
        currency: str = "RUB",
        *,
        command_id: str | None = None,
        wait: bool = False,
        timeout_s: float = FLUSH_TIMEOUT_S,
    ) -> str:
        """Register the client (billy makes its Balance client and order). Name and email
        travel only in this command's value; billy keeps them in PostgreSQL only."""
        body = c.RegisterClient(name, email, currency)
        return self._send("register_client", client_id, body, command_id, wait, timeout_s)

    def charge(
        self,
        client_id: str,
        product_id: str,
        amount_minor: int,
        currency: str,
        *,
        command_id: str | None = None,
        wait: bool = False,
        timeout_s: float = FLUSH_TIMEOUT_S,
    ) -> str:
        """Charge `amount_minor` (> 0, minor units) for `product_id` from the wallet."""
        body = c.Charge(product_id, amount_minor, currency)
        return self._send("charge", client_id, body, command_id, wait, timeout_s)

    def hold(
        self,
        client_id: str,
        hold_id: str,
        product_id: str,
        amount_minor: int,
        currency: str,
        expires_at: datetime,
        *,
        command_id: str | None = None,
        wait: bool = False,
        timeout_s: float = FLUSH_TIMEOUT_S,
    ) -> str:
        """Move `amount_minor` from available to held until confirmed, released or
        `expires_at` (a timezone-aware datetime; billy releases the hold then)."""
        expires_at_ms = _datetime_ms(expires_at, "hold: expires_at")
        body = c.Hold(hold_id, product_id, amount_minor, currency, expires_at_ms)
        return self._send("hold", client_id, body, command_id, wait, timeout_s)

    def confirm_hold(
        self,
        client_id: str,
        hold_id: str,
        amount_minor: int | None = None,
        *,
        command_id: str | None = None,
        wait: bool = False,
        timeout_s: float = FLUSH_TIMEOUT_S,
    ) -> str:
        """Charge all of the hold (`amount_minor=None`) or part of it; the rest is returned."""
        body = c.ConfirmHold(hold_id, amount_minor)
        return self._send("confirm_hold", client_id, body, command_id, wait, timeout_s)

    def release_hold(
        self,
        client_id: str,
        hold_id: str,
        *,
        command_id: str | None = None,
        wait: bool = False,
        timeout_s: float = FLUSH_TIMEOUT_S,
    ) -> str:
        """Return all of the hold to the wallet."""
        body = c.ReleaseHold(hold_id)
        return self._send("release_hold", client_id, body, command_id, wait, timeout_s)

    def refund(
        self,
        client_id: str,
        charge_command_id: str,
        amount_minor: int | None = None,
        *,
        command_id: str | None = None,
        wait: bool = False,
        timeout_s: float = FLUSH_TIMEOUT_S,
    ) -> str:
        """Refund a Charge or ConfirmHold command: all that is left (`None`) or part."""
        body = c.Refund(charge_command_id, amount_minor)
        return self._send("refund", client_id, body, command_id, wait, timeout_s)

    def _send(
        self,
        method: str,
        client_id: str,
        body: c.Body,
        command_id: str | None,
        wait: bool,
        timeout_s: float,
    ) -> str:
        if isinstance(body, (c.Adjust, c.ExpireHold)):
            raise c.InvalidCommand(f"{method}: body: {type(body).__name__} is not a tenant command")
        command = c.Command(
            command_id=uuid.uuid4().hex if command_id is None else command_id,
            client_id=client_id,
            issued_at_ms=_now_ms(),
            body=body,
        )
        self._checked(command, method, admin=False)
        return self._produce(self.topic, client_id, command, wait, timeout_s)


class BillyAdminClient(_Sender):
    """The billing team's corrections: `Adjust` commands on `<prefix>.admin.commands`,
    keyed `<tenant>/<client id>`. Needs a Kafka principal allowed to write that topic.

    `operator` (a login, 1..64 characters) is stored with every correction it sends, with
    the reason: the audit trail."""

    def __init__(
        self,
        bootstrap: str,
        *,
        operator: str,
        prefix: str = "billy",
        extra_config: Mapping[str, Any] | None = None,
        codec: CommandCodec | None = None,
        enqueue_timeout_s: float = ENQUEUE_TIMEOUT_S,
    ) -> None:
        self.topic = TopicNames(prefix).admin_commands
        self.operator = operator
        super().__init__(bootstrap, "billy-sdk-admin", extra_config, codec, enqueue_timeout_s)

    def adjust(
        self,
        tenant: str,
        client_id: str,
        amount_minor: int,
        currency: str,
        reason: str,
        *,
        command_id: str | None = None,
        wait: bool = False,
        timeout_s: float = FLUSH_TIMEOUT_S,
    ) -> str:
        """Correct a wallet by `amount_minor` (may be negative, never zero); `reason` is
        kept in the ledger. Returns the command_id."""
        _config.check_tenant(tenant)
        command = c.Command(
            command_id=uuid.uuid4().hex if command_id is None else command_id,
            client_id=client_id,
            issued_at_ms=_now_ms(),
            body=c.Adjust(amount_minor, currency, reason, self.operator),
        )
        self._checked(command, "adjust", admin=True)
        return self._produce(self.topic, f"{tenant}/{client_id}", command, wait, timeout_s)
