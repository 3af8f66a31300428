"""`balance-emulator`: start the Balance stand-in.

    balance-emulator --state .state/balance/emulator.sqlite3 --port 18090 \
        --notify-url http://127.0.0.1:8081/balance --notify-form json

The notification secret comes from --notify-secret or BALANCE_NOTIFY_SECRET (prefer the
environment: a command line is visible to every local user). SIGTERM / SIGINT stop it
cleanly; a SIGKILL loses nothing committed (SQLite WAL).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from balance_emulator import __version__
from balance_emulator.app import Emulator
from balance_emulator.notifier import FORMS, NotifyConfig
from balance_emulator.server import EmulatorServer

log = logging.getLogger("balance_emulator")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="balance-emulator",
        description="A stand-in for Balance's XML-RPC API (for billy's local runs and tests).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="listen address (127.0.0.1)")
    parser.add_argument("--port", type=int, default=18090, help="listen port (18090; 0 = any)")
    parser.add_argument(
        "--state",
        type=Path,
        default=Path(os.environ.get("BALANCE_EMULATOR_STATE", "balance-emulator.sqlite3")),
        help="SQLite state file, created when missing (env BALANCE_EMULATOR_STATE)",
    )
    parser.add_argument(
        "--notify-url",
        default=os.environ.get("BALANCE_NOTIFY_URL") or None,
        help="where NotifyOrder2 goes (env BALANCE_NOTIFY_URL); none: notifications wait",
    )
    parser.add_argument(
        "--notify-form",
        choices=FORMS,
        default=os.environ.get("BALANCE_NOTIFY_FORM", "json"),
        help="json: POST <url>/BalanceClient/NotifyOrder2; xmlrpc: BalanceClient.NotifyOrder2",
    )
    parser.add_argument(
        "--notify-secret",
        default=None,
        help="HMAC-SHA256 key for X-Balance-Signature (default: env BALANCE_NOTIFY_SECRET)",
    )
    parser.add_argument("--notify-retry-base-s", type=float, default=0.2)
    parser.add_argument("--notify-retry-max-s", type=float, default=30.0)
    parser.add_argument("--notify-timeout-s", type=float, default=5.0)
    parser.add_argument(
        "--notify-batch-max", type=int, default=1, help="structs per JSON delivery (1)"
    )
    parser.add_argument(
        "--public-url",
        default=None,
        help="base URL of UserPath/AdminPath (default http://HOST:PORT)",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (INFO)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    secret = args.notify_secret or os.environ.get("BALANCE_NOTIFY_SECRET") or None
    if args.notify_batch_max < 1:
        print("balance-emulator: --notify-batch-max must be at least 1", file=sys.stderr)
        return 2
    notify = NotifyConfig(
        url=args.notify_url,
        form=args.notify_form,
        secret=secret.encode() if secret else None,
        retry_base_s=args.notify_retry_base_s,
        retry_max_s=args.notify_retry_max_s,
        timeout_s=args.notify_timeout_s,
        batch_max=args.notify_batch_max,
    )
    args.state.parent.mkdir(parents=True, exist_ok=True)
    emulator = Emulator(args.state, notify, public_url="")
    try:
        server = EmulatorServer((args.host, args.port), emulator)
    except OSError as error:
        emulator.close()
        print(
            f"balance-emulator: cannot listen on {args.host}:{args.port}: {error}",
            file=sys.stderr,
        )
        return 1
    host, port = str(server.server_address[0]), int(server.server_address[1])
    # The public URL is known only now (with --port 0 the port is the kernel's choice).
    emulator.public_url = (args.public_url or f"http://{host}:{port}").rstrip("/")
    if notify.url and not notify.secret:
        log.warning("no notify secret: notifications go out without X-Balance-Signature")
    emulator.start()

    def stop(signum: int, frame: FrameType | None) -> None:
        del frame
        log.info("signal %d: stopping", signum)
        # shutdown() waits for serve_forever to return: call it off the main thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        "listening on http://%s:%d/xmlrpc (state %s, notify %s %s)",
        host,
        port,
        args.state,
        notify.form,
        notify.url or "off",
    )
    print(f"balance-emulator: listening on http://{host}:{port}/xmlrpc", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        emulator.close()
        log.info("stopped")
    return 0
