"""Topic names. The tenant comes from the topic name, never from the payload."""

from __future__ import annotations

import re
from collections.abc import Iterable

ADMIN_TENANT = "admin"
_TENANTS_REMEMBERED = 4096
_COMMANDS = re.compile(r"^(?P<prefix>[a-z0-9-]+)\.(?P<tenant>[a-z0-9-]+)\.commands$")


class TopicNames:
    """All topic names of one deployment, derived from its prefix (tests use a fresh prefix)."""

    def __init__(self, prefix: str = "billy") -> None:
        """Raises nothing; `prefix` is trusted (it comes from validated settings)."""
        self.prefix = prefix
        self.applied_services = f"{prefix}.applied-services"
        self.wallets = f"{prefix}.wallets"
        self.admin_commands = f"{prefix}.admin.commands"
        self.admin_results = f"{prefix}.admin.results"
        self.dlq = f"{prefix}.dlq"
        # Balance's monthly acts and their reconciliation against the ledger (jobs.acts).
        self.acts = f"{prefix}.acts"
        self.reconciliation = f"{prefix}.reconciliation"
        self.relay_positions = f"{prefix}.internal.relay-positions"
        # Balance: the ledger's intents to the gateway, the gateway's outcomes to the ledger.
        self.balance_requests = f"{prefix}.internal.balance-requests"
        self.internal_events = f"{prefix}.internal.events"
        # tenant_of remembers its answers: it is asked once per record, of a few topics.
        self._tenants: dict[str, str | None] = {}

    def commands_pattern(self, tenants: Iterable[str]) -> str:
        """The ledger's subscription: the configured tenants' command topics and the admin
        topic (librdkafka subscribes to a regex when the name starts with '^'). A commands
        topic of an unconfigured tenant is not read: billy has no results topic for it."""
        names = "|".join(re.escape(t) for t in sorted({*tenants, ADMIN_TENANT}))
        return f"^{re.escape(self.prefix)}\\.({names})\\.commands$"

    def commands(self, tenant: str) -> str:
        return f"{self.prefix}.{tenant}.commands"

    def results(self, tenant: str) -> str:
        return f"{self.prefix}.{tenant}.results"

    def tenant_of(self, commands_topic: str) -> str | None:
        """The tenant of a commands topic ("admin" for the admin topic), or None if not one."""
        try:
            return self._tenants[commands_topic]
        except KeyError:
            pass
        match = _COMMANDS.match(commands_topic)
        tenant = match["tenant"] if match and match["prefix"] == self.prefix else None
        if len(self._tenants) < _TENANTS_REMEMBERED:  # bounded: any string may be asked
            self._tenants[commands_topic] = tenant
        return tenant
