"""Charges live in the applied-services log (issue 12): one row and one index entry less a charge.

Every charge (a Charge, or a ConfirmHold that took revenue) was written twice: as the
applied-services log's CHARGE row and as a `charges` row with the same key, product, amount
and currency, the second only to know how much of it was refunded. That figure is now the
log row's `refunded_minor` (0 on every other kind), and `charges` is gone.

The upgrade refuses to drop a charge it cannot place: a `charges` row without a CHARGE row of
the same key and figures stops it before anything changes.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_SAME_CHARGE = (
    "a.tenant = c.tenant AND a.client_id = c.client_id AND a.command_id = c.command_id"
    " AND a.kind = 'CHARGE' AND a.product_id = c.product_id"
    " AND a.amount_minor = c.amount_minor AND a.currency = c.currency"
)


def upgrade() -> None:
    op.add_column(
        "applied_services",
        sa.Column("refunded_minor", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    )
    op.execute(
        f"""
        DO $$
        DECLARE orphan record;
        BEGIN
            SELECT c.tenant, c.client_id, c.command_id INTO orphan FROM charges c
            WHERE NOT EXISTS (SELECT 1 FROM applied_services a WHERE {_SAME_CHARGE}) LIMIT 1;
            IF FOUND THEN
                RAISE EXCEPTION 'charge %/%/% has no matching CHARGE row in applied_services',
                    orphan.tenant, orphan.client_id, orphan.command_id;
            END IF;
        END $$
        """
    )
    op.execute(
        f"UPDATE applied_services a SET refunded_minor = c.refunded_minor FROM charges c"
        f" WHERE {_SAME_CHARGE} AND c.refunded_minor <> 0"
    )
    op.create_check_constraint(
        "refund_within_charge",
        "applied_services",
        "refunded_minor >= 0 AND refunded_minor <= amount_minor",
    )
    op.create_check_constraint(
        "only_charges_refunded", "applied_services", "kind = 'CHARGE' OR refunded_minor = 0"
    )
    op.drop_table("charges")


def downgrade() -> None:
    op.create_table(
        "charges",
        sa.Column("tenant", sa.Text(collation="C"), nullable=False),
        sa.Column("client_id", sa.Text(collation="C"), nullable=False),
        sa.Column("command_id", sa.Text(collation="C"), nullable=False),
        sa.Column("product_id", sa.Text, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("refunded_minor", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("tenant", "client_id", "command_id"),
        sa.CheckConstraint("amount_minor > 0", name="charge_amount_positive"),
        sa.CheckConstraint(
            "refunded_minor >= 0 AND refunded_minor <= amount_minor", name="refund_within_charge"
        ),
    )
    op.execute(
        "INSERT INTO charges (tenant, client_id, command_id, product_id, amount_minor, currency,"
        " refunded_minor)"
        " SELECT tenant, client_id, command_id, product_id, amount_minor, currency,"
        " refunded_minor FROM applied_services WHERE kind = 'CHARGE'"
    )
    op.drop_constraint("only_charges_refunded", "applied_services", type_="check")
    op.drop_constraint("refund_within_charge", "applied_services", type_="check")
    op.drop_column("applied_services", "refunded_minor")
