"""The notifier: one background thread that delivers the outbox's NotifyOrder2 rows.

Forms (`--notify-form`):
- json: POST `<url>/BalanceClient/NotifyOrder2`, body a JSON array of notification
  structs (up to `batch_max` of them); HTTP 200 means delivered.
- xmlrpc: the XML-RPC method `BalanceClient.NotifyOrder2` at `<url>` with one struct;
  delivered when the answer is `[0, ...]` (billy answers `[0, "ok"]`).

Every request carries `X-Balance-Signature: sha256=<hex HMAC-SHA256 of the raw body>`
keyed with the shared secret (`--notify-secret` / BALANCE_NOTIFY_SECRET); without a
secret the header is left out (and a warning is logged at start).

A failed delivery (no connection, a timeout, another status, a fault) is retried after
retry_base_s x 2^(attempts-1), capped at retry_max_s, until it succeeds: rows live in
SQLite, so a restart picks them up again. The fault switches for notifications (duplicate,
reorder, delay) are decided once per row, the first time the sender sees it.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import sqlite3
import threading
import time
import urllib.parse
import xmlrpc.client
from collections import Counter
from dataclasses import dataclass, replace

from balance_emulator.faults import FaultInjector
from balance_emulator.store import Store

log = logging.getLogger("balance_emulator.notifier")

FORMS = ("json", "xmlrpc")
_PENDING_PER_PASS_MAX = 500
_IDLE_WAIT_S = 1.0
_HELD_POLL_S = 0.05


@dataclass(frozen=True)
class NotifyConfig:
    url: str | None = None
    form: str = "json"
    secret: bytes | None = None
    retry_base_s: float = 0.2
    retry_max_s: float = 30.0
    timeout_s: float = 5.0
    batch_max: int = 1

    def public(self) -> dict[str, object]:
        """For GetNotify: everything but the secret (only whether there is one)."""
        return {
            "url": self.url,
            "form": self.form,
            "signed": self.secret is not None,
            "retry_base_s": self.retry_base_s,
            "retry_max_s": self.retry_max_s,
            "timeout_s": self.timeout_s,
            "batch_max": self.batch_max,
        }


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class DeliveryError(Exception):
    """The receiver did not confirm a delivery; the message says why."""


class Notifier:
    """Owns the sender thread. `wake()` after a commit that queued notifications."""

    def __init__(self, store: Store, faults: FaultInjector, config: NotifyConfig) -> None:
        self._store = store
        self._faults = faults
        self._config = config
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notifier", daemon=True)
        self._counts_lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    @property
    def config(self) -> NotifyConfig:
        return self._config

    def configure(self, **changes: object) -> NotifyConfig:
        self._config = replace(self._config, **changes)  # type: ignore[arg-type]
        self.wake()
        return self._config

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout_s)

    def _count(self, key: str, n: int = 1) -> None:
        with self._counts_lock:
            self.counts[key] += n

    def snapshot_counts(self) -> dict[str, int]:
        with self._counts_lock:
            return dict(self.counts)

    def clear_counts(self) -> None:
        with self._counts_lock:
            self.counts.clear()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                wait_s = self._one_pass()
            except Exception:  # the thread must survive anything; the row stays pending
                log.exception("notifier pass failed")
                wait_s = _IDLE_WAIT_S
            self._wake.wait(wait_s)

    def _one_pass(self) -> float:
        """Send what is due; return how long to sleep before the next pass."""
        config = self._config
        if not config.url:
            return _IDLE_WAIT_S
        now = time.time()
        with self._store.read() as conn:
            rows = conn.execute(
                "SELECT * FROM outbox WHERE delivered_at IS NULL ORDER BY id LIMIT ?",
                (_PENDING_PER_PASS_MAX,),
            ).fetchall()
        wait_s = _IDLE_WAIT_S
        due: list[sqlite3.Row] = []
        held_orders = {r["order_id"] for r in rows if r["shaped"] and r["held_until"] is not None}
        for row in rows:
            if not row["shaped"]:
                row = self._shape(row, held_orders, now)
                if row["held_until"] is not None:
                    held_orders.add(row["order_id"])
            if row["next_attempt_at"] > now:
                wait_s = min(wait_s, row["next_attempt_at"] - now)
                continue
            if row["held_until"] is not None and not self._release(row, now):
                wait_s = min(wait_s, _HELD_POLL_S)
                continue
            due.append(row)
        if not due:
            return max(wait_s, 0.0)
        if config.form == "json":
            batches = [due[i : i + config.batch_max] for i in range(0, len(due), config.batch_max)]
        else:
            batches = [[row] for row in due]
        for batch in batches:
            if not self._deliver(config, batch):
                # The receiver is not reachable: the rest would fail the same way. Try again
                # after the backoff (rows not tried yet keep their turn).
                return min(config.retry_base_s, _IDLE_WAIT_S)
        return 0.0  # delivering may have released held rows: look again at once

    def _shape(self, row: sqlite3.Row, held_orders: set[int], now: float) -> sqlite3.Row:
        """Apply the notification fault switches to a row the first time it is seen."""
        switches = self._faults.switches
        next_attempt_at = row["next_attempt_at"]
        held_until = None
        if self._faults.roll_notify(switches.notify_delay_share, "notify_delayed"):
            next_attempt_at = now + switches.notify_delay_ms / 1000
        # Hold a row back only when no other row of its order is held: then the next,
        # newer row of the order goes first, and the held one follows it.
        if row["order_id"] not in held_orders and self._faults.roll_notify(
            switches.notify_reorder_share, "notify_reordered"
        ):
            held_until = now + switches.notify_reorder_hold_s
        duplicate = int(
            self._faults.roll_notify(switches.notify_duplicate_share, "notify_duplicated")
        )
        with self._store.write() as conn:
            conn.execute(
                "UPDATE outbox SET shaped = 1, next_attempt_at = ?, held_until = ?, duplicate = ?"
                " WHERE id = ?",
                (next_attempt_at, held_until, duplicate, row["id"]),
            )
            shaped = conn.execute("SELECT * FROM outbox WHERE id = ?", (row["id"],)).fetchone()
        return shaped if shaped is not None else row

    def _release(self, row: sqlite3.Row, now: float) -> bool:
        """A held row goes once a newer row of its order was delivered, or at its deadline."""
        if now >= row["held_until"]:
            return True
        with self._store.read() as conn:
            newer = conn.execute(
                "SELECT 1 FROM outbox WHERE order_id = ? AND id > ? AND delivered_at IS NOT NULL",
                (row["order_id"], row["id"]),
            ).fetchone()
        return newer is not None

    def _deliver(self, config: NotifyConfig, rows: list[sqlite3.Row]) -> bool:
        """Send one delivery and record the outcome; False when the receiver could not be
        reached at all (a refused HTTP status or fault is a reachable receiver)."""
        structs = [json.loads(row["payload"]) for row in rows]
        ids = [row["id"] for row in rows]
        self._count("attempts")
        try:
            _post(config, structs)
        except (DeliveryError, OSError, http.client.HTTPException) as error:
            self._count("failures")
            now = time.time()
            with self._store.write() as conn:
                for row in rows:
                    attempts = row["attempts"] + 1
                    backoff = min(config.retry_base_s * 2 ** (attempts - 1), config.retry_max_s)
                    conn.execute(
                        "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ?"
                        " WHERE id = ?",
                        (attempts, now + backoff, str(error)[:500], row["id"]),
                    )
            # Loud for the first attempts and then every tenth: a receiver that is down for
            # hours must not flood the log.
            attempts = rows[0]["attempts"] + 1
            level = logging.INFO if attempts <= 3 or attempts % 10 == 0 else logging.DEBUG
            log.log(level, "notifications %s not delivered (attempt %d): %s", ids, attempts, error)
            return not isinstance(error, OSError)
        now = time.time()
        with self._store.write() as conn:
            conn.executemany(
                "UPDATE outbox SET attempts = attempts + 1, deliveries = deliveries + 1,"
                " delivered_at = ?, last_error = NULL WHERE id = ?",
                [(now, row_id) for row_id in ids],
            )
        self._count("delivered", len(rows))
        for row, struct in zip(rows, structs, strict=True):
            if row["duplicate"]:
                self._send_duplicate(config, row["id"], struct)
        return True

    def _send_duplicate(self, config: NotifyConfig, row_id: int, struct: dict[str, object]) -> None:
        """Deliver the same notification once more (Balance does, now and then)."""
        try:
            _post(config, [struct])
        except (DeliveryError, OSError, http.client.HTTPException) as error:
            log.info("duplicate of notification %s not delivered: %s", row_id, error)
            return
        self._count("duplicates_sent")
        with self._store.write() as conn:
            conn.execute("UPDATE outbox SET deliveries = deliveries + 1 WHERE id = ?", (row_id,))


def _post(config: NotifyConfig, structs: list[dict[str, object]]) -> None:
    """One HTTP delivery; raises DeliveryError (or OSError) unless the receiver confirmed."""
    if not config.url:
        raise DeliveryError("no notify url")
    if config.form == "json":
        target = config.url.rstrip("/") + "/BalanceClient/NotifyOrder2"
        body = json.dumps(structs, ensure_ascii=False).encode()
        content_type = "application/json"
    else:
        target = config.url
        body = xmlrpc.client.dumps(
            (structs[0],), "BalanceClient.NotifyOrder2", allow_none=True
        ).encode()
        content_type = "text/xml"
    parts = urllib.parse.urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DeliveryError(f"notify url is not http(s): {config.url!r}")
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(parts.hostname, parts.port, timeout=config.timeout_s)
    headers = {"Content-Type": content_type, "User-Agent": "balance-emulator"}
    if config.secret is not None:
        headers["X-Balance-Signature"] = sign(config.secret, body)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read(1_000_000)
    finally:
        connection.close()
    if response.status != 200:
        raise DeliveryError(f"HTTP {response.status} from {target}")
    if config.form == "xmlrpc":
        try:
            (result,), _ = xmlrpc.client.loads(answer)
        except xmlrpc.client.Fault as fault:
            raise DeliveryError(f"fault {fault.faultCode}: {fault.faultString[:200]}") from None
        except Exception as error:  # an unreadable answer is not a confirmation
            raise DeliveryError(f"unreadable XML-RPC answer: {error}") from None
        if not (isinstance(result, list | tuple) and result and result[0] == 0):
            raise DeliveryError(f"answer {result!r} is not [0, ...]")
