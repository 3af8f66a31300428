"""The intake's HTTP endpoint: what Balance calls, in both of its forms.

    POST <path>/BalanceClient/NotifyOrder2    JSON array of structs   200 = taken
    POST <path>/BalanceClient/NotifyClient2   (and NotifyInvoice)     200, ignored
    POST <path>                               XML-RPC BalanceClient.NotifyOrder2(struct)
                                              answer [0, "ok"]; a fault = not taken

Checks, in order, before anything reads the body's content:
1. the source address is in `intake_allow_cidrs` (else 403: nothing read);
2. a Content-Length no larger than `intake_body_bytes_max` (else 411/413);
3. `X-Balance-Signature` is the body's HMAC under `balance_notify_secret` (constant-time;
   else 403, or for XML-RPC a fault with code 403); no secret configured refuses every
   notification (fail closed).
Then `accept.Acceptor` validates, maps, confirms with Balance and publishes. Answers:
JSON 200 / 400 (a field, named) / 503 (retry later); XML-RPC [0, "ok"] or a fault with
code 400 / 503, at HTTP 200 as XML-RPC does. The source address is the TCP peer's: run the
intake where Balance reaches it directly (a proxy in front must keep its own allow-list).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from billy_core import metrics
from billy_core.balance import BalanceClient
from billy_core.balance.notifications import (
    IGNORED_METHODS,
    NOTIFY_ORDER,
    SIGNATURE_HEADER,
    NotificationError,
    parse_json,
    parse_xmlrpc,
    signature_valid,
    xmlrpc_fault,
    xmlrpc_success,
)
from billy_core.kafka.topics import TopicNames
from billy_core.ops.health import HEALTH
from billy_core.settings import Settings
from intake.accept import Acceptor, Answer, Verdict
from intake.directory import OrderDirectory
from intake.publisher import Publisher

__all__ = ["IntakeServer"]

log = logging.getLogger("billy.intake")
_SOCKET_TIMEOUT_S = 15.0
_BEAT_S = 1.0


class IntakeServer:
    """`run(stop)` serves until `stop` is set (a role of `billy run` / `billy intake`)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.networks = [ipaddress.ip_network(c, strict=False) for c in settings.intake_allow_cidrs]
        secret = settings.balance_notify_secret
        self.secret = secret.get_secret_value().encode() if secret is not None else b""
        self.base = settings.intake_path.rstrip("/")
        self.acceptor: Acceptor | None = None

    def allowed(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.networks)

    def run(self, stop: threading.Event) -> None:
        s = self.settings
        if not self.secret:
            log.error(
                "intake: BILLY_BALANCE_NOTIFY_SECRET is not set: every notification is refused"
            )
        directory = OrderDirectory(s.database_url)
        balance = BalanceClient.from_settings(s)
        publisher = Publisher(s, TopicNames(s.topic_prefix).internal_events)
        self.acceptor = Acceptor(
            s.balance_service_id, frozenset(s.tenants), directory, balance, publisher
        )
        httpd = _Server((s.intake_host, s.intake_port), _handler_for(self))
        thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="billy-intake-http"
        )
        thread.start()
        log.info("intake: serving on http://%s:%d%s", s.intake_host, s.intake_port, self.base)
        try:
            while not stop.wait(_BEAT_S):
                HEALTH.progressed("intake")
        finally:
            httpd.shutdown()
            httpd.server_close()
            thread.join(timeout=5)
            publisher.close()
            balance.close()
            directory.close()
            log.info("intake: stopped")


class _Server(ThreadingHTTPServer):
    # The standard backlog (5) resets connections when Balance's senders open many at once
    # (seen at 32 concurrent deliveries in bench/intake.py).
    request_queue_size = 128
    daemon_threads = True


def _handler_for(server: IntakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        intake = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    intake: IntakeServer
    protocol_version = "HTTP/1.1"
    timeout = _SOCKET_TIMEOUT_S
    server_version = "billy-intake"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        log.debug("intake http: " + format, *args)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._send(405, b'{"error": "POST only"}', "application/json")

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        intake = self.intake
        path = self.path.split("?", 1)[0].rstrip("/")
        xmlrpc = path == intake.base
        form = "xmlrpc" if xmlrpc else "json"
        method = ""
        if not xmlrpc:
            prefix = f"{intake.base}/BalanceClient/"
            if not path.startswith(prefix):
                self.close_connection = True  # the body is not read: the connection ends
                self._json(404, {"error": f"path: {path[:100]!r} is not a notification URL"})
                return
            method = path[len(prefix) :]
        if not intake.allowed(self.client_address[0]):
            log.warning("notification refused: source %s is not allowed", self.client_address[0])
            self._count(form, "refused_source")
            self.close_connection = True  # nothing of it is read
            self._send(403, b'{"error": "source address not allowed"}', "application/json")
            return
        body = self._body()
        if body is None:
            self._count(form, "invalid")
            return
        if not signature_valid(intake.secret, body, self.headers.get(SIGNATURE_HEADER)):
            log.warning(
                "notification refused: %s signature from %s",
                "no" if not self.headers.get(SIGNATURE_HEADER) else "a wrong",
                self.client_address[0],
            )
            self._count(form, "unsigned")
            if xmlrpc:
                self._send(200, xmlrpc_fault(403, "signature: missing or wrong"), "text/xml")
            else:
                self._json(403, {"error": f"{SIGNATURE_HEADER}: missing or wrong"})
            return
        if xmlrpc:
            self._xmlrpc(body)
        else:
            self._json_form(method, body)

    # --- the two forms ---------------------------------------------------------------------
    def _json_form(self, method: str, body: bytes) -> None:
        if method in IGNORED_METHODS:
            log.debug("notification %s ignored", method)
            self._count("json", "ignored")
            self._json(200, {"status": "ok"})
            return
        if method != NOTIFY_ORDER:
            self._count("json", "invalid")
            self._json(404, {"error": f"method: {method[:60]!r} is not a Balance notification"})
            return
        try:
            structs = parse_json(body)
        except NotificationError as exc:
            self._count("json", "invalid")
            self._json(400, {"error": str(exc)})
            return
        answer = self._accept("json", structs)
        status = {Verdict.ACCEPTED: 200, Verdict.INVALID: 400, Verdict.UNAVAILABLE: 503}
        if answer.verdict is Verdict.ACCEPTED:
            self._json(200, {"status": "ok"})
        else:
            self._json(status[answer.verdict], {"error": answer.message})

    def _xmlrpc(self, body: bytes) -> None:
        try:
            method, params = parse_xmlrpc(body)
        except NotificationError as exc:
            self._count("xmlrpc", "invalid")
            self._send(200, xmlrpc_fault(400, str(exc)), "text/xml")
            return
        if method in IGNORED_METHODS:
            log.debug("notification %s ignored", method)
            self._count("xmlrpc", "ignored")
            self._send(200, xmlrpc_success(), "text/xml")
            return
        if method != NOTIFY_ORDER or len(params) != 1 or not isinstance(params[0], dict):
            self._count("xmlrpc", "invalid")
            why = (
                f"params: {NOTIFY_ORDER} takes one struct"
                if method == NOTIFY_ORDER
                else (f"methodName: {method[:60]!r} is not a Balance notification")
            )
            self._send(200, xmlrpc_fault(400, why), "text/xml")
            return
        answer = self._accept("xmlrpc", [params[0]])
        if answer.verdict is Verdict.ACCEPTED:
            self._send(200, xmlrpc_success(), "text/xml")
        else:
            code = 400 if answer.verdict is Verdict.INVALID else 503
            self._send(200, xmlrpc_fault(code, answer.message), "text/xml")

    def _accept(self, form: str, structs: list[Any]) -> Answer:
        acceptor = self.intake.acceptor
        if acceptor is None:  # pragma: no cover - set before serving
            return Answer(Verdict.UNAVAILABLE, "starting", ("kafka_unavailable",))
        answer = acceptor.accept(structs)
        for outcome in answer.outcomes:
            self._count(form, outcome)
        return answer

    # --- plumbing ----------------------------------------------------------------------------
    def _body(self) -> bytes | None:
        length_text = self.headers.get("Content-Length")
        if length_text is None or not length_text.isdigit():
            self.close_connection = True
            self._json(411, {"error": "Content-Length: required"})
            return None
        length = int(length_text)
        if length > self.intake.settings.intake_body_bytes_max:
            self.close_connection = True
            self._json(413, {"error": "body: too large"})
            return None
        return self.rfile.read(length)

    def _count(self, form: str, outcome: str) -> None:
        metrics.notifications.labels(form, outcome).inc()

    def _json(self, status: int, data: dict[str, str]) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
