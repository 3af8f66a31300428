"""A tiny HTTP server standing in for billy's notification intake, for the emulator tests.

It records every request (path, headers, raw body) and answers from a script: the first
`fail_first` requests get HTTP 500 (JSON form) or a fault (XML-RPC form), the rest succeed.
"""

from __future__ import annotations

import json
import threading
import time
import xmlrpc.client
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    accepted: bool

    def structs(self) -> list[dict]:
        """The notification structs in this delivery, whatever the form."""
        if self.path.endswith("/BalanceClient/NotifyOrder2"):
            return list(json.loads(self.body))
        params, method = xmlrpc.client.loads(self.body)
        assert method == "BalanceClient.NotifyOrder2", method
        return [cast(dict[str, Any], params[0])]


@dataclass
class Receiver:
    fail_first: int = 0
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/balance"

    def accepted(self) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries if d.accepted]

    def accepted_structs(self) -> list[dict]:
        return [s for d in self.accepted() for s in d.structs()]

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[dict]:
        """Wait until `count` structs were accepted; return them in arrival order."""
        deadline = time.monotonic() + timeout_s
        while True:
            structs = self.accepted_structs()
            if len(structs) >= count or time.monotonic() >= deadline:
                return structs
            time.sleep(0.02)

    def __enter__(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver.lock:
                    accept = len(receiver.deliveries) >= receiver.fail_first
                    receiver.deliveries.append(
                        Delivery(self.path, dict(self.headers.items()), body, accept)
                    )
                if self.path.endswith("/BalanceClient/NotifyOrder2"):
                    status, answer = (200, b"ok") if accept else (500, b"try later")
                else:
                    status = 200
                    answer = (
                        xmlrpc.client.dumps(([0, "ok"],), methodresponse=True).encode()
                        if accept
                        else xmlrpc.client.dumps(xmlrpc.client.Fault(-1, "try later")).encode()
                    )
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()
