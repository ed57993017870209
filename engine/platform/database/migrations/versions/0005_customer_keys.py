"""Per-customer data keys (crypto-shredding) and journey owners.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_keys",
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("master_key_id", sa.String(64), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_customer_keys")),
        sa.UniqueConstraint("customer_id", name=op.f("uq_customer_keys_customer_id")),
    )
    op.create_table(
        "journey_owners",
        sa.Column("workflow_id", sa.String(200), nullable=False),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("workflow_id", name=op.f("pk_journey_owners")),
    )
    op.create_index(
        op.f("ix_journey_owners_customer_id"), "journey_owners", ["customer_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_journey_owners_customer_id"), table_name="journey_owners")
    op.drop_table("journey_owners")
    op.drop_table("customer_keys")
