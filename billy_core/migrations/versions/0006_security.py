"""Tenants onboarded with `billy tenants add`, and the read API's tokens stored hashed.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("principal", sa.Text, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("tenant"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("selector", sa.Text, nullable=False),
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("secret_sha256", sa.LargeBinary, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("selector"),
        sa.CheckConstraint("octet_length(secret_sha256) = 32", name="api_token_hash_size"),
    )
    op.create_index("api_tokens_by_tenant", "api_tokens", ["tenant"])


def downgrade() -> None:
    op.drop_index("api_tokens_by_tenant", table_name="api_tokens")
    op.drop_table("api_tokens")
    op.drop_table("tenants")
