"""Outbox rows name their deployment; keys and values may be null; headers keep order.

- `deployment` (the topic prefix): a relay publishes only its own deployment's rows, so two
  deployments on one database never publish each other's outputs.
- `key`, `value` nullable: a DLQ copy is exact, a null key or a tombstone stays null (and
  an empty key stays empty, no longer confused with null).
- `headers` holds a JSON list of `[name, base64 value]` pairs (original headers of a DLQ
  copy come first, in order, duplicates kept).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows already there were written by the deployment named `billy` (the only one before).
    op.add_column(
        "outbox",
        sa.Column("deployment", sa.Text, nullable=False, server_default=sa.text("'billy'")),
    )
    op.alter_column("outbox", "deployment", server_default=None)
    op.alter_column("outbox", "key", nullable=True)
    op.alter_column("outbox", "value", nullable=True)
    op.create_index("outbox_by_deployment", "outbox", ["deployment", "shard", "seq"])


def downgrade() -> None:
    op.drop_index("outbox_by_deployment", "outbox")
    op.execute("DELETE FROM outbox WHERE value IS NULL")
    op.execute("UPDATE outbox SET key = '' WHERE key IS NULL")
    op.alter_column("outbox", "value", nullable=False)
    op.alter_column("outbox", "key", nullable=False)
    op.drop_column("outbox", "deployment")
