"""The producer SDK without a broker: local validation names the parameter and sends nothing;
delivery failures and timeouts are raised, never lost; nothing waits past its timeout."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from billy_core.commands import Charge, ExpireHold, InvalidCommand

# Submodules, not `from producers import ...`: an editable install made before
# producers/__init__.py existed maps `producers` as a namespace package (see
# test_package_exports_its_public_api, which loads __init__.py by its path).
from producers._idle_flush import IdleFlush
from producers.client import BillyAdminClient, BillyClient
from producers.errors import DeliveryError
from producers.reader import ResultReader

# Nothing listens on port 1: the client starts, and every connection is refused.
NOWHERE = "127.0.0.1:1"
LATER = datetime.now(UTC) + timedelta(hours=1)


@pytest.fixture
def billy():
    client = BillyClient(NOWHERE, "autoru")
    yield client
    client._producer.purge()  # drop whatever a test left queued; the broker is not there


@pytest.fixture
def admin():
    client = BillyAdminClient(NOWHERE, operator="a.petrova")
    yield client
    client._producer.purge()


BAD_CALLS = [
    # (method, args, kwargs, the parameter the message must name)
    ("charge", ("c-1", "vas", -100, "RUB"), {}, "amount_minor"),
    ("charge", ("c-1", "vas", 0, "RUB"), {}, "amount_minor"),
    ("charge", ("c-1", "vas", 10.5, "RUB"), {}, "amount_minor"),
    ("charge", ("c-1", "vas", True, "RUB"), {}, "amount_minor"),
    ("charge", ("c-1", "vas", 10**13 + 1, "RUB"), {}, "amount_minor"),
    ("charge", ("c-1", "vas", 100, "rub"), {}, "currency"),
    ("charge", ("c-1", "vas", 100, "RUR"), {}, "currency"),
    ("charge", ("c-1", "", 100, "RUB"), {}, "product_id"),
    ("charge", ("", "vas", 100, "RUB"), {}, "client_id"),
    ("charge", ("c" * 65, "vas", 100, "RUB"), {}, "client_id"),
    ("charge", ("c-1", "vas", 100, "RUB"), {"command_id": "x" * 65}, "command_id"),
    ("charge", ("c-1", "vas", 100, "RUB"), {"command_id": ""}, "command_id"),
    ("register_client", ("c-1", "", "a@b.c"), {}, "name"),
    ("register_client", ("c-1", "Ivan", "not-an-email"), {}, "email"),
    ("register_client", ("c-1", "Ivan", "a@b.c", "XXX"), {}, "currency"),
    ("hold", ("c-1", "", "call", 100, "RUB", LATER), {}, "hold_id"),
    ("hold", ("c-1", "h-1", "", 100, "RUB", LATER), {}, "product_id"),
    ("hold", ("c-1", "h-1", "call", -1, "RUB", LATER), {}, "amount_minor"),
    ("hold", ("c-1", "h-1", "call", 100, "RUB", datetime(2030, 1, 1)), {}, "expires_at"),
    ("hold", ("c-1", "h-1", "call", 100, "RUB", 1_900_000_000_000), {}, "expires_at"),
    ("confirm_hold", ("c-1", "h-1", 0), {}, "amount_minor"),
    (
        "confirm_hold",
        (
            "c-1",
            "",
        ),
        {},
        "hold_id",
    ),
    ("release_hold", ("c-1", "x" * 65), {}, "hold_id"),
    ("refund", ("c-1", ""), {}, "charge_command_id"),
    ("refund", ("c-1", "cmd-1", -5), {}, "amount_minor"),
]


@pytest.mark.parametrize(
    "method, args, kwargs, field",
    BAD_CALLS,
    ids=[f"{m}-{f}-{i}" for i, (m, _, _, f) in enumerate(BAD_CALLS)],
)
def test_bad_argument_raises_naming_the_parameter_and_sends_nothing(
    billy, method, args, kwargs, field
):
    with pytest.raises(ValueError) as info:
        getattr(billy, method)(*args, **kwargs)
    assert isinstance(info.value, InvalidCommand)
    message = str(info.value)
    assert message.startswith(f"{method}: {field}:"), message
    assert billy.pending() == 0


@pytest.mark.parametrize(
    "args, field",
    [
        (("autoru", "c-1", 0, "RUB", "typo"), "amount_minor"),
        (("autoru", "c-1", -(10**13) - 1, "RUB", "typo"), "amount_minor"),
        (("autoru", "c-1", 100, "usd", "typo"), "currency"),
        (("autoru", "c-1", 100, "RUB", ""), "reason"),
        (("autoru", "", 100, "RUB", "typo"), "client_id"),
    ],
)
def test_adjust_validation_names_the_parameter(admin, args, field):
    with pytest.raises(InvalidCommand, match=f"^adjust: {field}:"):
        admin.adjust(*args)
    assert admin.pending() == 0


def test_adjust_may_be_negative(admin):
    command_id = admin.adjust("autoru", "c-1", -500, "RUB", "double charge on 2024-05-01")
    assert len(command_id) == 32 and admin.pending() == 1


@pytest.mark.parametrize("body", [ExpireHold("h-1")])
def test_send_refuses_bodies_that_are_not_tenant_commands(billy, body):
    with pytest.raises(InvalidCommand, match="^send: body: ExpireHold"):
        billy.send("c-1", body)


def test_send_refuses_adjust_on_the_tenant_topic(billy):
    from billy_core.commands import Adjust

    with pytest.raises(InvalidCommand, match="^send: body: Adjust"):
        billy.send("c-1", Adjust(100, "RUB", "x", "ops"))


@pytest.mark.parametrize("tenant", ["", "Autoru", "auto ru", "admin", "internal", "a/b", None])
def test_bad_tenant_is_refused_at_construction(tenant):
    with pytest.raises(ValueError, match="^tenant:"):
        BillyClient(NOWHERE, tenant)
    with pytest.raises(ValueError, match="^tenant:"):
        ResultReader(NOWHERE, tenant, "group")


@pytest.mark.parametrize(
    "key", ["acks", "enable.idempotence", "bootstrap.servers", "transactional.id"]
)
def test_extra_config_cannot_weaken_delivery(key):
    with pytest.raises(ValueError, match=f"^extra_config: '{key}'"):
        BillyClient(NOWHERE, "autoru", extra_config={key: "0"})


@pytest.mark.parametrize("key", ["isolation.level", "enable.auto.commit", "group.id"])
def test_extra_config_cannot_weaken_the_reader(key):
    with pytest.raises(ValueError, match=f"^extra_config: '{key}'"):
        ResultReader(NOWHERE, "autoru", "group", extra_config={key: "x"})


def test_extra_config_is_passed_to_librdkafka():
    # librdkafka itself rejects an unknown option: proof the extras reach it.
    from confluent_kafka import KafkaException

    with pytest.raises(KafkaException, match="no.such.option"):
        BillyClient(NOWHERE, "autoru", extra_config={"no.such.option": "1"})


def test_command_ids_are_uuid4_hex_unless_given(billy):
    first = billy.charge("c-1", "vas", 100, "RUB")
    second = billy.charge("c-1", "vas", 100, "RUB")
    assert first != second
    assert len(first) == 32 and int(first, 16) >= 0
    assert billy.charge("c-1", "vas", 100, "RUB", command_id="my-id-1") == "my-id-1"
    assert billy.pending() == 3


def test_a_send_kicks_the_idle_flush_only_with_nothing_in_flight(billy):
    """The client tells its idle flush whether anything was in flight before each send: only
    before the first (nothing listens here, so the first stays in flight)."""

    class Kicks:
        count = 0

        def sent(self, nothing_in_flight: bool) -> None:
            self.count += nothing_in_flight

    billy._idle_flush.close()
    billy._idle_flush = kicks = Kicks()
    for _ in range(3):
        billy.charge("c-1", "vas", 100, "RUB")
    assert kicks.count == 1 and billy.pending() == 3


class _Flushes:
    """A producer stand-in for IdleFlush: counts its flushes, each 'delivering' at once."""

    def __init__(self) -> None:
        self.calls = 0
        self.called = threading.Event()

    def flush(self, timeout: float) -> int:
        self.calls += 1
        self.called.set()
        return 0


def test_idle_flush_flushes_only_a_record_sent_after_a_quiet_linger():
    producer = _Flushes()
    idle = IdleFlush(producer, "t", linger_s=3600)  # nothing is quiet for an hour after
    try:
        idle.sent(nothing_in_flight=True)  # the first record: quiet since ever
        assert producer.called.wait(10)
        producer.called.clear()
        idle.sent(nothing_in_flight=True)  # sent within linger.ms of the last: lingers
        idle.sent(nothing_in_flight=False)
        assert not producer.called.wait(0.5)
    finally:
        idle.close()
    assert producer.calls == 1
    never_quiet = IdleFlush(producer, "t", linger_s=0)
    try:
        never_quiet.sent(nothing_in_flight=False)  # something in flight: lingers
        assert not producer.called.wait(0.5)
    finally:
        never_quiet.close()


def test_flush_timeout_raises_with_the_count_in_flight(billy):
    billy.charge("c-1", "vas", 100, "RUB")
    started = time.monotonic()
    with pytest.raises(DeliveryError) as info:
        billy.flush(timeout_s=0.3)
    assert time.monotonic() - started < 3
    assert info.value.undelivered == 1
    assert "still in flight" in str(info.value)


def test_failed_delivery_is_raised_by_wait_naming_the_command():
    # delivery.timeout.ms bounds how long librdkafka tries; then the record fails for good.
    client = BillyClient(NOWHERE, "autoru", extra_config={"delivery.timeout.ms": 500})
    started = time.monotonic()
    with pytest.raises(DeliveryError) as info:
        client.charge("c-1", "vas", 100, "RUB", command_id="cmd-lost", wait=True, timeout_s=10)
    assert time.monotonic() - started < 8
    assert info.value.command_ids == ["cmd-lost"]
    failure = info.value.failures[0]
    assert failure.topic == "billy.autoru.commands" and failure.key == "c-1"
    assert "cmd-lost" in str(info.value)
    client.flush(timeout_s=1)  # reported once: nothing left to raise


def test_failures_of_async_sends_are_kept_for_the_next_flush():
    client = BillyClient(NOWHERE, "autoru", extra_config={"delivery.timeout.ms": 500})
    ids = [client.charge("c-1", "vas", 100 + i, "RUB") for i in range(3)]
    with pytest.raises(DeliveryError) as info:
        client.flush(timeout_s=10)
    assert sorted(info.value.command_ids) == sorted(ids)
    assert info.value.undelivered == 0


def test_exiting_the_context_flushes_and_raises():
    with pytest.raises(DeliveryError):
        with BillyClient(NOWHERE, "autoru", extra_config={"delivery.timeout.ms": 500}) as client:
            client.release_hold("c-1", "h-1")


def test_admin_key_is_tenant_slash_client(admin):
    sent = []
    admin._producer = _Recorder(sent)
    admin.adjust("realty", "r-9", 100, "RUB", "goodwill")
    assert sent[0][0] == "billy.admin.commands"
    assert sent[0][1] == b"realty/r-9"


def test_tenant_topic_and_key(billy):
    sent = []
    billy._producer = _Recorder(sent)
    billy.send("c-7", Charge("vas", 1, "RUB"))
    assert sent == [("billy.autoru.commands", b"c-7")]
    assert BillyClient(NOWHERE, "realty", prefix="t1").topic == "t1.realty.commands"


class _Recorder:
    """Stands in for confluent_kafka.Producer where only the topic and key matter."""

    def __init__(self, sent):
        self.sent = sent

    def produce(self, topic, value, key, on_delivery):
        self.sent.append((topic, key))

    def poll(self, timeout):
        return 0

    def flush(self, timeout):
        return 0

    def purge(self):
        pass


def test_wait_for_times_out_when_the_broker_is_away():
    reader = ResultReader(NOWHERE, "autoru", "g-unit")
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="'cmd-1' on billy.autoru.results within 0.5s"):
            reader.wait_for("cmd-1", timeout_s=0.5)
        assert time.monotonic() - started < 3
        assert reader.poll(0.2) is None
        assert list(ResultReader(NOWHERE, "autoru", "g2", idle_timeout_s=0.2)) == []
    finally:
        reader.close()


def test_admin_results_reader_reads_the_admin_topic():
    reader = ResultReader.for_admin(NOWHERE, "billing-team", prefix="t2")
    try:
        assert reader.topic == "t2.admin.results"
    finally:
        reader.close()


def test_package_exports_its_public_api():
    import importlib.util
    from pathlib import Path

    import producers.client

    init = Path(producers.client.__file__).with_name("__init__.py")
    spec = importlib.util.spec_from_file_location("producers_init_under_test", init)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert {"BillyClient", "BillyAdminClient", "ResultReader", "DeliveryError"} <= set(
        module.__all__
    )
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    assert module.BillyClient is BillyClient
    assert "BillyClient(" in module.__doc__ and "wait_for(" in module.__doc__


def test_reader_joins_no_group_until_polled_and_checks_lookback():
    reader = ResultReader(NOWHERE, "autoru", "g-lazy")
    try:
        # A reader used only for wait_for must hold no partitions of the service's group.
        assert not reader._subscribed
        with pytest.raises(TimeoutError):
            reader.wait_for("cmd-1", timeout_s=0.2)
        assert not reader._subscribed
        reader.commit()  # never polled: nothing to commit, no error
        assert reader.poll(0.1) is None and reader._subscribed
    finally:
        reader.close()
    with pytest.raises(ValueError, match="^lookback_s:"):
        ResultReader(NOWHERE, "autoru", "g", lookback_s=-1)
