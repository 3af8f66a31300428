"""Consumption reports to Balance, imported acts, reconciliations.

- `consumption_watermark`: how far the ledger's revenue has been counted for reports (one
  row; the reporter never lets it cross a Balance month boundary in one step, so each month
  ends with a report that covers exactly that month).
- `consumption_reports`: per client and Balance month, the latest cumulative total billy
  made for it and whether Balance accepted that very report (updated only after it did).
- `acts`: Balance's acts as imported, unique by act id (imported once, published once).
- `reconciliations`: per client and month, the act amount against the ledger's revenue.
- `transfers_revenue_by_time`: the reporter finds the clients whose revenue changed in a
  window of time without reading the whole ledger.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_REVENUE = "target LIKE 't:%:revenue:%' OR source LIKE 't:%:revenue:%'"


def _now(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.create_index(
        "transfers_revenue_by_time",
        "transfers",
        ["created_at"],
        postgresql_where=sa.text(_REVENUE),
    )
    op.create_table(
        "consumption_watermark",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("counted_until", sa.DateTime(timezone=True), nullable=False),
        _now("updated_at"),
    )
    op.create_table(
        "consumption_reports",
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("client_id", sa.Text, nullable=False),
        sa.Column("month", sa.Text, nullable=False),
        sa.Column("service_order_id", sa.BigInteger, nullable=False),
        sa.Column("total_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("report_dt", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("refusals", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("accepted_at", sa.DateTime(timezone=True)),
        _now("updated_at"),
        sa.PrimaryKeyConstraint("tenant", "client_id", "month"),
        sa.CheckConstraint("total_minor >= 0", name="consumption_total_not_negative"),
        sa.CheckConstraint("month ~ '^[0-9]{4}-[0-9]{2}$'", name="consumption_month_format"),
    )
    op.create_index(
        "consumption_reports_waiting",
        "consumption_reports",
        ["month", "tenant", "client_id"],
        postgresql_where=sa.text("NOT accepted"),
    )
    op.create_table(
        "acts",
        sa.Column("act_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("client_id", sa.Text, nullable=False),
        sa.Column("month", sa.Text, nullable=False),
        sa.Column("act_date", sa.Date, nullable=False),
        sa.Column("external_id", sa.Text, nullable=False),
        sa.Column("contract_id", sa.BigInteger),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("amount_nds_minor", sa.BigInteger, nullable=False),
        sa.Column("paid_amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        _now("imported_at"),
    )
    op.create_index("acts_by_client", "acts", ["tenant", "client_id", "month"])
    op.create_table(
        "reconciliations",
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("client_id", sa.Text, nullable=False),
        sa.Column("month", sa.Text, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("act_minor", sa.BigInteger, nullable=False),
        sa.Column("ledger_minor", sa.BigInteger, nullable=False),
        sa.Column("difference_minor", sa.BigInteger, nullable=False),
        sa.Column("act_count", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False, server_default=sa.text("1")),
        _now("checked_at"),
        sa.PrimaryKeyConstraint("tenant", "client_id", "month"),
        sa.CheckConstraint(
            "difference_minor = act_minor - ledger_minor", name="difference_is_act_less_ledger"
        ),
        sa.CheckConstraint(
            "status IN ('matched', 'differs', 'no_act')", name="reconciliation_status_known"
        ),
    )


def downgrade() -> None:
    op.drop_table("reconciliations")
    op.drop_index("acts_by_client", table_name="acts")
    op.drop_table("acts")
    op.drop_index("consumption_reports_waiting", table_name="consumption_reports")
    op.drop_table("consumption_reports")
    op.drop_table("consumption_watermark")
    op.drop_index("transfers_revenue_by_time", table_name="transfers")
