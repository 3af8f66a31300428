"""The HTTP read API: wallets, open holds and applied services of one tenant's clients.

    GET /v1/{tenant}/clients/{client_id}/wallet
    GET /v1/{tenant}/clients/{client_id}/holds
    GET /v1/{tenant}/clients/{client_id}/applied-services?from=&to=&cursor=&limit=
    GET /v1/{tenant}/clients/{client_id}/adjustments  the billing team's corrections (audit)
    GET /v1/{tenant}/clients/{client_id}/balance     Balance ids, payers, contracts, invoices
    GET /v1/{tenant}/clients/{client_id}/payments    money received from Balance
    GET /healthz          no auth; 200 when PostgreSQL answers and no probed dependency is down
    GET /livez, /readyz   no auth; this process's roles (billy_core.ops.health), 200 or 503
    GET /metrics          no auth; Prometheus exposition of the default registry
    GET /openapi.json, /docs

Auth: `Authorization: Bearer <token>`; a token reads one tenant: tokens made by `billy tenants
add` / `rotate-token` (table `api_tokens`, stored hashed, billy_core.security.tokens), or the
local ones of `settings.api_tokens` (BILLY_API_TOKENS).
A missing or unknown token is 401. A token only sees its own tenant: any path of another
tenant is 404 with the same body as a client that does not exist, so nothing tells a caller
which other tenants or clients exist. Bad query values are 422 in FastAPI's usual shape
(`detail[].loc` names the parameter). PostgreSQL trouble is 503, never a stack trace.

Endpoints are plain `def`s: FastAPI runs them in its thread pool, each borrowing a
connection from the SQLAlchemy engine passed to `create_app` (its timeouts bound every call).
"""

# No `from __future__ import annotations` here: FastAPI reads the endpoint annotations at
# runtime, and the dependencies they name are local to create_app.
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy.engine import Engine

from billy_core import payment_reads, reads
from billy_core.acts import reads as act_reads
from billy_core.api import models
from billy_core.ops.health import HEALTH
from billy_core.security import tokens as stored_tokens
from billy_core.settings import Settings

__all__ = ["create_app"]

LIMIT_DEFAULT = 100
_NOT_FOUND = "client not found"
_bearer = HTTPBearer(auto_error=False, description="A per-tenant read token")


@dataclass(frozen=True, slots=True)
class ClientScope:
    """A (tenant, client) the caller's token may read."""

    tenant: str
    client_id: str


def _unauthorized() -> HTTPException:
    return HTTPException(
        status_code=401,
        detail="missing or unknown bearer token",
        headers={"WWW-Authenticate": "Bearer"},
    )


def _query_error(param: str, message: str, value: object) -> RequestValidationError:
    """A 422 in the same shape FastAPI gives for a badly typed parameter."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", param), "msg": message, "input": value}]
    )


def create_app(settings: Settings, engine: Engine) -> FastAPI:
    """The read API over `engine` (see billy_core.reads.create_engine_for). The caller owns the
    engine and disposes of it after the app is done."""
    tokens = tuple((token.encode(), tenant) for token, tenant in settings.api_tokens.items())

    def token_tenant(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    ) -> str:
        if credentials is None or not credentials.credentials:
            raise _unauthorized()
        given = credentials.credentials.encode()
        found = None
        # Compare with every token in constant time, so timing does not reveal a prefix.
        for token, tenant in tokens:
            if hmac.compare_digest(given, token):
                found = tenant
        if found is None and credentials.credentials.startswith("bt1."):
            with engine.connect() as conn:  # hashed, compared in constant time
                found = stored_tokens.tenant_of(conn, credentials.credentials)
        if found is None:
            raise _unauthorized()
        return found

    def client_scope(
        tenant: str, client_id: str, allowed: Annotated[str, Depends(token_tenant)]
    ) -> ClientScope:
        if tenant != allowed:
            raise HTTPException(status_code=404, detail=_NOT_FOUND)
        return ClientScope(tenant, client_id)

    Scope = Annotated[ClientScope, Depends(client_scope)]
    errors: dict[int | str, dict[str, Any]] = {
        401: {"model": models.Problem, "description": "Missing or unknown token"},
        404: {"model": models.Problem, "description": "No such client for this token"},
        503: {"model": models.Problem, "description": "PostgreSQL unavailable"},
    }

    app = FastAPI(
        title="billy read API",
        version="1",
        description="Wallets, open holds and applied services of a tenant's clients. "
        "Money is integer minor units with an ISO 4217 currency.",
    )
    app.state.engine = engine

    @app.exception_handler(sa.exc.DBAPIError)
    @app.exception_handler(sa.exc.TimeoutError)
    async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": "database unavailable"})

    @app.get(
        "/v1/{tenant}/clients/{client_id}/wallet",
        response_model=models.Wallet,
        responses=errors,
        tags=["clients"],
    )
    def wallet(scope: Scope) -> models.Wallet:
        with engine.connect() as conn:
            row = reads.get_wallet(conn, scope.tenant, scope.client_id)
        if row is None:
            raise HTTPException(status_code=404, detail=_NOT_FOUND)
        return models.Wallet(tenant=scope.tenant, client_id=scope.client_id, **row)

    @app.get(
        "/v1/{tenant}/clients/{client_id}/holds",
        response_model=models.Holds,
        responses=errors,
        tags=["clients"],
    )
    def holds(scope: Scope) -> models.Holds:
        with engine.connect() as conn:
            if not reads.wallet_exists(conn, scope.tenant, scope.client_id):
                raise HTTPException(status_code=404, detail=_NOT_FOUND)
            rows = reads.open_holds(conn, scope.tenant, scope.client_id)
        return models.Holds(
            tenant=scope.tenant,
            client_id=scope.client_id,
            holds=[models.Hold(**row) for row in rows],
        )

    @app.get(
        "/v1/{tenant}/clients/{client_id}/adjustments",
        response_model=models.Adjustments,
        responses=errors,
        tags=["clients"],
    )
    def adjustments(scope: Scope) -> models.Adjustments:
        """The billing team's corrections of this client: amount, operator, reason (audit)."""
        with engine.connect() as conn:
            if not reads.wallet_exists(conn, scope.tenant, scope.client_id):
                raise HTTPException(status_code=404, detail=_NOT_FOUND)
            rows = reads.adjustments(conn, scope.tenant, scope.client_id)
        return models.Adjustments(
            tenant=scope.tenant,
            client_id=scope.client_id,
            items=[models.Adjustment(**row) for row in rows],
        )

    @app.get(
        "/v1/{tenant}/clients/{client_id}/applied-services",
        response_model=models.AppliedServicesPage,
        responses=errors,
        tags=["clients"],
    )
    def applied_services(
        scope: Scope,
        since: Annotated[
            datetime | None,
            Query(
                alias="from",
                description="ISO 8601, inclusive; without an offset it is UTC",
            ),
        ] = None,
        until: Annotated[
            datetime | None,
            Query(alias="to", description="ISO 8601, exclusive; without an offset it is UTC"),
        ] = None,
        cursor: Annotated[
            str | None,
            Query(description="`next_cursor` of the previous page", max_length=200),
        ] = None,
        limit: Annotated[
            int, Query(ge=1, le=reads.APPLIED_LIMIT_MAX, description="Rows per page")
        ] = LIMIT_DEFAULT,
    ) -> models.AppliedServicesPage:
        since_ms = reads.to_ms(since) if since is not None else None
        until_ms = reads.to_ms(until) if until is not None else None
        if since is not None and since_ms is not None and until_ms is not None:
            if since_ms >= until_ms:
                raise _query_error("from", "from: must be before to", since.isoformat())
        if cursor is not None:
            try:
                reads.decode_cursor(cursor)
            except reads.InvalidCursor as exc:
                raise _query_error("cursor", str(exc), cursor) from None
        with engine.connect() as conn:
            if not reads.wallet_exists(conn, scope.tenant, scope.client_id):
                raise HTTPException(status_code=404, detail=_NOT_FOUND)
            rows, next_cursor = reads.applied_services(
                conn, scope.tenant, scope.client_id, since_ms, until_ms, cursor, limit
            )
        return models.AppliedServicesPage(
            tenant=scope.tenant,
            client_id=scope.client_id,
            items=[models.AppliedService(**row) for row in rows],
            next_cursor=next_cursor,
        )

    @app.get(
        "/v1/{tenant}/clients/{client_id}/balance",
        response_model=models.BalanceView,
        responses=errors,
        tags=["clients"],
    )
    def balance(scope: Scope) -> models.BalanceView:
        with engine.connect() as conn:
            view = reads.balance_view(conn, scope.tenant, scope.client_id)
        if view is None:
            raise HTTPException(status_code=404, detail=_NOT_FOUND)
        return models.BalanceView(tenant=scope.tenant, client_id=scope.client_id, **view)

    @app.get(
        "/v1/{tenant}/clients/{client_id}/payments",
        response_model=models.Payments,
        responses=errors,
        tags=["clients"],
    )
    def client_payments(scope: Scope) -> models.Payments:
        """Money paid to the client's Balance order and credited to the wallet: amount,
        time, Balance's Tid, the invoice when one matched exactly."""
        with engine.connect() as conn:
            rows = payment_reads.payments(conn, scope.tenant, scope.client_id)
        if rows is None:
            raise HTTPException(status_code=404, detail=_NOT_FOUND)
        return models.Payments(
            tenant=scope.tenant,
            client_id=scope.client_id,
            payments=[models.Payment(**row) for row in rows],
        )

    @app.get(
        "/v1/{tenant}/clients/{client_id}/acts",
        response_model=models.ClientActs,
        responses=errors,
        tags=["clients"],
    )
    def client_acts(scope: Scope) -> models.ClientActs:
        """Balance's monthly acts for the client, each with its reconciliation status, and
        every reconciled month (act against billy's ledger)."""
        with engine.connect() as conn:
            view = act_reads.client_acts(conn, scope.tenant, scope.client_id)
        if view is None:
            raise HTTPException(status_code=404, detail=_NOT_FOUND)
        return models.ClientActs(tenant=scope.tenant, client_id=scope.client_id, **view)

    @app.get(
        "/healthz",
        response_model=models.Health,
        responses={503: {"model": models.Health, "description": "PostgreSQL does not answer"}},
        tags=["operations"],
    )
    def healthz(response: Response) -> models.Health:
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except (sa.exc.DBAPIError, sa.exc.TimeoutError):
            response.status_code = 503
            return models.Health(status="unavailable")
        if any(d.up is False for d in HEALTH.dependencies.values()):  # e.g. the broker
            response.status_code = 503
            return models.Health(status="unavailable")
        return models.Health(status="ok")

    @app.get("/livez", tags=["operations"])
    def livez(response: Response) -> dict[str, Any]:
        ok, body = HEALTH.liveness()
        response.status_code = 200 if ok else 503
        return body

    @app.get("/readyz", tags=["operations"])
    def readyz(response: Response) -> dict[str, Any]:
        ok, body = HEALTH.readiness()
        response.status_code = 200 if ok else 503
        return body

    @app.get("/metrics", response_class=Response, tags=["operations"])
    def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return app
