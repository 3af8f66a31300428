"""Cheaper writes on the ledger's hot path (issue 12): bytewise keys, one index on transfers,
the outbox's batches stored as they are.

- **Keys compare bytewise.** The tables the ledger writes or probes for every command get
  `COLLATE "C"` on their indexed text keys (ids, tenants, shards). Under a libc locale such as
  `C.UTF-8` every comparison inside their B-trees went through `strcoll`; with "C" it is a
  `memcmp`. The order does not change: `C.UTF-8` sorts by code point, and UTF-8's bytes sort
  the same way. The indexes are rebuilt; the tables are not rewritten.
- **Transfers keep one index.** The primary key becomes (tenant, client_id, id), which is
  the index reads used (`transfers_by_client`); `id` alone, unique by its sequence, was a
  second index entry per transfer that nothing reads by.
- **Outbox batches are not compressed.** A batch row holds a partition batch's records
  (hundreds of KiB), which PostgreSQL compressed with pglz on insert, ~4.5 ms a row, only
  for the relay to decompress it and delete the row milliseconds later.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# table -> its indexed text keys (billy_core.store.tables declares them as `Key`).
BYTEWISE_KEYS = {
    "consumer_offsets": ("consumer_group", "topic"),
    "outbox": ("shard", "deployment"),
    "clients": ("tenant", "client_id"),
    "wallets": ("tenant", "client_id"),
    "holds": ("tenant", "client_id", "hold_id"),
    "charges": ("tenant", "client_id", "command_id"),
    "transfers": ("tenant", "client_id"),
    "processed_commands": ("tenant", "command_id"),
    "applied_services": ("tenant", "client_id", "command_id"),
    "balance_pending": ("tenant", "command_id"),
}


def upgrade() -> None:
    for table, columns in BYTEWISE_KEYS.items():
        for column in columns:
            op.alter_column(table, column, type_=sa.Text(collation="C"))
    op.drop_constraint("transfers_pkey", "transfers", type_="primary")
    op.drop_index("transfers_by_client", table_name="transfers")
    op.create_primary_key("transfers_pkey", "transfers", ["tenant", "client_id", "id"])
    op.execute("ALTER TABLE outbox ALTER COLUMN batch SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.execute("ALTER TABLE outbox ALTER COLUMN batch SET STORAGE EXTENDED")
    op.drop_constraint("transfers_pkey", "transfers", type_="primary")
    op.create_primary_key("transfers_pkey", "transfers", ["id"])
    op.create_index("transfers_by_client", "transfers", ["tenant", "client_id", "id"])
    for table, columns in BYTEWISE_KEYS.items():
        for column in columns:
            op.alter_column(table, column, type_=sa.Text())
