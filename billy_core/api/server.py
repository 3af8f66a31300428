"""Run the read API under uvicorn until a stop event is set.

`serve(settings, stop)` blocks the calling thread: it builds the engine and the app, runs
`uvicorn.Server` on `settings.api_host:settings.api_port`, and a watcher thread sets
`server.should_exit` once `stop` is set. uvicorn then stops accepting, lets requests in
flight finish for at most `SHUTDOWN_GRACE_S`, and `serve` returns after the engine is
disposed. Raises RuntimeError when the port cannot be bound (uvicorn would otherwise
`sys.exit` from inside the thread).
"""

from __future__ import annotations

import logging
import threading

import uvicorn

from billy_core import reads
from billy_core.api.app import create_app
from billy_core.settings import Settings

__all__ = ["SHUTDOWN_GRACE_S", "serve"]

SHUTDOWN_GRACE_S = 10
"""How long requests in flight may take to finish once stop is set."""
_WATCH_INTERVAL_S = 0.2

log = logging.getLogger("billy.api")


def serve(settings: Settings, stop: threading.Event) -> None:
    """Serve HTTP until `stop` is set; then shut down cleanly and return."""
    engine = reads.create_engine_for(settings)
    config = uvicorn.Config(
        create_app(settings, engine),
        host=settings.api_host,
        port=settings.api_port,
        # billy configures logging itself (cli.main); uvicorn must not replace it.
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        timeout_keep_alive=5,
    )
    server = uvicorn.Server(config)
    finished = threading.Event()

    def watch() -> None:
        while not stop.wait(_WATCH_INTERVAL_S):
            if finished.is_set():
                return
        server.should_exit = True

    watcher = threading.Thread(target=watch, name="billy-api-stop-watcher", daemon=True)
    watcher.start()
    log.info("api: serving on %s:%d", settings.api_host, settings.api_port)
    try:
        server.run()
    except SystemExit as exc:  # uvicorn exits the process when it cannot bind
        raise RuntimeError(
            f"api: cannot serve on {settings.api_host}:{settings.api_port} (see the log above)"
        ) from exc
    finally:
        finished.set()
        watcher.join(timeout=_WATCH_INTERVAL_S * 5)
        engine.dispose()
    if not server.started and not stop.is_set():
        raise RuntimeError(f"api: did not start on {settings.api_host}:{settings.api_port}")
    log.info("api: stopped")
