"""The database schema as SQLAlchemy Core metadata: the one place that names tables and columns.

Migrations in `billy_core/migrations/versions/` create exactly this (a test compares them).
Every table that holds client data is keyed by (tenant, client_id) first, so a deployment
can later shard wallets by client hash without a query that joins across clients.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

# The indexed text keys of the tables the ledger writes or probes for every command (ids,
# tenants, shards) compare bytewise: under a libc locale (`C.UTF-8`) every comparison in
# their B-trees went through strcoll (migration 0011). Same order: UTF-8 bytes sort as
# code points do.
Key = Text(collation="C")


def _now() -> Column[datetime]:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


# Where each consumer group stands in each partition. The ledger advances `next_offset` with a
# compare-and-set in the same transaction as its ledger writes; `outbox_seq` numbers that
# partition's outbox records without gaps (one writer per partition, serialized by this row).
consumer_offsets = Table(
    "consumer_offsets",
    metadata,
    Column("consumer_group", Key, nullable=False),
    Column("topic", Key, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("next_offset", BigInteger, nullable=False),
    Column("outbox_seq", BigInteger, nullable=False, server_default=text("0")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("consumer_group", "topic", "partition"),
    CheckConstraint("next_offset >= 0", name="next_offset_not_negative"),
    CheckConstraint("outbox_seq >= 0", name="outbox_seq_not_negative"),
)

# Records waiting for the relay. `shard` is the source "<topic>/<partition>": rows of one shard
# are published in `seq` order, which is the order the ledger applied them. `deployment` (the
# topic prefix) keeps two deployments on one database from publishing each other's rows.
# A row is one record (topic ... headers), or a whole partition batch's records packed in
# `batch` (`records` of them; billy_core.stream.outbox.pack), its seq that of its last record.
outbox = Table(
    "outbox",
    metadata,
    Column("shard", Key, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("topic", Text),
    Column("key", LargeBinary),  # null stays null (an exact DLQ copy)
    Column("value", LargeBinary),  # null: a tombstone (an exact DLQ copy)
    Column("event_id", Text),
    # Record headers in order: [[name, base64 value], ...] (billy_core.stream.outbox).
    Column("headers", JSONB),
    _now(),
    Column("deployment", Key, nullable=False),
    Column("batch", LargeBinary),
    Column("records", Integer, nullable=False, server_default=text("1")),
    PrimaryKeyConstraint("shard", "seq"),
    Index("outbox_by_deployment", "deployment", "shard", "seq"),
    CheckConstraint(
        "(batch IS NULL AND topic IS NOT NULL AND event_id IS NOT NULL AND records = 1)"
        " OR (batch IS NOT NULL AND topic IS NULL AND records >= 1)",
        name="outbox_record_or_batch",
    ),
)

# Who the client is. Names and emails live here only: never in keys, logs, metrics or topics.
clients = Table(
    "clients",
    metadata,
    Column("tenant", Key, nullable=False),
    Column("client_id", Key, nullable=False),
    Column("name", Text, nullable=False),
    Column("email", Text, nullable=False),
    _now(),
    PrimaryKeyConstraint("tenant", "client_id"),
)

wallets = Table(
    "wallets",
    metadata,
    Column("tenant", Key, nullable=False),
    Column("client_id", Key, nullable=False),
    Column("currency", Text, nullable=False),
    Column("available_minor", BigInteger, nullable=False),
    Column("held_minor", BigInteger, nullable=False),
    Column("overdraft_limit_minor", BigInteger, nullable=False, server_default=text("0")),
    Column("version", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant", "client_id"),
    CheckConstraint("held_minor >= 0", name="held_not_negative"),
    CheckConstraint("overdraft_limit_minor >= 0", name="overdraft_limit_not_negative"),
    CheckConstraint("available_minor >= -overdraft_limit_minor", name="available_within_overdraft"),
    CheckConstraint("version >= 1", name="version_positive"),
    CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso"),
)

holds = Table(
    "holds",
    metadata,
    Column("tenant", Key, nullable=False),
    Column("client_id", Key, nullable=False),
    Column("hold_id", Key, nullable=False),
    Column("product_id", Text, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("expires_at_ms", BigInteger, nullable=False),
    Column("status", Text, nullable=False),
    Column("confirmed_minor", BigInteger, nullable=False, server_default=text("0")),
    Column("settled_by", Text),
    _now(),
    PrimaryKeyConstraint("tenant", "client_id", "hold_id"),
    CheckConstraint("amount_minor > 0", name="hold_amount_positive"),
    CheckConstraint(
        "status IN ('open', 'confirmed', 'released', 'expired')", name="hold_status_known"
    ),
    CheckConstraint(
        "confirmed_minor >= 0 AND confirmed_minor <= amount_minor", name="confirmed_within_hold"
    ),
    CheckConstraint("(status = 'open') = (settled_by IS NULL)", name="settled_once"),
    CheckConstraint(
        "status = 'confirmed' OR confirmed_minor = 0", name="confirmed_only_if_confirmed"
    ),
)
# The sweeper looks for open holds past their time; the index holds only open ones.
Index("holds_open_by_expiry", holds.c.expires_at_ms, postgresql_where=text("status = 'open'"))

# The double entries. Immutable: billy only ever inserts here. One row moves a positive amount
# from `source` to `target`, so every set of rows sums to zero per currency by construction.
transfers = Table(
    "transfers",
    metadata,
    Column("id", BigInteger, nullable=False, autoincrement=True),
    Column("tenant", Key, nullable=False),
    Column("client_id", Key, nullable=False),
    Column("command_id", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("record_ts_ms", BigInteger, nullable=False),
    _now(),
    CheckConstraint("amount_minor > 0", name="transfer_amount_positive"),
    CheckConstraint("source <> target", name="transfer_between_two_accounts"),
    # A client's transfers in order; `id` alone (unique by its sequence) needs no index.
    PrimaryKeyConstraint("tenant", "client_id", "id", name="transfers_pkey"),
)

# One row per command_id and tenant: the idempotency record and the stored result.
processed_commands = Table(
    "processed_commands",
    metadata,
    Column("tenant", Key, nullable=False),
    Column("command_id", Key, nullable=False),
    Column("client_id", Text, nullable=False),
    Column("payload_hash", LargeBinary, nullable=False),
    Column("applied", Boolean, nullable=False),
    # The Result as billy published it (Avro single-object bytes), replayed for duplicates.
    Column("result", LargeBinary, nullable=False),
    Column("source_topic", Text, nullable=False),
    Column("source_partition", Integer, nullable=False),
    Column("source_offset", BigInteger, nullable=False),
    _now(),
    PrimaryKeyConstraint("tenant", "command_id"),
)

# The applied-services log, for the read API (the topic carries the same rows). Its CHARGE
# rows are also what can be refunded (a Charge, or the ConfirmHold that took revenue):
# `refunded_minor` says how much of each went back. They were a table of their own, `charges`,
# one more row and index entry per charge, until migration 0012.
applied_services = Table(
    "applied_services",
    metadata,
    Column("tenant", Key, nullable=False),
    Column("client_id", Key, nullable=False),
    Column("command_id", Key, nullable=False),
    Column("kind", Text, nullable=False),
    Column("product_id", Text, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("refund_of", Text),
    Column("applied_at_ms", BigInteger, nullable=False),
    Column("refunded_minor", BigInteger, nullable=False, server_default=text("0")),
    PrimaryKeyConstraint("tenant", "client_id", "command_id"),
    CheckConstraint("kind IN ('CHARGE', 'REFUND', 'PAYMENT')", name="applied_kind_known"),
    CheckConstraint("amount_minor > 0", name="applied_amount_positive"),
    CheckConstraint(
        "refunded_minor >= 0 AND refunded_minor <= amount_minor", name="refund_within_charge"
    ),
    CheckConstraint("kind = 'CHARGE' OR refunded_minor = 0", name="only_charges_refunded"),
)
Index(
    "applied_services_by_time",
    applied_services.c.tenant,
    applied_services.c.client_id,
    applied_services.c.applied_at_ms,
    applied_services.c.command_id,
)

# The audit trail of the billing team's corrections: who, why, how much, when (record time).
adjustments = Table(
    "adjustments",
    metadata,
    Column("tenant", Text, nullable=False),
    Column("client_id", Text, nullable=False),
    Column("command_id", Text, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("operator", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("applied_at_ms", BigInteger, nullable=False),
    _now(),
    PrimaryKeyConstraint("tenant", "client_id", "command_id"),
    CheckConstraint("amount_minor <> 0", name="adjustment_not_zero"),
)


# --- Balance (migration 0005) ----------------------------------------------------------------
# Ledger side: a Balance-bound command waiting for the gateway's outcome (its idempotency
# record until then: a resend while pending is remembered in `resends` and answered with the
# result when it comes), and what Balance made for each client (the read API shows it).
balance_pending = Table(
    "balance_pending",
    metadata,
    Column("tenant", Key, nullable=False),
    Column("command_id", Key, nullable=False),
    Column("client_id", Text, nullable=False),
    Column("payload_hash", LargeBinary, nullable=False),
    Column("kind", Text, nullable=False),
    Column("source_topic", Text, nullable=False),
    Column("source_partition", Integer, nullable=False),
    Column("source_offset", BigInteger, nullable=False),
    # Resends seen while pending: [[topic, partition, offset], ...], answered as duplicates.
    Column("resends", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    _now(),
    # A pending TransferCredit's amount (migration 0008): money that may be on the order in
    # Balance already but not yet in the wallet (billy_core.ledger.payments).
    Column("credit_minor", BigInteger),
    PrimaryKeyConstraint("tenant", "command_id"),
)

balance_accounts = Table(
    "balance_accounts",
    metadata,
    Column("tenant", Text, nullable=False),
    Column("client_id", Text, nullable=False),
    Column("balance_client_id", BigInteger),
    Column("service_order_id", BigInteger),
    Column("status", Text, nullable=False),  # registered | failed
    # billy payer id -> {person_id, kind}; billy contract id -> {balance_contract_id, ...}
    Column("payers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("contracts", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant", "client_id"),
)
Index("balance_accounts_by_order", balance_accounts.c.service_order_id)

balance_invoices = Table(
    "balance_invoices",
    metadata,
    Column("tenant", Text, nullable=False),
    Column("client_id", Text, nullable=False),
    Column("command_id", Text, nullable=False),
    Column("invoice_id", BigInteger, nullable=False),
    Column("request_id", BigInteger, nullable=False),
    Column("kind", Text, nullable=False),  # prepay | credit
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("payer_id", Text, nullable=False),
    Column("contract_id", Text),
    Column("payment_link", Text),
    Column("status", Text, nullable=False),  # unpaid | paid | credited
    _now(),
    PrimaryKeyConstraint("tenant", "client_id", "command_id"),
    CheckConstraint("amount_minor > 0", name="invoice_amount_positive"),
)

# Gateway side: every request it recorded (exactly once, from the engine) and how far the
# performer got: `progress` holds the Balance ids found or created so far and the intent
# markers written before each call that creates something.
balance_requests = Table(
    "balance_requests",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("tenant", Text, nullable=False),
    Column("client_id", Text, nullable=False),
    Column("command_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("body", JSONB, nullable=False),
    Column("currency", Text, nullable=False),
    Column("state", Text, nullable=False, server_default=text("'pending'")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("progress", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("first_attempt_at", DateTime(timezone=True)),
    Column("outcome_code", Text),
    _now(),
    Column("done_at", DateTime(timezone=True)),
    # The topic prefix of the deployment that asked: only its own gateway performs it.
    Column("deployment", Text, nullable=False),
    CheckConstraint("state IN ('pending', 'done')", name="balance_request_state_known"),
)
Index(
    "balance_requests_by_command",
    balance_requests.c.deployment,
    balance_requests.c.tenant,
    balance_requests.c.command_id,
    unique=True,
)
Index(
    "balance_requests_pending",
    balance_requests.c.deployment,
    balance_requests.c.tenant,
    balance_requests.c.client_id,
    balance_requests.c.id,
    postgresql_where=text("state = 'pending'"),
)

# The gateway's own view of each client in Balance (what the next request builds on).
gateway_clients = Table(
    "gateway_clients",
    metadata,
    Column("tenant", Text, nullable=False),
    Column("client_id", Text, nullable=False),
    Column("balance_client_id", BigInteger),
    Column("service_order_id", BigInteger),
    Column("order_synced", Boolean, nullable=False, server_default=text("false")),
    Column("payers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("contracts", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("default_payer", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant", "client_id"),
)
Index("gateway_clients_by_order", gateway_clients.c.service_order_id)

# Every Balance object billy made or adopted, once: a look after an unclear call adopts only
# objects nobody claimed, so one object never serves two commands.
balance_claims = Table(
    "balance_claims",
    metadata,
    Column("kind", Text, nullable=False),  # client | order | person | contract | request | invoice
    Column("balance_id", BigInteger, nullable=False),
    Column("tenant", Text, nullable=False),
    Column("client_id", Text, nullable=False),
    Column("command_id", Text, nullable=False),
    _now(),
    PrimaryKeyConstraint("kind", "balance_id"),
)

# The gateway's outbox shards (`<prefix>.gateway/<n>`): the last seq used, locked while a
# request's outcome is written, so a shard's rows commit in seq order.
gateway_outbox_shards = Table(
    "gateway_outbox_shards",
    metadata,
    Column("shard", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    PrimaryKeyConstraint("shard"),
)


# --- payments from Balance (migration 0008) ---------------------------------------------------
# Per client's order: the last applied notification Tid and the order's cumulative money, seen
# (confirmed by Balance) and credited (as payments, as postpay top-ups); the rule is
# billy_core.ledger.payments.
balance_orders = Table(
    "balance_orders",
    metadata,
    Column("tenant", Text, nullable=False),
    Column("client_id", Text, nullable=False),
    Column("service_order_id", BigInteger, nullable=False),
    Column("last_tid", Numeric(40, 0), nullable=False, server_default=text("0")),
    Column("seen_minor", BigInteger, nullable=False, server_default=text("0")),
    Column("credited_payments_minor", BigInteger, nullable=False, server_default=text("0")),
    Column("credited_postpay_minor", BigInteger, nullable=False, server_default=text("0")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant", "client_id", "service_order_id"),
    CheckConstraint(
        "seen_minor >= 0 AND credited_payments_minor >= 0 AND credited_postpay_minor >= 0",
        name="balance_order_sums_not_negative",
    ),
)

# One row per credited payment (a notification that raised the order's money), for reads.
payments = Table(
    "payments",
    metadata,
    Column("tenant", Text, nullable=False),
    Column("client_id", Text, nullable=False),
    Column("service_order_id", BigInteger, nullable=False),
    Column("tid", Numeric(40, 0), nullable=False),
    Column("command_id", Text, nullable=False),  # billy-payment:<order>:<tid>[:<top-up>]
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("order_sum_minor", BigInteger, nullable=False),  # the order's confirmed total
    Column("invoice_id", BigInteger),  # when one unpaid invoice has exactly this amount
    Column("received_at_ms", BigInteger, nullable=False),
    _now(),
    PrimaryKeyConstraint("tenant", "client_id", "command_id"),
    CheckConstraint("amount_minor > 0", name="payment_amount_positive"),
)
Index(
    "payments_by_time",
    payments.c.tenant,
    payments.c.client_id,
    payments.c.received_at_ms,
    payments.c.tid,
)


# --- Security (migration 0006) ---------------------------------------------------------------
# Tenants onboarded with `billy tenants add` (their Kafka principal), and the read API's
# tokens: only a SHA-256 of each token's secret is kept, found by its public selector; a
# rotated-out token keeps working until `expires_at` (billy_core.security.tokens).
tenants = Table(
    "tenants",
    metadata,
    Column("tenant", Text, nullable=False),
    Column("principal", Text, nullable=False),
    _now(),
    PrimaryKeyConstraint("tenant"),
)
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("selector", Text, nullable=False),
    Column("tenant", Text, nullable=False),
    Column("secret_sha256", LargeBinary, nullable=False),
    _now(),
    Column("expires_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("selector"),
    CheckConstraint("octet_length(secret_sha256) = 32", name="api_token_hash_size"),
)
Index("api_tokens_by_tenant", api_tokens.c.tenant)


# --- consumption reports, acts, reconciliations (migration 0009; billy_core.acts) -------------
# The reporter finds clients whose revenue changed in a window of time through this index.
Index(
    "transfers_revenue_by_time",
    transfers.c.created_at,
    postgresql_where=text("target LIKE 't:%:revenue:%' OR source LIKE 't:%:revenue:%'"),
)

# How far the ledger's revenue has been counted into reports (one row, name 'revenue').
consumption_watermark = Table(
    "consumption_watermark",
    metadata,
    Column("name", Text, primary_key=True),
    Column("counted_until", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Per client and Balance month: the latest cumulative total made for it, and whether Balance
# accepted that very report (set only after UpdateCampaigns answered 1 for it).
consumption_reports = Table(
    "consumption_reports",
    metadata,
    Column("tenant", Text, nullable=False),
    Column("client_id", Text, nullable=False),
    Column("month", Text, nullable=False),
    Column("service_order_id", BigInteger, nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("report_dt", DateTime(timezone=True), nullable=False),
    Column("accepted", Boolean, nullable=False, server_default=text("false")),
    Column("refusals", Integer, nullable=False, server_default=text("0")),
    Column("accepted_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant", "client_id", "month"),
    CheckConstraint("total_minor >= 0", name="consumption_total_not_negative"),
    CheckConstraint("month ~ '^[0-9]{4}-[0-9]{2}$'", name="consumption_month_format"),
)
Index(
    "consumption_reports_waiting",
    consumption_reports.c.month,
    consumption_reports.c.tenant,
    consumption_reports.c.client_id,
    postgresql_where=text("NOT accepted"),
)

# Balance's acts as imported: each once (unique act id), published once.
acts = Table(
    "acts",
    metadata,
    Column("act_id", BigInteger, primary_key=True, autoincrement=False),
    Column("tenant", Text, nullable=False),
    Column("client_id", Text, nullable=False),
    Column("month", Text, nullable=False),
    Column("act_date", Date, nullable=False),
    Column("external_id", Text, nullable=False),
    Column("contract_id", BigInteger),
    Column("amount_minor", BigInteger, nullable=False),
    Column("amount_nds_minor", BigInteger, nullable=False),
    Column("paid_amount_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("imported_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
Index("acts_by_client", acts.c.tenant, acts.c.client_id, acts.c.month)

# Per client and month: the acts' sum against the ledger's revenue of the month.
reconciliations = Table(
    "reconciliations",
    metadata,
    Column("tenant", Text, nullable=False),
    Column("client_id", Text, nullable=False),
    Column("month", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("act_minor", BigInteger, nullable=False),
    Column("ledger_minor", BigInteger, nullable=False),
    Column("difference_minor", BigInteger, nullable=False),
    Column("act_count", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("revision", Integer, nullable=False, server_default=text("1")),
    Column("checked_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant", "client_id", "month"),
    CheckConstraint(
        "difference_minor = act_minor - ledger_minor", name="difference_is_act_less_ledger"
    ),
    CheckConstraint(
        "status IN ('matched', 'differs', 'no_act')", name="reconciliation_status_known"
    ),
)
