"""Balance requests name their deployment: each deployment's gateway performs its own.

Two deployments on one database (a demo beside `billy run`) each have a gateway; without
this, either performer took the other's requests and answered them on its own topics, so the
deployment that asked never heard back. The command-id uniqueness becomes per deployment.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows already there belong to the deployment named `billy` (the only one before).
    op.add_column(
        "balance_requests",
        sa.Column("deployment", sa.Text, nullable=False, server_default=sa.text("'billy'")),
    )
    op.alter_column("balance_requests", "deployment", server_default=None)
    op.drop_index("balance_requests_by_command", "balance_requests")
    op.create_index(
        "balance_requests_by_command",
        "balance_requests",
        ["deployment", "tenant", "command_id"],
        unique=True,
    )
    op.drop_index("balance_requests_pending", "balance_requests")
    op.create_index(
        "balance_requests_pending",
        "balance_requests",
        ["deployment", "tenant", "client_id", "id"],
        postgresql_where=sa.text("state = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index("balance_requests_pending", "balance_requests")
    op.create_index(
        "balance_requests_pending",
        "balance_requests",
        ["tenant", "client_id", "id"],
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.drop_index("balance_requests_by_command", "balance_requests")
    op.create_index(
        "balance_requests_by_command", "balance_requests", ["tenant", "command_id"], unique=True
    )
    op.drop_column("balance_requests", "deployment")
