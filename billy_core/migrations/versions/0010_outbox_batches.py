"""Outbox batches: one row carries a whole partition batch's output records.

A partition batch of the ledger writes about three output records per command (result,
applied service, wallet snapshot); one outbox row each meant three inserts, three index
entries and three deletes per command in PostgreSQL. A row now holds either one record (as
before: `topic`, `key`, `value`, `event_id`, `headers`) or, in `batch`, every record of one
partition batch packed together (`billy_core.stream.outbox.pack`), `records` saying how many.
Its `seq` is the shard sequence number of its last record. Rows written before stay readable.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("batch", sa.LargeBinary))
    op.add_column(
        "outbox", sa.Column("records", sa.Integer, nullable=False, server_default=sa.text("1"))
    )
    op.alter_column("outbox", "topic", nullable=True)
    op.alter_column("outbox", "event_id", nullable=True)
    op.create_check_constraint(
        "outbox_record_or_batch",
        "outbox",
        "(batch IS NULL AND topic IS NOT NULL AND event_id IS NOT NULL AND records = 1)"
        " OR (batch IS NOT NULL AND topic IS NULL AND records >= 1)",
    )


def downgrade() -> None:
    # A batch row cannot be unpacked in SQL: publish them (run the relay) before downgrading.
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM outbox WHERE batch IS NOT NULL) THEN"
        " RAISE EXCEPTION 'outbox batch rows are waiting: let the relay publish them first';"
        " END IF; END $$"
    )
    op.drop_constraint("outbox_record_or_batch", "outbox")
    op.alter_column("outbox", "event_id", nullable=False)
    op.alter_column("outbox", "topic", nullable=False)
    op.drop_column("outbox", "records")
    op.drop_column("outbox", "batch")
