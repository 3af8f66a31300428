"""How the transport sorts what happens on the wire, against small local socket servers
(real TCP on 127.0.0.1, no Balance): answer, fault, refused, timeout, reset, HTTP error,
garbage; the breaker's counting; nothing sent while open."""

from __future__ import annotations

import socket
import threading
import xmlrpc.client
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from billy_core.balance.breaker import BreakerState, CircuitBreaker
from billy_core.balance.errors import (
    BalanceBadAnswer,
    BalanceCircuitOpen,
    BalanceFault,
    BalanceOutcomeUnknown,
    BalanceUnavailable,
    BalanceValueError,
    FaultCode,
    retry_is_safe,
)
from billy_core.balance.transport import XmlRpcTransport

Behaviour = Callable[[socket.socket, bytes], None]


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += conn.recv(65536)
    return body


def http_answer(status: int, body: bytes) -> bytes:
    return (
        f"HTTP/1.1 {status} X\r\nContent-Type: text/xml\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body


def answering(status: int, body: bytes) -> Behaviour:
    def behave(conn: socket.socket, _request: bytes) -> None:
        conn.sendall(http_answer(status, body))

    return behave


def silent(conn: socket.socket, _request: bytes) -> None:
    conn.recv(1)  # hold the connection until the client gives up


def hang_up(conn: socket.socket, _request: bytes) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")


class LocalServer:
    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.requests: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/xmlrpc"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    request = _read_request(conn)
                    self.requests.append(request)
                    self.behaviour(conn, request)
                except OSError:
                    pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@contextmanager
def server(behaviour: Behaviour) -> Iterator[LocalServer]:
    running = LocalServer(behaviour)
    try:
        yield running
    finally:
        running.stop()


def transport(url: str, breaker: CircuitBreaker | None = None, **kw: object) -> XmlRpcTransport:
    return XmlRpcTransport(
        url,
        connect_timeout_s=1.0,
        timeout_s=0.3,
        breaker=breaker or CircuitBreaker(failures_max=3, cooldown_s=60),
        **kw,  # type: ignore[arg-type]
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_answer_is_returned_and_the_request_is_xmlrpc() -> None:
    body = xmlrpc.client.dumps(([0, "SUCCESS", 17],), methodresponse=True).encode()
    with server(answering(200, body)) as srv, transport(srv.url) as t:
        assert t.call("CreateClient", "42", {"NAME": "n", "PHONE": None}, idempotent=False) == [
            0,
            "SUCCESS",
            17,
        ]
        params, method = xmlrpc.client.loads(srv.requests[0])
    assert method == "Balance2.CreateClient"
    assert params == ("42", {"NAME": "n", "PHONE": None})


def test_a_fault_is_parsed_and_counts_as_balance_alive() -> None:
    fault = xmlrpc.client.Fault(
        -1, "<error><msg>no</msg><code>CLIENT_NOT_FOUND</code><method>Balance2.X</method></error>"
    )
    body = xmlrpc.client.dumps(fault, methodresponse=True).encode()
    breaker = CircuitBreaker(failures_max=1, cooldown_s=60)
    with server(answering(200, body)) as srv, transport(srv.url, breaker) as t:
        for _ in range(3):
            with pytest.raises(BalanceFault) as raised:
                t.call("X", 1, idempotent=True)
            assert raised.value.code is FaultCode.CLIENT_NOT_FOUND
    assert breaker.state is BreakerState.CLOSED
    assert not retry_is_safe(raised.value)


def test_refused_connection_is_unavailable_and_safe_to_retry() -> None:
    with transport(f"http://127.0.0.1:{free_port()}/xmlrpc") as t:
        with pytest.raises(BalanceUnavailable) as raised:
            t.call("CreateInvoice", 1, {}, idempotent=False)
    assert raised.value.method == "Balance2.CreateInvoice"
    assert retry_is_safe(raised.value)


def test_timeout_after_sending_is_outcome_unknown() -> None:
    with server(silent) as srv, transport(srv.url) as t:
        with pytest.raises(BalanceOutcomeUnknown, match="ReadTimeout") as raised:
            t.call("CreateRequest2", 1, 2, [], idempotent=False)
        assert len(srv.requests) == 1  # it did go out
    assert not isinstance(raised.value, BalanceUnavailable)
    assert not retry_is_safe(raised.value)  # not idempotent: find out first
    with server(silent) as srv, transport(srv.url) as t:
        with pytest.raises(BalanceOutcomeUnknown) as raised:
            t.call("GetOrdersInfo", [], idempotent=True)
    assert retry_is_safe(raised.value)


def test_connection_reset_after_sending_is_outcome_unknown() -> None:
    with server(hang_up) as srv, transport(srv.url) as t:
        with pytest.raises(BalanceOutcomeUnknown) as raised:
            t.call("CreateInvoice", 1, {}, idempotent=False)
    assert type(raised.value) is BalanceOutcomeUnknown


@pytest.mark.parametrize(
    ("status", "body", "match"),
    [
        (500, b"Internal Server Error", "HTTP 500"),
        (404, b"", "HTTP 404"),
        (200, b"<html>maintenance</html>", "not XML-RPC"),
        (200, b"not xml at all", "not XML-RPC"),
        (200, xmlrpc.client.dumps((1, 2), methodresponse=False).encode(), "not XML-RPC|one result"),
    ],
)
def test_unreadable_answers_are_bad_answers(status: int, body: bytes, match: str) -> None:
    with server(answering(status, body)) as srv, transport(srv.url) as t:
        with pytest.raises(BalanceBadAnswer, match=match):
            t.call("GetClientPersons", 1, idempotent=True)


def test_breaker_opens_after_transport_failures_and_then_sends_nothing() -> None:
    outcomes: list[tuple[str, str]] = []
    breaker = CircuitBreaker(failures_max=2, cooldown_s=60)
    with server(answering(500, b"")) as srv:
        with transport(srv.url, breaker, observer=lambda m, o, s: outcomes.append((m, o))) as t:
            for _ in range(2):
                with pytest.raises(BalanceBadAnswer):
                    t.call("FindClient", {}, idempotent=True)
            with pytest.raises(BalanceCircuitOpen) as raised:
                t.call("FindClient", {}, idempotent=True)
        assert len(srv.requests) == 2
    assert raised.value.method == "Balance2.FindClient"
    assert retry_is_safe(raised.value) and raised.value.retry_after_s > 0
    assert outcomes == [("FindClient", "unknown")] * 2 + [("FindClient", "circuit_open")]


def test_an_int_xmlrpc_cannot_carry_is_a_value_error_and_nothing_is_sent() -> None:
    breaker = CircuitBreaker(failures_max=1, cooldown_s=60)
    with transport(f"http://127.0.0.1:{free_port()}/xmlrpc", breaker) as t:
        with pytest.raises(BalanceValueError, match="CreateClient"):
            t.call("CreateClient", 2**31, idempotent=False)
    assert breaker.state is BreakerState.CLOSED


def test_an_observer_that_raises_does_not_hide_the_answer() -> None:
    body = xmlrpc.client.dumps((50000001,), methodresponse=True).encode()

    def explode(method: str, outcome: str, seconds: float) -> None:
        raise RuntimeError("observer bug")

    with server(answering(200, body)) as srv, transport(srv.url, observer=explode) as t:
        # a created invoice must come back, whatever the metrics code does
        assert t.call("CreateInvoice", "1", {}, idempotent=False) == 50000001
