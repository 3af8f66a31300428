"""Commands for the benchmark, built and encoded before any clock starts.

The mix is mostly Charge (80 %), with Hold (10 %) and ConfirmHold (10 %, of an earlier hold
of the same client, all or part). Amounts are 1..100 kopecks against wallets funded with
10^10, so (almost) every command applies: the benchmark measures the applied path.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass

from billy_core.codec import encode_command
from billy_core.commands import Adjust, Charge, Command, ConfirmHold, Hold, RegisterClient

FUNDING_MINOR = 10_000_000_000  # per client: far more than any run spends
HOLD_TTL_MS = 24 * 3600 * 1000  # holds never expire during a run


@dataclass(frozen=True, slots=True)
class Encoded:
    command_id: str
    key: bytes
    value: bytes
    kind: str


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _encode(command: Command, key: str | None = None) -> Encoded:
    return Encoded(
        command.command_id,
        (key or command.client_id).encode(),
        encode_command(command),
        command.kind,
    )


def client_ids(n: int) -> list[str]:
    return [f"client-{i:05d}" for i in range(n)]


def registrations(clients: list[str]) -> list[Encoded]:
    return [
        _encode(
            Command(
                uuid.uuid4().hex, c, _now_ms(), RegisterClient(f"Bench {c}", f"{c}@bench.example")
            )
        )
        for c in clients
    ]


def fundings(tenant: str, clients: list[str]) -> list[Encoded]:
    """Adjust commands for the admin topic (key `<tenant>/<client>`)."""
    return [
        _encode(
            Command(
                uuid.uuid4().hex,
                c,
                _now_ms(),
                Adjust(FUNDING_MINOR, "RUB", "benchmark funding", "bench"),
            ),
            key=f"{tenant}/{c}",
        )
        for c in clients
    ]


def mix(clients: list[str], count: int, seed: int) -> list[Encoded]:
    """`count` commands over `clients` (uniformly), in the order they are to be sent."""
    rng = random.Random(seed)
    open_holds: dict[str, list[str]] = {c: [] for c in clients}
    expires = _now_ms() + HOLD_TTL_MS
    out = []
    for _ in range(count):
        client = clients[rng.randrange(len(clients))] if len(clients) > 1 else clients[0]
        roll = rng.random()
        if roll < 0.10:
            hold_id = uuid.uuid4().hex[:16]
            open_holds[client].append(hold_id)
            body = Hold(
                hold_id, f"product-{rng.randrange(20)}", rng.randint(1, 100), "RUB", expires
            )
        elif roll < 0.20 and open_holds[client]:
            hold_id = open_holds[client].pop(rng.randrange(len(open_holds[client])))
            body = ConfirmHold(hold_id, None if rng.random() < 0.5 else 1)
        else:
            body = Charge(f"product-{rng.randrange(20)}", rng.randint(1, 100), "RUB")
        out.append(_encode(Command(uuid.uuid4().hex, client, _now_ms(), body)))
    return out
