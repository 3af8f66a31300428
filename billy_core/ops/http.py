"""A small HTTP server for roles without the api role: /metrics, /livez, /readyz.

Started by `billy.roles.run_roles` on `BILLY_METRICS_PORT` (replacing prometheus_client's
metrics-only server). /livez and /readyz answer 200 or 503 with the JSON of
`billy_core.ops.health` (what is missing, per role).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from billy_core.ops.health import HEALTH


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
            return
        if path in ("/livez", "/readyz"):
            ok, body = HEALTH.liveness() if path == "/livez" else HEALTH.readiness()
            self._send(200 if ok else 503, json.dumps(body).encode(), "application/json")
            return
        self._send(404, b'{"detail": "not found"}', "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # no access log


def serve(host: str, port: int) -> ThreadingHTTPServer:
    """Serve on a daemon thread; the caller may `shutdown()` the returned server."""
    server = ThreadingHTTPServer((host, port), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="billy-ops-http", daemon=True).start()
    return server
