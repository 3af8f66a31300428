"""Balance: the ledger's pending intents and mapping; the gateway's requests, view, claims.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _created() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def _updated() -> sa.Column:
    return sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def _jsonb(name: str, default: str) -> sa.Column:
    return sa.Column(name, JSONB, nullable=False, server_default=sa.text(f"'{default}'::jsonb"))


def upgrade() -> None:
    op.create_table(
        "balance_pending",
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("command_id", sa.Text, nullable=False),
        sa.Column("client_id", sa.Text, nullable=False),
        sa.Column("payload_hash", sa.LargeBinary, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("source_topic", sa.Text, nullable=False),
        sa.Column("source_partition", sa.Integer, nullable=False),
        sa.Column("source_offset", sa.BigInteger, nullable=False),
        _jsonb("resends", "[]"),
        _created(),
        sa.PrimaryKeyConstraint("tenant", "command_id"),
    )
    op.create_table(
        "balance_accounts",
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("client_id", sa.Text, nullable=False),
        sa.Column("balance_client_id", sa.BigInteger),
        sa.Column("service_order_id", sa.BigInteger),
        sa.Column("status", sa.Text, nullable=False),
        _jsonb("payers", "{}"),
        _jsonb("contracts", "{}"),
        _updated(),
        sa.PrimaryKeyConstraint("tenant", "client_id"),
    )
    op.create_table(
        "balance_invoices",
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("client_id", sa.Text, nullable=False),
        sa.Column("command_id", sa.Text, nullable=False),
        sa.Column("invoice_id", sa.BigInteger, nullable=False),
        sa.Column("request_id", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("payer_id", sa.Text, nullable=False),
        sa.Column("contract_id", sa.Text),
        sa.Column("payment_link", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        _created(),
        sa.PrimaryKeyConstraint("tenant", "client_id", "command_id"),
        sa.CheckConstraint("amount_minor > 0", name="invoice_amount_positive"),
    )
    op.create_table(
        "balance_requests",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("client_id", sa.Text, nullable=False),
        sa.Column("command_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("body", JSONB, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False, server_default=sa.text("'pending'")),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        _jsonb("progress", "{}"),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
        sa.Column("first_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("outcome_code", sa.Text),
        _created(),
        sa.Column("done_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("state IN ('pending', 'done')", name="balance_request_state_known"),
    )
    op.create_index(
        "balance_requests_by_command", "balance_requests", ["tenant", "command_id"], unique=True
    )
    op.create_index(
        "balance_requests_pending",
        "balance_requests",
        ["tenant", "client_id", "id"],
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_table(
        "gateway_clients",
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("client_id", sa.Text, nullable=False),
        sa.Column("balance_client_id", sa.BigInteger),
        sa.Column("service_order_id", sa.BigInteger),
        sa.Column("order_synced", sa.Boolean, nullable=False, server_default=sa.text("false")),
        _jsonb("payers", "{}"),
        _jsonb("contracts", "{}"),
        sa.Column("default_payer", sa.Text),
        _updated(),
        sa.PrimaryKeyConstraint("tenant", "client_id"),
    )
    op.create_table(
        "balance_claims",
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("balance_id", sa.BigInteger, nullable=False),
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("client_id", sa.Text, nullable=False),
        sa.Column("command_id", sa.Text, nullable=False),
        _created(),
        sa.PrimaryKeyConstraint("kind", "balance_id"),
    )
    op.create_table(
        "gateway_outbox_shards",
        sa.Column("shard", sa.Text, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("shard"),
    )


def downgrade() -> None:
    for table in (
        "gateway_outbox_shards",
        "balance_claims",
        "gateway_clients",
        "balance_requests",
        "balance_invoices",
        "balance_accounts",
        "balance_pending",
    ):
        op.drop_table(table)
