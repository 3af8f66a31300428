"""Payments from Balance: each order's money seen and credited, and the payment lines.

`balance_orders` keeps, per client's Balance order, the last applied notification `Tid` and
the order's cumulative money: the highest confirmed sum seen, what billy credited as
payments and what it credited as postpay top-ups (the rule: `billy_core.ledger.payments`).
It starts from the postpay credits already in the ledger, so an order topped up before this
migration is not credited a second time by its first notification.

`balance_pending.credit_minor` is the amount of a pending TransferCredit: money that may be
on the order already but is not in the wallet until its outcome comes (NULL for other kinds,
and for rows recorded before this migration, which count as 0).

`applied_services.kind` admits PAYMENT (money received from Balance).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "balance_orders",
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("client_id", sa.Text, nullable=False),
        sa.Column("service_order_id", sa.BigInteger, nullable=False),
        sa.Column("last_tid", sa.Numeric(40, 0), nullable=False, server_default=sa.text("0")),
        sa.Column("seen_minor", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column(
            "credited_payments_minor", sa.BigInteger, nullable=False, server_default=sa.text("0")
        ),
        sa.Column(
            "credited_postpay_minor", sa.BigInteger, nullable=False, server_default=sa.text("0")
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("tenant", "client_id", "service_order_id"),
        sa.CheckConstraint(
            "seen_minor >= 0 AND credited_payments_minor >= 0 AND credited_postpay_minor >= 0",
            name="balance_order_sums_not_negative",
        ),
    )
    op.create_table(
        "payments",
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("client_id", sa.Text, nullable=False),
        sa.Column("service_order_id", sa.BigInteger, nullable=False),
        sa.Column("tid", sa.Numeric(40, 0), nullable=False),
        sa.Column("command_id", sa.Text, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("order_sum_minor", sa.BigInteger, nullable=False),
        sa.Column("invoice_id", sa.BigInteger),
        sa.Column("received_at_ms", sa.BigInteger, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("tenant", "client_id", "command_id"),
        sa.CheckConstraint("amount_minor > 0", name="payment_amount_positive"),
    )
    op.create_index(
        "payments_by_time", "payments", ["tenant", "client_id", "received_at_ms", "tid"]
    )
    # The intake maps a notified order to its client.
    op.create_index("balance_accounts_by_order", "balance_accounts", ["service_order_id"])
    op.create_index("gateway_clients_by_order", "gateway_clients", ["service_order_id"])
    op.add_column("balance_pending", sa.Column("credit_minor", sa.BigInteger))
    op.drop_constraint("applied_kind_known", "applied_services", type_="check")
    op.create_check_constraint(
        "applied_kind_known", "applied_services", "kind IN ('CHARGE', 'REFUND', 'PAYMENT')"
    )
    # Postpay top-ups already credited count as the order's money credited.
    op.execute(
        "INSERT INTO balance_orders (tenant, client_id, service_order_id, credited_postpay_minor)"
        " SELECT a.tenant, a.client_id, a.service_order_id, coalesce(("
        "   SELECT sum(t.amount_minor) FROM transfers t"
        "   WHERE t.tenant = a.tenant AND t.client_id = a.client_id"
        # chr(58) is ':' (a colon before a word would be read as a bind parameter)
        "   AND t.source = 't' || chr(58) || a.tenant || chr(58) || 'credit'), 0)"
        " FROM balance_accounts a WHERE a.service_order_id IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_constraint("applied_kind_known", "applied_services", type_="check")
    op.create_check_constraint(
        "applied_kind_known", "applied_services", "kind IN ('CHARGE', 'REFUND')"
    )
    op.drop_column("balance_pending", "credit_minor")
    op.drop_index("gateway_clients_by_order", "gateway_clients")
    op.drop_index("balance_accounts_by_order", "balance_accounts")
    op.drop_index("payments_by_time", "payments")
    op.drop_table("payments")
    op.drop_table("balance_orders")
