"""The read API and billy_core.reads without a database: auth, tenant isolation, parameter
validation, cursors, time parsing, health and metrics when PostgreSQL is unreachable, and the
server's start and clean stop. Tests with a real database: tests/integration/test_api.py."""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
from fastapi.testclient import TestClient

from billy_core import reads
from billy_core.api import create_app
from billy_core.api.server import serve
from billy_core.settings import Settings

# Nothing listens on port 1: connections are refused at once.
UNREACHABLE_DB = "postgresql://billy@127.0.0.1:1/none"
TOKENS = {"tok-autoru": "autoru", "tok-realty": "realty"}
WALLET = "/v1/autoru/clients/c-1/wallet"
APPLIED = "/v1/autoru/clients/c-1/applied-services"
AUTORU = {"Authorization": "Bearer tok-autoru"}


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(database_url=UNREACHABLE_DB, api_tokens=TOKENS)


@pytest.fixture(scope="module")
def client(settings):
    engine = reads.create_engine_for(settings)
    with TestClient(create_app(settings, engine)) as test_client:
        yield test_client
    engine.dispose()


def _loc(response) -> list[list]:
    return [e["loc"] for e in response.json()["detail"]]


# --- auth and tenant isolation -----------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic dG9rLWF1dG9ydTo="},
        {"Authorization": "tok-autoru"},
        {"Authorization": "Bearer tok-autoruX"},
    ],
    ids=["missing", "unknown", "empty", "basic", "no-scheme", "prefix-match"],
)
@pytest.mark.parametrize("path", [WALLET, "/v1/autoru/clients/c-1/holds", APPLIED])
def test_missing_or_unknown_token_is_401(client, headers, path):
    response = client.get(path, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"detail": "missing or unknown bearer token"}


def test_401_comes_before_parameter_validation(client):
    assert client.get(APPLIED + "?limit=0").status_code == 401


@pytest.mark.parametrize(
    "path",
    [
        "/v1/realty/clients/c-1/wallet",
        "/v1/realty/clients/c-1/holds",
        "/v1/realty/clients/c-1/applied-services",
        "/v1/no-such-tenant/clients/c-1/wallet",
        # Bad parameters on another tenant's path still say 404: nothing is validated there.
        "/v1/realty/clients/c-1/applied-services?limit=0&from=yesterday",
    ],
)
def test_other_tenant_is_404_without_touching_the_database(client, path):
    # The database is unreachable: a 404 here proves the answer did not depend on its data.
    response = client.get(path, headers=AUTORU)
    assert response.status_code == 404
    assert response.json() == {"detail": "client not found"}


# --- parameter validation ------------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["0", "1001", "-5", "ten", "1.5"])
def test_bad_limit_is_422_naming_limit(client, limit):
    response = client.get(f"{APPLIED}?limit={limit}", headers=AUTORU)
    assert response.status_code == 422
    assert _loc(response) == [["query", "limit"]]


@pytest.mark.parametrize("param", ["from", "to"])
@pytest.mark.parametrize("value", ["yesterday", "2024-13-01T00:00:00Z", "2024-05-01T25:00"])
def test_bad_datetime_is_422_naming_the_parameter(client, param, value):
    response = client.get(APPLIED, params={param: value}, headers=AUTORU)
    assert response.status_code == 422
    assert _loc(response) == [["query", param]]


@pytest.mark.parametrize(
    "since, until",
    [
        ("2024-05-02T00:00:00Z", "2024-05-01T00:00:00Z"),
        ("2024-05-01T03:00:00+03:00", "2024-05-01T00:00:00Z"),
    ],
    ids=["after", "equal-in-utc"],
)
def test_from_not_before_to_is_422_naming_from(client, since, until):
    response = client.get(APPLIED, params={"from": since, "to": until}, headers=AUTORU)
    assert response.status_code == 422
    assert _loc(response) == [["query", "from"]]
    assert "before" in response.json()["detail"][0]["msg"]


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!!",
        "bm90IGpzb24",  # base64 of "not json"
        reads.encode_cursor(1, "x")[:-3],  # truncated
        "W251bGwsIngiXQ",  # [null,"x"]
        "x" * 201,  # longer than any cursor
    ],
)
def test_bad_cursor_is_422_naming_cursor(client, cursor):
    response = client.get(APPLIED, params={"cursor": cursor}, headers=AUTORU)
    assert response.status_code == 422
    assert _loc(response) == [["query", "cursor"]]


# --- database unavailable, health, metrics, OpenAPI --------------------------------------------


def test_database_unavailable_is_503_without_details(client):
    response = client.get(WALLET, headers=AUTORU)
    assert response.status_code == 503
    assert response.json() == {"detail": "database unavailable"}


def test_healthz_reports_the_database_without_auth(client):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}


def test_metrics_is_prometheus_text_without_auth(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE python_info gauge" in response.text or "# HELP" in response.text


def test_openapi_documents_paths_and_bearer_auth(client):
    spec = client.get("/openapi.json").json()
    assert set(spec["paths"]) >= {
        "/v1/{tenant}/clients/{client_id}/wallet",
        "/v1/{tenant}/clients/{client_id}/holds",
        "/v1/{tenant}/clients/{client_id}/applied-services",
        "/healthz",
        "/metrics",
    }
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    params = spec["paths"]["/v1/{tenant}/clients/{client_id}/applied-services"]["get"]["parameters"]
    names = {p["name"] for p in params}
    assert {"from", "to", "cursor", "limit"} <= names
    wallet = spec["components"]["schemas"]["Wallet"]["properties"]
    assert wallet["available_minor"]["type"] == "integer"
    assert client.get("/docs").status_code == 200


# --- reads helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pair", [(0, "a"), (1_714_521_600_123, "cmd-1"), (2**53, "x" * 64), (5, "a:b/c=")]
)
def test_cursor_round_trips(pair):
    cursor = reads.encode_cursor(*pair)
    assert cursor.isascii() and "=" not in cursor
    assert reads.decode_cursor(cursor) == pair


@pytest.mark.parametrize(
    "cursor", ["", "%%%", "W10", "WzEsMiwzXQ", "Wy0xLCJhIl0", "WzEsIiJd", "W3RydWUsImEiXQ"]
)
def test_decode_cursor_rejects_foreign_values(cursor):
    # "", not base64, [], [1,2,3], [-1,"a"], [1,""], [true,"a"]
    with pytest.raises(reads.InvalidCursor, match="cursor"):
        reads.decode_cursor(cursor)


def test_milliseconds_and_datetimes_round_trip_exactly():
    for ms in (0, 1, 999, 1_714_521_600_123, 253_402_300_799_999):
        assert reads.to_ms(reads.ms_to_datetime(ms)) == ms
    moscow = timezone(timedelta(hours=3))
    assert reads.to_ms(datetime(2024, 5, 1, 3, tzinfo=moscow)) == reads.to_ms(
        datetime(2024, 5, 1, tzinfo=UTC)
    )
    assert reads.to_ms(datetime(2024, 5, 1)) == reads.to_ms(datetime(2024, 5, 1, tzinfo=UTC))


def test_parse_iso_names_the_option():
    assert reads.parse_iso("2024-05-01", "--from") == datetime(2024, 5, 1, tzinfo=UTC)
    assert reads.parse_iso("2024-05-01T12:00:00Z", "--to").tzinfo is not None
    with pytest.raises(ValueError, match="^--to: not an ISO 8601 time: 'tomorrow'"):
        reads.parse_iso("tomorrow", "--to")


def test_applied_services_rejects_limit_out_of_range_before_querying():
    for limit in (0, 1001, True):
        with pytest.raises(ValueError, match="^limit:"):
            reads.applied_services(None, "autoru", "c-1", None, None, None, limit)


# --- CLI argument errors (exit 2 before any database access) -------------------------------------


@pytest.mark.parametrize(
    "since, until, limit, option",
    [
        ("yesterday", None, 10, "--from"),
        (None, "2024-02-30", 10, "--to"),
        ("2024-05-02", "2024-05-01", 10, "--from"),
        (None, None, 0, "--limit"),
    ],
)
def test_print_applied_services_bad_arguments_exit_2(settings, capsys, since, until, limit, option):
    code = reads.print_applied_services(settings, "autoru", "c-1", since, until, limit)
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"billy: {option}:"), err


def test_print_wallet_database_unreachable_exits_1(settings, capsys):
    assert reads.print_wallet(settings, "autoru", "c-1") == 1
    assert "cannot read PostgreSQL" in capsys.readouterr().err


# --- server --------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_runs_until_stop_then_returns():
    settings = Settings(database_url=UNREACHABLE_DB, api_port=_free_port(), api_tokens=TOKENS)
    stop = threading.Event()
    failures: list[BaseException] = []

    def run():
        try:
            serve(settings, stop)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{settings.api_port}"
    deadline = time.monotonic() + 10
    while True:
        try:
            response = httpx.get(f"{url}/metrics", timeout=1)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the API did not start in 10 s"
            time.sleep(0.05)
    assert response.status_code == 200
    assert httpx.get(f"{url}{WALLET}", timeout=5).status_code == 401
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive(), "serve() did not return after stop was set"
    assert failures == []
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/metrics", timeout=1)


def test_serve_on_a_busy_port_raises_instead_of_exiting():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        settings = Settings(database_url=UNREACHABLE_DB, api_port=busy.getsockname()[1])
        with pytest.raises(RuntimeError, match="cannot serve"):
            serve(settings, threading.Event())
