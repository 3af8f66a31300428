"""The intake without services: signatures, both notification forms, every field's refusal,
the acceptor's verdicts (forged, unmapped, Balance or Kafka away), the source allow-list, and
the payment event's wire format."""

from __future__ import annotations

import json
import xmlrpc.client
from decimal import Decimal

import pytest
from pydantic import SecretStr, ValidationError

from billy_core.balance import BalanceUnavailable, OrderInfo
from billy_core.balance.notifications import (
    NotificationError,
    parse_json,
    parse_xmlrpc,
    read_order,
    sign,
    signature_valid,
    xmlrpc_fault,
    xmlrpc_success,
)
from billy_core.payment_events import (
    PaymentEvent,
    PaymentEventError,
    decode,
    encode,
    is_payment_event,
)
from billy_core.settings import Settings
from intake.accept import Acceptor, Verdict
from intake.publisher import NotDurable
from intake.server import IntakeServer

SECRET = b"s3cret"
GOOD = {
    "ServiceID": 1000,
    "ServiceOrderID": 777,
    "Tid": "1764151200165001",
    "Signal": 1,
    "SignalDescription": "Order balance have been changed",
    "ConsumeQty": "1500",
    "ConsumeSum": "1500.00",
    "ConsumeAmount": "1500.00",
    "ConsumeCurrency": "RUB",
    "CompletionQty": "0",
}


# --- signature ---------------------------------------------------------------------------


def test_signature_is_the_hmac_of_the_exact_body():
    body = json.dumps([GOOD]).encode()
    header = sign(SECRET, body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert signature_valid(SECRET, body, header)
    assert not signature_valid(SECRET, body + b" ", header)  # one byte more
    assert not signature_valid(b"other", body, header)
    assert not signature_valid(SECRET, body, None)
    assert not signature_valid(SECRET, body, "")
    assert not signature_valid(SECRET, body, header.upper())
    assert not signature_valid(b"", body, sign(b"", body))  # no secret: refuse everything
    assert not signature_valid(SECRET, body, "sha256=é")  # never raises on odd bytes


# --- the two forms --------------------------------------------------------------------------


def test_json_form_takes_an_array_of_structs():
    assert parse_json(json.dumps([GOOD, GOOD]).encode()) == [GOOD, GOOD]
    assert parse_json(json.dumps(GOOD).encode()) == [GOOD]  # a lone struct
    for body, field in ((b"{", "body"), (b"[]", "body"), (b"[1]", "body[0]"), (b"\xff", "body")):
        with pytest.raises(NotificationError, match=field.replace("[", r"\[")):
            parse_json(body)


def test_xmlrpc_form_reads_method_and_struct():
    body = xmlrpc.client.dumps((GOOD,), "BalanceClient.NotifyOrder2").encode()
    method, params = parse_xmlrpc(body)
    assert method == "NotifyOrder2" and params == (GOOD,)
    with pytest.raises(NotificationError, match="methodName"):
        parse_xmlrpc(xmlrpc.client.dumps((GOOD,), "Other.NotifyOrder2").encode())
    with pytest.raises(NotificationError, match="body"):
        parse_xmlrpc(b"<methodCall><broken>")
    (answer,), _ = xmlrpc.client.loads(xmlrpc_success())
    assert answer == [0, "ok"]
    with pytest.raises(xmlrpc.client.Fault, match="nope"):
        xmlrpc.client.loads(xmlrpc_fault(403, "nope"))


# --- fields ----------------------------------------------------------------------------------


def test_a_good_struct_is_read_exactly():
    n = read_order(GOOD, 1000)
    assert (n.service_id, n.service_order_id, n.tid) == (1000, 777, 1764151200165001)
    assert (n.consume_sum_minor, n.currency) == (150_000, "RUB")
    assert read_order({**GOOD, "ServiceOrderID": "777", "ConsumeCurrency": "RUR"}, 1000) == n


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"ServiceID": 7}, "ServiceID"),
        ({"ServiceID": "x"}, "ServiceID"),
        ({"ServiceOrderID": None}, "ServiceOrderID"),
        ({"ServiceOrderID": 0}, "ServiceOrderID"),
        ({"ServiceOrderID": True}, "ServiceOrderID"),
        ({"Tid": "12a"}, "Tid"),
        ({"Tid": "0"}, "Tid"),
        ({"Tid": "1" * 39}, "Tid"),
        ({"Tid": "١٢"}, "Tid"),  # other scripts' digits
        ({"Tid": None}, "Tid"),
        ({"Signal": 2}, "Signal"),
        ({"ConsumeSum": "12.345"}, "ConsumeSum"),  # a fraction of a kopeck
        ({"ConsumeSum": 1.5}, "ConsumeSum"),  # a float
        ({"ConsumeSum": "-1.00"}, "ConsumeSum"),
        ({"ConsumeSum": "1e3"}, "ConsumeSum"),
        ({"ConsumeCurrency": "XXX"}, "ConsumeCurrency"),
        ({"ConsumeCurrency": None}, "ConsumeCurrency"),
        ({"ConsumeQty": "many"}, "ConsumeQty"),
        ({"CompletionQty": 0.5}, "CompletionQty"),
    ],
)
def test_every_bad_field_is_refused_by_name(change, field):
    with pytest.raises(NotificationError, match=field):
        read_order({**GOOD, **change}, 1000)


def test_a_missing_consume_sum_is_refused():
    struct = dict(GOOD)
    del struct["ConsumeSum"]
    with pytest.raises(NotificationError, match="ConsumeSum: missing"):
        read_order(struct, 1000)


# --- the acceptor ------------------------------------------------------------------------


class Fakes:
    def __init__(self) -> None:
        self.owners_map = {777: ("autoru", "c-1")}
        self.balance_sum: dict[int, int] = {777: 150_000}
        self.published: list[PaymentEvent] = []
        self.balance_down = self.kafka_down = self.db_down = False

    def owners(self, ids):
        if self.db_down:
            raise OSError("connection refused")
        return {i: self.owners_map[i] for i in ids if i in self.owners_map}

    def orders_info(self, ids):
        if self.balance_down:
            raise BalanceUnavailable("GetOrdersInfo: down")
        return [
            OrderInfo(i, Decimal(0), self.balance_sum[i], Decimal(0), 0, "RUB")
            for i in ids
            if i in self.balance_sum
        ]

    def publish(self, events):
        if self.kafka_down:
            raise NotDurable("no broker")
        self.published.extend(events)


@pytest.fixture
def fakes():
    return Fakes()


def _acceptor(f: Fakes) -> Acceptor:
    return Acceptor(1000, frozenset({"autoru"}), f, f, f)


def test_a_confirmed_notification_is_published_for_its_client(fakes):
    answer = _acceptor(fakes).accept([GOOD])
    assert (answer.verdict, answer.outcomes) == (Verdict.ACCEPTED, ("accepted",))
    (e,) = fakes.published
    assert (e.tenant, e.client_id, e.service_order_id, e.tid, e.order_sum_minor) == (
        "autoru",
        "c-1",
        777,
        1764151200165001,
        150_000,
    )
    assert e.key == "autoru/c-1" and e.command_id == "billy-payment:777:1764151200165001"


def test_a_sum_below_balances_is_confirmed_one_above_is_forged(fakes):
    fakes.balance_sum[777] = 200_000  # Balance moved on since: an older snapshot is true
    assert _acceptor(fakes).accept([GOOD]).outcomes == ("accepted",)
    fakes.published.clear()
    fakes.balance_sum[777] = 100_000
    answer = _acceptor(fakes).accept([GOOD])
    # Forged: answered with success (accept's module doc), nothing published.
    assert (answer.verdict, answer.outcomes, fakes.published) == (
        Verdict.ACCEPTED,
        ("forged",),
        [],
    )
    del fakes.balance_sum[777]  # Balance does not know the order at all
    assert _acceptor(fakes).accept([GOOD]).outcomes == ("forged",)


def test_a_delivery_mixing_forged_and_true_publishes_only_the_true(fakes):
    fakes.owners_map[778] = ("autoru", "c-2")
    fakes.balance_sum[778] = 10
    other = {**GOOD, "ServiceOrderID": 778}
    answer = _acceptor(fakes).accept([GOOD, other])
    assert answer.outcomes == ("accepted", "forged")
    assert [e.client_id for e in fakes.published] == ["c-1"]


@pytest.mark.parametrize(
    ("breakage", "outcome"),
    [
        ("db_down", "unmapped"),
        ("balance_down", "balance_unavailable"),
        ("kafka_down", "kafka_unavailable"),
    ],
)
def test_trouble_is_answered_with_a_failure_so_balance_retries(fakes, breakage, outcome):
    setattr(fakes, breakage, True)
    answer = _acceptor(fakes).accept([GOOD])
    assert (answer.verdict, answer.outcomes) == (Verdict.UNAVAILABLE, (outcome,))


def test_an_order_billy_does_not_know_or_of_another_tenant_is_retried(fakes):
    assert _acceptor(fakes).accept([{**GOOD, "ServiceOrderID": 9}]).verdict is Verdict.UNAVAILABLE
    fakes.owners_map[777] = ("realty", "c-1")  # not a tenant of this deployment
    assert _acceptor(fakes).accept([GOOD]).verdict is Verdict.UNAVAILABLE
    assert fakes.published == []


def test_one_bad_struct_refuses_the_delivery_and_names_the_field(fakes):
    answer = _acceptor(fakes).accept([GOOD, {**GOOD, "Tid": "x"}])
    assert answer.verdict is Verdict.INVALID and "Tid" in answer.message
    assert fakes.published == []


# --- source addresses and settings ---------------------------------------------------------


def test_the_allow_list_takes_cidrs_and_refuses_the_rest():
    s = Settings(intake_allow_cidrs=("10.1.0.0/16", "::1/128"), balance_notify_secret="x")
    server = IntakeServer(s)
    assert server.allowed("10.1.2.3") and server.allowed("::1")
    assert server.allowed("::ffff:10.1.2.3")  # an IPv4 peer on a dual-stack socket
    assert not server.allowed("10.2.0.1") and not server.allowed("127.0.0.1")
    assert not server.allowed("not-an-address")
    assert server.secret == b"x"
    assert isinstance(s.balance_notify_secret, SecretStr)  # never printed in a repr


def test_a_bad_cidr_is_refused_at_start_naming_the_setting():
    with pytest.raises(ValidationError, match="intake_allow_cidrs"):
        Settings(intake_allow_cidrs=("10.0.0.0/33",))


# --- the payment event -------------------------------------------------------------------


def test_the_payment_event_round_trips_and_is_told_from_an_outcome():
    e = PaymentEvent("autoru", "c/1", 777, 12345678901234567890, 150_000, "RUB", 1)
    data = encode(e)
    assert decode(data) == e and is_payment_event(data)
    assert not is_payment_event(b'{"v":1,"status":"APPLIED"}') and not is_payment_event(None)
    for bad, field in (
        (data.replace(b'"v":1', b'"v":2'), "v/type"),
        (data.replace(b'"tid":"12345678901234567890"', b'"tid":12'), "tid"),
        (data.replace(b'"order_sum_minor":150000', b'"order_sum_minor":-1'), "order_sum_minor"),
        (b"[]", "value"),
        (None, "value"),
    ):
        with pytest.raises(PaymentEventError, match=field):
            decode(bad)


def test_the_ledger_tells_payments_from_outcomes_on_the_shared_topic():
    from billy_core.kafka.topics import TopicNames
    from billy_core.stream import Poison, Record
    from consumers.gateway.wire import BalanceOutcome, encode_outcome
    from consumers.ledger.balance_intents import OutcomeItem
    from consumers.ledger.handler import LedgerHandler
    from consumers.ledger.payments import PaymentItem

    topics = TopicNames("t")
    handler = LedgerHandler(topics, frozenset({"autoru"}), "g")

    def record(key: str, value: bytes) -> Record:
        return Record(topics.internal_events, 0, 1, 1, key.encode(), value)

    event = PaymentEvent("autoru", "c-1", 777, 5, 100, "RUB", 1)
    assert isinstance(handler.decode(record("autoru/c-1", encode(event))), PaymentItem)
    outcome = BalanceOutcome(
        "autoru", "c-1", "cmd", "UpsertPayer", "APPLIED", "ok", "m", {"type": "payment"}
    )  # a detail that happens to look like the payment mark is still an outcome
    assert isinstance(handler.decode(record("autoru/c-1", encode_outcome(outcome))), OutcomeItem)
    poison = handler.decode(record("autoru/c-2", encode(event)))  # the key of another client
    assert isinstance(poison, Poison) and poison.reason.startswith("key")
    broken = handler.decode(record("autoru/c-1", b'{"type":"payment","v":1}'))
    assert isinstance(broken, Poison) and broken.reason.startswith("value")


def test_a_topup_outcome_carries_the_order_sum_and_older_outcomes_still_read():
    import json as _json

    import pytest as _pytest

    from consumers.gateway.wire import BalanceOutcome, WireError, decode_outcome, encode_outcome

    o = BalanceOutcome(
        "autoru", "c-1", "t-1", "TransferCredit", "APPLIED", "ok", "m", credit_minor=100,
        order_sum_minor=1300,
    )  # fmt: skip
    assert decode_outcome(encode_outcome(o)).order_sum_minor == 1300
    older = _json.loads(encode_outcome(o))
    del older["order_sum_minor"]  # written by a gateway before this field existed
    assert decode_outcome(_json.dumps(older).encode()).order_sum_minor is None
    older["order_sum_minor"] = -1
    with _pytest.raises(WireError, match="order_sum_minor"):
        decode_outcome(_json.dumps(older).encode())
