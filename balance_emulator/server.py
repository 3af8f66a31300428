"""HTTP: a threading XML-RPC server at /xmlrpc (one thread per connection), plus two
GET pages: /health and the payment page that CreateRequest2's UserPath points at.

The handler is SimpleXMLRPCRequestHandler with its POST replaced, because an injected
timeout must be able to answer nothing at all: hold the connection, then close it.
"""

from __future__ import annotations

import html
import logging
import socket
import socketserver
import time
import urllib.parse
import xmlrpc.client
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

from balance_emulator.app import Emulator, Reply
from balance_emulator.errors import invalid_param

log = logging.getLogger("balance_emulator.http")

REQUEST_BODY_MAX = 16 * 1024 * 1024
RPC_PATHS = ("/xmlrpc", "/xmlrpc/")


class EmulatorServer(socketserver.ThreadingMixIn, SimpleXMLRPCServer):
    daemon_threads = True  # a hanging call must not keep the process alive at shutdown
    block_on_close = False
    allow_reuse_address = True  # a restart rebinds its port at once (tests restart often)
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
        super().__init__(
            address,
            requestHandler=Handler,
            logRequests=False,
            allow_none=True,
            encoding="utf-8",
        )


class Handler(SimpleXMLRPCRequestHandler):
    rpc_paths = RPC_PATHS
    server: EmulatorServer
    protocol_version = "HTTP/1.1"  # keep-alive, as xmlrpc.client's transport expects

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        if not self.is_rpc_path_valid():
            self.report_404()
            return
        length = int(self.headers.get("content-length") or 0)
        if length > REQUEST_BODY_MAX:
            self.send_error(413, "request body too large")
            return
        body = self.rfile.read(length)
        try:
            params, method = xmlrpc.client.loads(body)
        except Exception as error:
            fault = invalid_param(f"not an XML-RPC request: {error}").to_fault("unknown")
            self._send(xmlrpc.client.dumps(fault, allow_none=True).encode())
            return
        if method is None:
            fault = invalid_param("an XML-RPC response was posted, not a call").to_fault("unknown")
            self._send(xmlrpc.client.dumps(fault, allow_none=True).encode())
            return
        reply = self.server.emulator.handle(method, params)
        if reply.body is None:
            self._no_answer(reply)
            return
        self._send(reply.body)

    def _send(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/xml; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _no_answer(self, reply: Reply) -> None:
        """An injected timeout: hold the connection (hang mode), then close it unanswered."""
        if reply.hang_s > 0:
            deadline = time.monotonic() + reply.hang_s
            while time.monotonic() < deadline:
                time.sleep(min(0.2, max(deadline - time.monotonic(), 0)))
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # the caller may have given up and closed already

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        parts = urllib.parse.urlsplit(self.path)
        if parts.path == "/health":
            self._send_text(200, "text/plain", "ok\n")
        elif parts.path in ("/paypreview.xml", "/admin/paypreview.xml"):
            query = urllib.parse.parse_qs(parts.query)
            self._send_text(200, "text/html", _payment_page(self.server, query))
        else:
            self._send_text(404, "text/plain", "not found\n")

    def _send_text(self, status: int, content_type: str, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base name
        log.debug("%s %s", self.address_string(), format % args)


def _payment_page(server: EmulatorServer, query: dict[str, list[str]]) -> str:
    """A stand-in for Balance's payment page: shows the request and its invoices."""
    request_id = (query.get("request_id") or [""])[0]
    with server.emulator.store.read() as conn:
        request = (
            conn.execute("SELECT * FROM requests WHERE id = ?", (int(request_id),)).fetchone()
            if request_id.isdigit()
            else None
        )
        invoices = (
            conn.execute(
                "SELECT id, total_sum, receipt_sum FROM invoices WHERE request_id = ?",
                (request["id"],),
            ).fetchall()
            if request is not None
            else []
        )
    if request is None:
        return "<html><body><h1>Balance emulator</h1><p>No such request.</p></body></html>\n"
    rows = "".join(
        f"<li>invoice {i['id']}: {html.escape(i['total_sum'])} RUB, "
        f"received {html.escape(i['receipt_sum'])}</li>"
        for i in invoices
    )
    return (
        "<html><body><h1>Balance emulator: payment page</h1>"
        f"<p>Request {request['id']}, total {html.escape(request['total_sum'])} RUB.</p>"
        f"<ul>{rows}</ul><p>Nothing is paid here: call TestBalance.PayInvoice.</p>"
        "</body></html>\n"
    )
