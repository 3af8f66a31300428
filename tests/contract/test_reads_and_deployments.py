"""DESIGN.md: the read API is per tenant with a token; the partitioner is Kafka's Java default
for billy's own keyed records; two deployments on one database never see each other's outbox."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.contract import wire
from tests.contract.conftest import Billy, start_billy, stop_billy
from tests.contract.speak import fund, register, results, send_command

pytestmark = pytest.mark.integration


def test_the_read_api_needs_the_tenants_token_and_shows_only_its_clients(billy: Billy) -> None:
    register(billy, "autoru", "r-1")
    fund(billy, "autoru", "r-1", 900)
    path = "/v1/autoru/clients/r-1/wallet"
    assert billy.http(path, tenant=None).status_code == 401
    assert billy.http(path, token="wrong").status_code == 401
    assert billy.http(path, tenant="realty").status_code in (403, 404)
    wallet = billy.http(path).json()
    assert (wallet["available_minor"], wallet["held_minor"], wallet["currency"]) == (900, 0, "RUB")


def test_billys_expire_hold_lands_on_the_clients_own_partition(billy: Billy) -> None:
    """A JVM producer (murmur2) and billy's sweeper put a client's records on one partition."""
    client = "part-7"
    register(billy, "autoru", client)
    fund(billy, "autoru", client, 1_000)
    send_command(
        billy,
        "autoru",
        client,
        "Hold",
        {
            "hold_id": "h",
            "product_id": "p",
            "amount_minor": 10,
            "currency": "RUB",
            "expires_at": int(time.time() * 1000) + 500,
        },
    )

    def expire_records(rs):  # type: ignore[no-untyped-def]
        return [
            m
            for m in rs
            if m.key() == client.encode()
            and wire.decode(m.value(), "Command")["body"][0] == "billy.v1.ExpireHold"
        ]

    records = billy.read("autoru.commands", lambda rs: bool(expire_records(rs)), timeout_s=60)
    mine = [m for m in records if m.key() == client.encode()]
    assert {m.partition() for m in mine} == {wire.java_partition(client.encode(), 3)}


def test_two_deployments_on_one_database_publish_only_their_own(
    billy: Billy,
    stack,
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    other = start_billy(stack, billy.database_url, f"w{uuid.uuid4().hex[:10]}", tmp_path / "b.log")
    try:
        ids = []
        for i in range(20):
            client = f"dep-{i}"
            ids.append(
                send_command(
                    billy,
                    "autoru",
                    client,
                    "RegisterClient",
                    {"name": "D", "email": "d@example.ru", "currency": "RUB"},
                )
            )
        got = results(billy, "autoru.results", {i: 1 for i in ids})
        time.sleep(2.0)  # a second publisher of the same rows would have shown by now
        got = results(billy, "autoru.results", {i: 1 for i in ids})
        assert all(len(got[i]) == 1 for i in ids), {i: len(got[i]) for i in ids}
        assert not other.read("autoru.results", lambda rs: True, timeout_s=5)
    finally:
        stop_billy(other)
