"""The wallet ledger: wallets, holds, charges, transfers, processed commands, applied services.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _created_at() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def upgrade() -> None:
    op.create_table(
        "wallets",
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("client_id", sa.Text, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("available_minor", sa.BigInteger, nullable=False),
        sa.Column("held_minor", sa.BigInteger, nullable=False),
        sa.Column(
            "overdraft_limit_minor", sa.BigInteger, nullable=False, server_default=sa.text("0")
        ),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("tenant", "client_id"),
        sa.CheckConstraint("held_minor >= 0", name="held_not_negative"),
        sa.CheckConstraint("overdraft_limit_minor >= 0", name="overdraft_limit_not_negative"),
        sa.CheckConstraint(
            "available_minor >= -overdraft_limit_minor", name="available_within_overdraft"
        ),
        sa.CheckConstraint("version >= 1", name="version_positive"),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso"),
    )
    op.create_table(
        "holds",
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("client_id", sa.Text, nullable=False),
        sa.Column("hold_id", sa.Text, nullable=False),
        sa.Column("product_id", sa.Text, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("confirmed_minor", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("settled_by", sa.Text),
        _created_at(),
        sa.PrimaryKeyConstraint("tenant", "client_id", "hold_id"),
        sa.CheckConstraint("amount_minor > 0", name="hold_amount_positive"),
        sa.CheckConstraint(
            "status IN ('open', 'confirmed', 'released', 'expired')", name="hold_status_known"
        ),
        sa.CheckConstraint(
            "confirmed_minor >= 0 AND confirmed_minor <= amount_minor", name="confirmed_within_hold"
        ),
        sa.CheckConstraint("(status = 'open') = (settled_by IS NULL)", name="settled_once"),
        sa.CheckConstraint(
            "status = 'confirmed' OR confirmed_minor = 0", name="confirmed_only_if_confirmed"
        ),
    )
    op.create_index(
        "holds_open_by_expiry",
        "holds",
        ["expires_at_ms"],
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_table(
        "charges",
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("client_id", sa.Text, nullable=False),
        sa.Column("command_id", sa.Text, nullable=False),
        sa.Column("product_id", sa.Text, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("refunded_minor", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        _created_at(),
        sa.PrimaryKeyConstraint("tenant", "client_id", "command_id"),
        sa.CheckConstraint("amount_minor > 0", name="charge_amount_positive"),
        sa.CheckConstraint(
            "refunded_minor >= 0 AND refunded_minor <= amount_minor", name="refund_within_charge"
        ),
    )
    op.create_table(
        "transfers",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("client_id", sa.Text, nullable=False),
        sa.Column("command_id", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("record_ts_ms", sa.BigInteger, nullable=False),
        _created_at(),
        sa.CheckConstraint("amount_minor > 0", name="transfer_amount_positive"),
        sa.CheckConstraint("source <> target", name="transfer_between_two_accounts"),
    )
    op.create_index("transfers_by_client", "transfers", ["tenant", "client_id", "id"])
    op.create_table(
        "processed_commands",
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("command_id", sa.Text, nullable=False),
        sa.Column("client_id", sa.Text, nullable=False),
        sa.Column("payload_hash", sa.LargeBinary, nullable=False),
        sa.Column("applied", sa.Boolean, nullable=False),
        sa.Column("result", sa.LargeBinary, nullable=False),
        sa.Column("source_topic", sa.Text, nullable=False),
        sa.Column("source_partition", sa.Integer, nullable=False),
        sa.Column("source_offset", sa.BigInteger, nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("tenant", "command_id"),
    )
    op.create_table(
        "applied_services",
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("client_id", sa.Text, nullable=False),
        sa.Column("command_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("product_id", sa.Text, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("refund_of", sa.Text),
        sa.Column("applied_at_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("tenant", "client_id", "command_id"),
        sa.CheckConstraint("kind IN ('CHARGE', 'REFUND')", name="applied_kind_known"),
        sa.CheckConstraint("amount_minor > 0", name="applied_amount_positive"),
    )
    op.create_index(
        "applied_services_by_time",
        "applied_services",
        ["tenant", "client_id", "applied_at_ms", "command_id"],
    )


def downgrade() -> None:
    op.drop_index("applied_services_by_time", table_name="applied_services")
    op.drop_table("applied_services")
    op.drop_table("processed_commands")
    op.drop_index("transfers_by_client", table_name="transfers")
    op.drop_table("transfers")
    op.drop_table("charges")
    op.drop_index("holds_open_by_expiry", table_name="holds")
    op.drop_table("holds")
    op.drop_table("wallets")
