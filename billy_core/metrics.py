"""Every Prometheus metric billy exports: a closed set, defined here and nowhere else.

Labels are bounded: tenant, topics, topic kinds, command kinds, codes, roles, Balance methods
and call outcomes. Never a client id, command id, name or email.

| name | type | labels | meaning |
| --- | --- | --- | --- |
| billy_commands_total | counter | tenant, kind, code | fresh commands applied or rejected |
| billy_duplicates_total | counter | tenant | resends answered with the stored result |
| billy_dlq_records_total | counter | source | poison records to the DLQ, by reading role |
| billy_batch_records | histogram | | records per partition transaction |
| billy_apply_seconds | histogram | | one partition transaction, lock to commit |
| billy_end_to_end_seconds | histogram | | record timestamp to ledger commit |
| billy_offset_conflicts_total | counter | | batches refused by the offset CAS (zombie) |
| billy_db_retries_total | counter | role | transient PostgreSQL failures retried |
| billy_consumer_lag | gauge | topic | records behind the high watermark, summed over partitions |
| billy_outbox_backlog | gauge | | records waiting in the outbox (relay's view) |
| billy_relay_published_total | counter | topic_kind | records published by the relay |
| billy_relay_transaction_seconds | histogram | | one relay Kafka transaction |
| billy_relay_oversized_total | counter | topic_kind | records too large for the broker: stand-ins |
| billy_hold_expiries_total | counter | | ExpireHold commands sent by the sweeper |
| billy_misrouted_records_total | counter | role | records off their key's partition |
| billy_partitions_paused_total | counter | role | partitions paused by the poison cap |
| billy_partitions_paused_now | gauge | role | partitions paused by the poison cap now |
| billy_balance_calls_total | counter | method, outcome | Balance calls by outcome (transport) |
| billy_balance_call_seconds | histogram | method | one Balance call, sent to answered (or failed) |
| billy_balance_requests_total | counter | kind, code | Balance commands the gateway finished |
| billy_progress_timestamp_seconds | gauge | role | unix time of the role's last progress |
| billy_offset_mismatches_total | counter | role | group offsets unlike the stored ones (a reset) |
| billy_outbox_oldest_seconds | gauge | | age of the oldest outbox row (relay's view) |
| billy_dependency_up | gauge | dependency | 1 while kafka / postgresql answer the probe |
| billy_notifications_total | counter | form, outcome | Balance notifications the intake answered |
| billy_payments_total | counter | tenant, outcome | confirmed notifications the ledger applied |
| billy_consumption_reports_total | counter | outcome | UpdateCampaigns: accepted, refused, failed |
| billy_acts_imported_total | counter | | Balance acts imported (each once) |
| billy_reconciliations_total | counter | status | client-months: matched, differs, no_act |
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

commands = Counter("billy_commands_total", "Fresh commands by outcome", ["tenant", "kind", "code"])
duplicates = Counter("billy_duplicates_total", "Resends answered from the store", ["tenant"])
dlq_records = Counter("billy_dlq_records_total", "Poison records sent to the DLQ", ["source"])
batch_records = Histogram(
    "billy_batch_records",
    "Records per partition transaction",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
)
apply_seconds = Histogram(
    "billy_apply_seconds", "One partition transaction", buckets=_LATENCY_BUCKETS_S
)
end_to_end_seconds = Histogram(
    "billy_end_to_end_seconds", "Record timestamp to ledger commit", buckets=_LATENCY_BUCKETS_S
)
offset_conflicts = Counter("billy_offset_conflicts_total", "Batches refused by the offset CAS")
db_retries = Counter("billy_db_retries_total", "Transient PostgreSQL failures retried", ["role"])
consumer_lag = Gauge("billy_consumer_lag", "Records behind the high watermark", ["topic"])
outbox_backlog = Gauge("billy_outbox_backlog", "Records waiting in the outbox")
relay_published = Counter(
    "billy_relay_published_total", "Records published by the relay", ["topic_kind"]
)
relay_transaction_seconds = Histogram(
    "billy_relay_transaction_seconds", "One relay Kafka transaction", buckets=_LATENCY_BUCKETS_S
)
relay_oversized = Counter(
    "billy_relay_oversized_total",
    "Records too large for the broker, sent as bounded stand-ins",
    ["topic_kind"],
)
hold_expiries = Counter("billy_hold_expiries_total", "ExpireHold commands sent by the sweeper")
misrouted_records = Counter(
    "billy_misrouted_records_total",
    "Records found on a partition other than their key's (applied where they landed)",
    ["role"],
)
partitions_paused = Counter(
    "billy_partitions_paused_total", "Partitions paused by the poison cap", ["role"]
)
partitions_paused_now = Gauge(
    "billy_partitions_paused_now", "Partitions paused by the poison cap now", ["role"]
)
balance_calls = Counter(
    "billy_balance_calls_total", "Balance calls by method and outcome", ["method", "outcome"]
)
balance_call_seconds = Histogram(
    "billy_balance_call_seconds",
    "One Balance call",
    ["method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
balance_requests = Counter(
    "billy_balance_requests_total",
    "Balance-bound commands finished by the gateway",
    ["kind", "code"],
)

# --- payments from Balance (intake/, consumers/ledger/payments.py) ----------------------------
# outcome: accepted (durably in Kafka), forged (Balance does not confirm the figures),
# unsigned (no or a wrong signature), refused_source (address not allowed), invalid (a field),
# unmapped (an order billy does not know yet), balance_unavailable, kafka_unavailable, ignored
# (NotifyClient2 / NotifyInvoice). form: json | xmlrpc.
notifications = Counter(
    "billy_notifications_total", "Balance notifications answered by the intake", ["form", "outcome"]
)
# outcome: credited, nothing_owed, stale (Tid not newer: duplicate or reordered),
# unknown_client, currency_mismatch
payments = Counter(
    "billy_payments_total",
    "Confirmed Balance notifications applied by the ledger",
    ["tenant", "outcome"],
)
NOTIFICATION_OUTCOMES = (
    "accepted",
    "forged",
    "unsigned",
    "refused_source",
    "invalid",
    "unmapped",
    "balance_unavailable",
    "kafka_unavailable",
    "ignored",
)

# --- operations (billy_core.ops) ---------------------------------------------------------------
progress_timestamp = Gauge(
    "billy_progress_timestamp_seconds",
    "Unix time the role last made progress (committed work, or found none waiting)",
    ["role"],
)
offset_mismatches = Counter(
    "billy_offset_mismatches_total",
    "Kafka group offsets unlike the PostgreSQL positions (an outside reset), overwritten",
    ["role"],
)
outbox_oldest_seconds = Gauge("billy_outbox_oldest_seconds", "Age of the oldest outbox row")
dependency_up = Gauge(
    "billy_dependency_up", "1 while the dependency answers the health probe", ["dependency"]
)

_ROLE_COUNTERS = (dlq_records, db_retries, misrouted_records, partitions_paused, offset_mismatches)
consumption_reports = Counter(
    "billy_consumption_reports_total",
    "Order totals sent to Balance with UpdateCampaigns, by outcome",
    ["outcome"],
)
acts_imported = Counter("billy_acts_imported_total", "Balance acts imported")
reconciliations = Counter(
    "billy_reconciliations_total", "Client-months reconciled with new figures", ["status"]
)

CONSUMPTION_OUTCOMES = ("accepted", "refused", "failed")
RECONCILIATION_STATUSES = ("matched", "differs", "no_act")

TOPIC_KINDS = ("results", "applied_services", "wallets", "dlq", "other")


def export_zero(roles: tuple[str, ...], tenants: tuple[str, ...]) -> None:
    """Create every child whose labels are known up front, so counters are exported at 0
    from the start (a rate() or an alert on a never-incremented counter sees 0, not nothing)."""
    for role in roles:
        for counter in _ROLE_COUNTERS:
            counter.labels(role)
    for tenant in tenants:
        duplicates.labels(tenant)
    for kind in TOPIC_KINDS:
        relay_published.labels(kind)
        relay_oversized.labels(kind)
    for role in roles:
        partitions_paused_now.labels(role)
    for dependency in ("kafka", "postgresql"):
        dependency_up.labels(dependency)
    for form in ("json", "xmlrpc"):
        for outcome in NOTIFICATION_OUTCOMES:
            notifications.labels(form, outcome)
    for outcome in CONSUMPTION_OUTCOMES:
        consumption_reports.labels(outcome)
    for status in RECONCILIATION_STATUSES:
        reconciliations.labels(status)
