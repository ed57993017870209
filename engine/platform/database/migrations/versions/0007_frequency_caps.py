"""Marketing sends per customer, for the frequency cap across journeys.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "capped_sends",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("send_key", sa.String(300), nullable=False),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("category", sa.String(20), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("slot_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_capped_sends")),
        sa.UniqueConstraint("send_key", name=op.f("uq_capped_sends_send_key")),
    )
    op.create_index(
        op.f("ix_capped_sends_customer_id"), "capped_sends", ["customer_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_capped_sends_customer_id"), table_name="capped_sends")
    op.drop_table("capped_sends")
