"""A seeded workload: clients registered and funded, then a mix of every command, resends,
conflicts, poison and commands on unknown or settled holds (TESTING.md, "Fault profiles")."""

from __future__ import annotations

import dataclasses
import random
import time
import uuid
from dataclasses import dataclass

from billy_core.codec import encode_command, encode_result
from billy_core.commands import (
    Adjust,
    Charge,
    Command,
    ConfirmHold,
    Hold,
    Refund,
    RegisterClient,
    ReleaseHold,
)
from billy_core.results import Code, Result, Status

TENANTS = ("autoru", "realty")


@dataclass(frozen=True, slots=True)
class Send:
    """One record to produce: on a tenant's commands topic, or on the admin topic."""

    tenant: str
    admin: bool
    key: bytes
    value: bytes
    poison: str | None = None  # why it is poison, for the report


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Workload:
    def __init__(self, seed: int, clients_per_tenant: int) -> None:
        self.rng = random.Random(seed)
        self.clients = [
            (t, f"{t[:2]}-client-{i:03d}") for t in TENANTS for i in range(clients_per_tenant)
        ]
        self.sent: list[tuple[str, Command]] = []
        self.holds: dict[tuple[str, str], list[str]] = {c: [] for c in self.clients}
        self.charges: dict[tuple[str, str], list[str]] = {c: [] for c in self.clients}

    def _cmd(self, client_id: str, body) -> Command:
        return Command(uuid.uuid4().hex, client_id, now_ms(), body)

    def _send(self, tenant: str, command: Command) -> Send:
        self.sent.append((tenant, command))
        return Send(tenant, False, command.client_id.encode(), encode_command(command))

    def registrations(self) -> list[Send]:
        return [
            self._send(t, self._cmd(c, RegisterClient(f"Client {c}", f"{c}@example.ru")))
            for t, c in self.clients
        ]

    def fundings(self) -> list[Send]:
        out = []
        for tenant, client in self.clients:
            amount = self.rng.randrange(50_000, 200_000)
            body = Adjust(amount, "RUB", "fault test funding", "fault-test")
            command = self._cmd(client, body)
            out.append(Send(tenant, True, f"{tenant}/{client}".encode(), encode_command(command)))
        return out

    def next(self) -> Send:
        rng = self.rng
        roll = rng.random()
        tenant, client = rng.choice(self.clients)
        if roll < 0.05 and self.sent:  # resend: a new record, same id, same payload
            t, original = rng.choice(self.sent)
            return Send(t, False, original.client_id.encode(), encode_command(original))
        if roll < 0.06 and self.sent:  # same id, another payload
            t, original = rng.choice(self.sent)
            other = Charge("conflict", rng.randrange(1, 1000), "RUB")
            command = dataclasses.replace(original, body=other)
            return Send(t, False, original.client_id.encode(), encode_command(command))
        if roll < 0.065:
            return self._poison(tenant, client)
        if roll < 0.085:  # confirm or release an unknown or (maybe) settled hold
            hold_id = rng.choice(self.holds[(tenant, client)] or ["no-such-hold"])
            if rng.random() < 0.5:
                hold_id = f"unknown-{rng.randrange(10**6)}"
            body = ConfirmHold(hold_id) if rng.random() < 0.5 else ReleaseHold(hold_id)
            return self._send(tenant, self._cmd(client, body))
        kind = rng.random()
        if kind < 0.35:
            body = Charge(
                rng.choice(("listing", "boost", "report")), rng.randrange(100, 20_000), "RUB"
            )
            command = self._cmd(client, body)
            self.charges[(tenant, client)].append(command.command_id)
            return self._send(tenant, command)
        if kind < 0.6:
            hold_id = f"h-{uuid.uuid4().hex[:12]}"
            # A third of the holds expire within seconds: billy's sweeper or a late confirm
            # meets them expired.
            ttl_ms = rng.choice((2_000, 5_000, 600_000, 600_000, 3_600_000, 3_600_000))
            body = Hold(hold_id, "boost", rng.randrange(100, 15_000), "RUB", now_ms() + ttl_ms)
            self.holds[(tenant, client)].append(hold_id)
            return self._send(tenant, self._cmd(client, body))
        if kind < 0.78 and self.holds[(tenant, client)]:
            hold_id = rng.choice(self.holds[(tenant, client)])
            amount = None if rng.random() < 0.5 else rng.randrange(50, 15_000)
            command = self._cmd(client, ConfirmHold(hold_id, amount))
            self.charges[(tenant, client)].append(command.command_id)
            return self._send(tenant, command)
        if kind < 0.86 and self.holds[(tenant, client)]:
            hold_id = rng.choice(self.holds[(tenant, client)])
            return self._send(tenant, self._cmd(client, ReleaseHold(hold_id)))
        if self.charges[(tenant, client)]:
            target = rng.choice(self.charges[(tenant, client)])
            amount = None if rng.random() < 0.4 else rng.randrange(50, 5_000)
            return self._send(tenant, self._cmd(client, Refund(target, amount)))
        return self._send(tenant, self._cmd(client, Charge("listing", 500, "RUB")))

    def _poison(self, tenant: str, client: str) -> Send:
        rng = self.rng
        kind = rng.choice(
            ("garbage", "wrong_schema", "key", "zero", "negative", "huge", "currency")
        )
        key = client.encode()
        if kind == "garbage":
            return Send(tenant, False, key, rng.randbytes(rng.randrange(0, 40)), "garbage bytes")
        if kind == "wrong_schema":
            result = Result(
                "x", client, Status.APPLIED, Code.OK, "", "RUB", 0, 0, 1, False, now_ms()
            )
            return Send(tenant, False, key, encode_result(result), "a Result on a commands topic")
        if kind == "key":
            command = self._cmd(client, Charge("listing", 100, "RUB"))
            return Send(tenant, False, b"someone-else", encode_command(command), "key mismatch")
        amount = {"zero": 0, "negative": -500, "huge": 10**13 + 1}.get(kind, 100)
        currency = "XXX" if kind == "currency" else "RUB"
        # Decodable but invalid: answered with REJECTED invalid (a result, not the DLQ).
        return self._send(tenant, self._cmd(client, Charge("listing", amount, currency)))
