"""One XML-RPC call to Balance over HTTP, with explicit timeouts, a circuit breaker and every
outcome sorted into the error tree (`billy_core.balance.errors`).

| what happened | raised | breaker |
| --- | --- | --- |
| an answer | (returns the value) | success |
| an XML-RPC fault | BalanceFault (parsed faultString) | success: Balance is alive |
| connect refused / connect timeout / no free connection / bad URL | BalanceUnavailable | failure |
| read or write timeout, reset, closed without an answer | BalanceOutcomeUnknown | failure |
| HTTP status other than 200, body not XML-RPC | BalanceBadAnswer | failure |
| breaker open | BalanceCircuitOpen, before any I/O | - |

Connections are not kept alive between calls: a pooled connection that the server closed
while idle fails on its next use after the request may have left, which would turn an
ordinary "not sent" into an "outcome unknown". A new connection per call costs a handshake,
which is nothing next to a Balance call.
"""

from __future__ import annotations

import logging
import time
import xmlrpc.client
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final, Literal, cast
from xml.parsers.expat import ExpatError

import httpx

from billy_core.balance.breaker import CircuitBreaker
from billy_core.balance.errors import (
    BalanceBadAnswer,
    BalanceCircuitOpen,
    BalanceFault,
    BalanceOutcomeUnknown,
    BalanceUnavailable,
    BalanceValueError,
)
from billy_core.balance.faults import fault_from_text

log = logging.getLogger("billy.balance")

METHOD_PREFIX: Final = "Balance2."

CallOutcome = Literal["ok", "fault", "unavailable", "unknown", "circuit_open"]
CallObserver = Callable[[str, CallOutcome, float], None]
"""Told of every call: (method without prefix, outcome, seconds). Must not block; what it
raises is logged and swallowed."""

# Raised before the request could leave this process: the call was definitely not made.
_NOT_SENT: Final = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
)


class XmlRpcTransport:
    """Posts XML-RPC calls to `url` (Balance's `/xmlrpc`). Thread-safe; one per process.

    Every call may block up to `connect_timeout_s` to connect, then up to `timeout_s` for
    each write or read (httpx's per-operation timeouts; a server dribbling bytes could hold
    a call longer, which Balance does not do).
    """

    def __init__(
        self,
        url: str,
        *,
        connect_timeout_s: float,
        timeout_s: float,
        breaker: CircuitBreaker,
        observer: CallObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._breaker = breaker
        self._observer = observer
        self._clock = clock
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s, pool=connect_timeout_s),
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"Content-Type": "text/xml; charset=utf-8"},
            follow_redirects=False,
            # Balance is reached directly; a proxy from the environment would add a hop
            # whose failures look like Balance's.
            trust_env=False,
        )

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

    def call(self, method: str, *params: object, idempotent: bool) -> object:
        """Call `Balance2.<method>(*params)` and return its one result value.

        `idempotent` (the method may be repeated as it was) travels on BalanceOutcomeUnknown.
        Raises BalanceFault, BalanceUnavailable, BalanceCircuitOpen, BalanceOutcomeUnknown,
        BalanceBadAnswer, or BalanceValueError (a param XML-RPC cannot carry; nothing sent).
        """
        full_method = METHOD_PREFIX + method
        try:
            body = xmlrpc.client.dumps(
                cast(tuple[Any, ...], params),
                methodname=full_method,
                allow_none=True,
                encoding="utf-8",
            ).encode("utf-8")
        except OverflowError as error:  # an int beyond XML-RPC's 32 bits
            raise BalanceValueError(f"{method}: {error}", method=full_method) from None
        started = self._clock()
        try:
            self._breaker.acquire()
        except BalanceCircuitOpen as error:
            error.method = full_method
            self._observe(method, "circuit_open", started)
            raise
        try:
            result = self._post(full_method, body, idempotent)
        except BalanceFault:
            self._breaker.record_success()
            self._observe(method, "fault", started)
            raise
        except BalanceUnavailable:
            self._breaker.record_failure()
            self._observe(method, "unavailable", started)
            raise
        except BalanceOutcomeUnknown:
            self._breaker.record_failure()
            self._observe(method, "unknown", started)
            raise
        except BaseException:
            self._breaker.release()
            raise
        self._breaker.record_success()
        self._observe(method, "ok", started)
        return result

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> XmlRpcTransport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _post(self, method: str, body: bytes, idempotent: bool) -> object:
        try:
            response = self._http.post(self.url, content=body)
        except _NOT_SENT as error:
            raise BalanceUnavailable(
                f"{method}: Balance not reached: {_describe(error)}", method=method
            ) from error
        except httpx.HTTPError as error:
            raise BalanceOutcomeUnknown(
                f"{method}: sent, no answer read: {_describe(error)}",
                method=method,
                idempotent=idempotent,
            ) from error
        if response.status_code != 200:
            raise BalanceBadAnswer(
                f"{method}: HTTP {response.status_code}", method=method, idempotent=idempotent
            )
        try:
            values, _ = xmlrpc.client.loads(response.content, use_builtin_types=True)
        except xmlrpc.client.Fault as fault:
            raise fault_from_text(fault.faultString, method=method) from None
        except (ExpatError, xmlrpc.client.ResponseError, ValueError, TypeError) as error:
            raise BalanceBadAnswer(
                f"{method}: the answer is not XML-RPC: {_describe(error)}",
                method=method,
                idempotent=idempotent,
            ) from error
        if len(values) != 1:
            raise BalanceBadAnswer(
                f"{method}: expected one result value, got {len(values)}",
                method=method,
                idempotent=idempotent,
            )
        return values[0]

    def _observe(self, method: str, outcome: CallOutcome, started: float) -> None:
        if self._observer is None:
            return
        try:
            self._observer(method, outcome, self._clock() - started)
        except Exception:
            # A metrics bug must not turn a call that Balance answered into an exception:
            # the caller would take a created invoice for an unclear outcome.
            log.exception("Balance call observer failed (%s, %s)", method, outcome)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
