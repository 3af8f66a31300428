"""The read API and the CLI printers against a real, migrated PostgreSQL database made for this
module (rows inserted by SQL): wallets, open holds, applied services with keyset pages and time
ranges, tenant isolation, and that names and emails never come out."""

from __future__ import annotations

import psycopg
import pytest
from fastapi.testclient import TestClient

from billy_core import reads
from billy_core.api import create_app
from billy_core.settings import Settings

pytestmark = pytest.mark.integration

TOKENS = {"tok-autoru": "autoru", "tok-realty": "realty"}
AUTORU = {"Authorization": "Bearer tok-autoru"}
REALTY = {"Authorization": "Bearer tok-realty"}
BASE = "/v1/autoru/clients/c-1"
T0 = 1_714_521_600_000  # 2024-05-01T00:00:00Z

# (command_id, kind, product_id, amount_minor, refund_of, applied_at_ms): 7 rows of c-1,
# two pairs sharing a millisecond so the command_id tie-break is exercised.
APPLIED_ROWS = [
    ("cmd-a", "CHARGE", "vas-top", 9900, None, T0),
    ("cmd-c", "CHARGE", "vas-top", 100, None, T0 + 1000),
    ("cmd-b", "CHARGE", "call", 250, None, T0 + 1000),
    ("cmd-d", "REFUND", "vas-top", 4000, "cmd-a", T0 + 3_600_000),
    ("cmd-e", "CHARGE", "call", 1, None, T0 + 86_400_000),
    ("cmd-g", "CHARGE", "call", 2, None, T0 + 86_400_000),
    ("cmd-f", "CHARGE", "xl", 10**13, None, T0 + 2 * 86_400_000),
]
ORDERED_IDS = ["cmd-a", "cmd-b", "cmd-c", "cmd-d", "cmd-e", "cmd-g", "cmd-f"]


@pytest.fixture(scope="module")
def database_url(database_url):
    """The module's fresh, migrated database (tests/conftest.py), with the rows below."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        _insert_rows(conn)
    return database_url


def _insert_rows(conn: psycopg.Connection) -> None:
    clients = [
        ("autoru", "c-1", "Ivan Secretname", "ivan.secret@example.com"),
        ("autoru", "c-2", "Petr Hiddenov", "petr.hidden@example.com"),
        ("realty", "r-1", "Olga Private", "olga.private@example.com"),
        ("realty", "c-1", "Same Id Other Tenant", "same.id@example.com"),
    ]
    conn.cursor().executemany(
        "INSERT INTO clients (tenant, client_id, name, email) VALUES (%s, %s, %s, %s)", clients
    )
    wallets = [
        ("autoru", "c-1", "RUB", 150_000, 7_000, 7),
        ("autoru", "c-2", "RUB", 0, 0, 1),
        ("realty", "r-1", "USD", 42, 0, 3),
        ("realty", "c-1", "RUB", 999_999, 0, 2),
    ]
    conn.cursor().executemany(
        "INSERT INTO wallets (tenant, client_id, currency, available_minor, held_minor, version,"
        " updated_at) VALUES (%s, %s, %s, %s, %s, %s, '2024-05-01T10:00:00.123Z')",
        wallets,
    )
    holds = [  # tenant, client, hold, product, amount, expires, status, confirmed, settled_by
        ("autoru", "c-1", "h-late", "call", 5_000, T0 + 7_200_000, "open", 0, None),
        ("autoru", "c-1", "h-soon", "call", 2_000, T0 + 60_000, "open", 0, None),
        ("autoru", "c-1", "h-done", "call", 3_000, T0, "confirmed", 1_000, "cmd-x"),
        ("autoru", "c-1", "h-gone", "call", 3_000, T0, "released", 0, "cmd-y"),
        ("autoru", "c-1", "h-expd", "call", 3_000, T0, "expired", 0, "cmd-z"),
        ("autoru", "c-2", "h-other", "call", 1, T0, "open", 0, None),
    ]
    conn.cursor().executemany(
        "INSERT INTO holds (tenant, client_id, hold_id, product_id, amount_minor, currency,"
        " expires_at_ms, status, confirmed_minor, settled_by)"
        " VALUES (%s, %s, %s, %s, %s, 'RUB', %s, %s, %s, %s)",
        holds,
    )
    rows = [("autoru", "c-1", *r) for r in APPLIED_ROWS]
    rows += [("autoru", "c-2", "cmd-other", "CHARGE", "vas", 5, None, T0)]
    rows += [("realty", "c-1", "cmd-realty", "CHARGE", "vas", 5, None, T0)]
    conn.cursor().executemany(
        "INSERT INTO applied_services (tenant, client_id, command_id, kind, product_id,"
        " amount_minor, currency, refund_of, applied_at_ms)"
        " VALUES (%s, %s, %s, %s, %s, %s, 'RUB', %s, %s)",
        [(t, cl, cid, k, p, a, ref, at) for (t, cl, cid, k, p, a, ref, at) in rows],
    )


@pytest.fixture(scope="module")
def settings(database_url) -> Settings:
    return Settings(database_url=database_url, api_tokens=TOKENS)


@pytest.fixture(scope="module")
def client(settings):
    engine = reads.create_engine_for(settings)
    with TestClient(create_app(settings, engine)) as test_client:
        yield test_client
    engine.dispose()


def _ids(response) -> list[str]:
    return [item["command_id"] for item in response.json()["items"]]


# --- wallets -------------------------------------------------------------------------------------


def test_wallet_found(client):
    response = client.get(f"{BASE}/wallet", headers=AUTORU)
    assert response.status_code == 200
    assert response.json() == {
        "tenant": "autoru",
        "client_id": "c-1",
        "currency": "RUB",
        "available_minor": 150_000,
        "held_minor": 7_000,
        "version": 7,
        "updated_at": "2024-05-01T10:00:00.123000Z",
    }


def test_same_client_id_in_another_tenant_is_another_wallet(client):
    autoru = client.get("/v1/autoru/clients/c-1/wallet", headers=AUTORU).json()
    realty = client.get("/v1/realty/clients/c-1/wallet", headers=REALTY).json()
    assert (autoru["available_minor"], realty["available_minor"]) == (150_000, 999_999)


def test_wallet_not_found_looks_like_another_tenants_client(client):
    missing = client.get("/v1/autoru/clients/nobody/wallet", headers=AUTORU)
    foreign = client.get("/v1/realty/clients/r-1/wallet", headers=AUTORU)  # exists, not ours
    assert missing.status_code == foreign.status_code == 404
    assert missing.json() == foreign.json() == {"detail": "client not found"}
    assert client.get("/v1/realty/clients/r-1/wallet", headers=REALTY).status_code == 200


@pytest.mark.parametrize("path", ["wallet", "holds", "applied-services"])
def test_other_tenants_clients_are_404_on_every_endpoint(client, path):
    assert client.get(f"/v1/realty/clients/r-1/{path}", headers=AUTORU).status_code == 404
    assert client.get(f"/v1/autoru/clients/c-1/{path}", headers=REALTY).status_code == 404


@pytest.mark.parametrize("path", ["wallet", "holds", "applied-services"])
def test_names_and_emails_never_come_out(client, path):
    body = client.get(f"{BASE}/{path}", headers=AUTORU).text
    for secret in ("Secretname", "ivan.secret", "example.com"):
        assert secret not in body


# --- holds ---------------------------------------------------------------------------------------


def test_holds_lists_open_holds_soonest_first(client):
    response = client.get(f"{BASE}/holds", headers=AUTORU)
    assert response.status_code == 200
    body = response.json()
    assert [h["hold_id"] for h in body["holds"]] == ["h-soon", "h-late"]
    first = body["holds"][0]
    assert first["amount_minor"] == 2_000 and first["currency"] == "RUB"
    assert first["expires_at_ms"] == T0 + 60_000
    assert first["expires_at"] == "2024-05-01T00:01:00Z"
    assert sum(h["amount_minor"] for h in body["holds"]) == 7_000  # = held_minor


def test_holds_of_a_client_without_holds_and_of_an_unknown_client(client):
    assert client.get("/v1/realty/clients/r-1/holds", headers=REALTY).json()["holds"] == []
    assert client.get("/v1/autoru/clients/nobody/holds", headers=AUTORU).status_code == 404


# --- applied services ----------------------------------------------------------------------------


def test_applied_services_all_in_one_page(client):
    response = client.get(f"{BASE}/applied-services", headers=AUTORU)
    assert response.status_code == 200
    body = response.json()
    assert _ids(response) == ORDERED_IDS
    assert body["next_cursor"] is None
    refund = body["items"][3]
    assert refund == {
        "command_id": "cmd-d",
        "kind": "REFUND",
        "product_id": "vas-top",
        "amount_minor": 4000,
        "currency": "RUB",
        "refund_of": "cmd-a",
        "applied_at": "2024-05-01T01:00:00Z",
        "applied_at_ms": T0 + 3_600_000,
    }
    assert body["items"][-1]["amount_minor"] == 10**13  # exact: no float on the way


def test_pagination_across_three_pages(client):
    pages, cursor = [], None
    for _ in range(3):
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        response = client.get(f"{BASE}/applied-services", params=params, headers=AUTORU)
        assert response.status_code == 200
        pages.append(_ids(response))
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
    assert pages == [ORDERED_IDS[0:3], ORDERED_IDS[3:6], ORDERED_IDS[6:7]]
    assert cursor is None


def test_a_page_that_ends_exactly_at_the_last_row_has_no_cursor(client):
    first = client.get(f"{BASE}/applied-services", params={"limit": 6}, headers=AUTORU).json()
    second = client.get(
        f"{BASE}/applied-services",
        params={"limit": 6, "cursor": first["next_cursor"]},
        headers=AUTORU,
    ).json()
    assert [i["command_id"] for i in second["items"]] == ["cmd-f"]
    assert second["next_cursor"] is None
    exact = client.get(f"{BASE}/applied-services", params={"limit": 7}, headers=AUTORU).json()
    assert exact["next_cursor"] is None


def test_cursor_splits_rows_in_the_same_millisecond(client):
    # cmd-b and cmd-c share T0+1000: a cursor after cmd-b must still return cmd-c.
    first = client.get(f"{BASE}/applied-services", params={"limit": 2}, headers=AUTORU).json()
    assert [i["command_id"] for i in first["items"]] == ["cmd-a", "cmd-b"]
    rest = client.get(
        f"{BASE}/applied-services",
        params={"limit": 1, "cursor": first["next_cursor"]},
        headers=AUTORU,
    ).json()
    assert [i["command_id"] for i in rest["items"]] == ["cmd-c"]


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"from": "2024-05-01T00:00:01Z"}, ORDERED_IDS[1:]),  # inclusive
        ({"to": "2024-05-01T00:00:01Z"}, ["cmd-a"]),  # exclusive
        (
            {"from": "2024-05-01T00:00:01Z", "to": "2024-05-02T00:00:00Z"},
            ["cmd-b", "cmd-c", "cmd-d"],
        ),
        (
            {"from": "2024-05-02T03:00:00+03:00", "to": "2024-05-02T03:00:00.001+03:00"},
            ["cmd-e", "cmd-g"],
        ),
        ({"from": "2024-05-02T00:00:00"}, ["cmd-e", "cmd-g", "cmd-f"]),  # no offset: UTC
        ({"from": "2030-01-01T00:00:00Z"}, []),
    ],
)
def test_time_range_filter(client, params, expected):
    response = client.get(f"{BASE}/applied-services", params=params, headers=AUTORU)
    assert response.status_code == 200
    assert _ids(response) == expected


def test_time_range_and_pages_together(client):
    params = {"from": "2024-05-01T00:00:01Z", "to": "2024-05-03T00:00:00Z", "limit": 2}
    seen, cursor = [], None
    for _ in range(10):
        response = client.get(
            f"{BASE}/applied-services",
            params=params | ({"cursor": cursor} if cursor else {}),
            headers=AUTORU,
        )
        seen += _ids(response)
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == ["cmd-b", "cmd-c", "cmd-d", "cmd-e", "cmd-g"]


def test_applied_services_of_an_unknown_client_is_404(client):
    assert (
        client.get("/v1/autoru/clients/nobody/applied-services", headers=AUTORU).status_code == 404
    )


def test_bad_parameters_are_named_with_a_real_database(client):
    for params, name in [
        ({"limit": 0}, "limit"),
        ({"to": "soon"}, "to"),
        ({"cursor": "@@"}, "cursor"),
    ]:
        response = client.get(f"{BASE}/applied-services", params=params, headers=AUTORU)
        assert response.status_code == 422
        assert [e["loc"] for e in response.json()["detail"]] == [["query", name]]


def test_healthz_ok(client):
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


# --- reads used directly, and the CLI printers ---------------------------------------------------


def test_reads_functions(settings):
    engine = reads.create_engine_for(settings)
    try:
        with engine.connect() as conn:
            assert reads.get_wallet(conn, "autoru", "nobody") is None
            wallet = reads.get_wallet(conn, "autoru", "c-1")
            assert set(wallet) == {
                "currency",
                "available_minor",
                "held_minor",
                "version",
                "updated_at",
            }
            rows, cursor = reads.applied_services(conn, "autoru", "c-1", T0 + 1, None, None, 1000)
            assert [r["command_id"] for r in rows] == ORDERED_IDS[1:] and cursor is None
            with pytest.raises(reads.InvalidCursor):
                reads.applied_services(conn, "autoru", "c-1", None, None, "nope", 10)
    finally:
        engine.dispose()


def test_print_wallet(settings, capsys):
    assert reads.print_wallet(settings, "autoru", "c-1") == 0
    out = capsys.readouterr().out
    assert "wallet autoru/c-1" in out
    assert "available   150000 minor (1500.00 RUB)" in out
    assert "held        7000 minor (70.00 RUB)" in out
    assert "open holds: 2" in out
    assert "h-soon  product call  2000 minor (20.00 RUB)  expires 2024-05-01T00:01:00.000Z" in out
    assert "Secretname" not in out and "example.com" not in out


def test_print_wallet_unknown_client_exits_1(settings, capsys):
    assert reads.print_wallet(settings, "autoru", "nobody") == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no wallet for client 'nobody' of tenant 'autoru'" in captured.err


def test_print_applied_services(settings, capsys):
    code = reads.print_applied_services(
        settings, "autoru", "c-1", "2024-05-01T00:00:01Z", "2024-05-02", 100
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "2024-05-01T00:00:01.000Z  CHARGE  call  250 minor (2.50 RUB)  cmd-b" in out
    assert "REFUND  vas-top  4000 minor (40.00 RUB)  cmd-d  refund of cmd-a" in out
    assert "3 row(s)\n" in out
    assert "total charge 350 minor (3.50 RUB)" in out
    assert "total refund 4000 minor (40.00 RUB)" in out


def test_print_applied_services_limit_says_more_follow(settings, capsys):
    assert reads.print_applied_services(settings, "autoru", "c-1", None, None, 2) == 0
    out = capsys.readouterr().out
    assert "cmd-a" in out and "cmd-b" in out and "cmd-c" not in out
    assert "2 row(s); more follow, raise --limit (now 2)" in out


def test_print_applied_services_unknown_client_exits_1(settings, capsys):
    assert reads.print_applied_services(settings, "autoru", "nobody", None, None, 10) == 1
    assert "no wallet for client 'nobody'" in capsys.readouterr().err
