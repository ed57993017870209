"""Pauses of sending by scope (plan, step, category, template), kept after they are lifted.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-09
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "send_pauses",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("scope_kind", sa.String(20), nullable=False),
        sa.Column("scope_value", sa.String(100), nullable=False),
        sa.Column("include_transactional", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(32), nullable=True),
        sa.Column("resumed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resumed_by", sa.String(32), nullable=True),
        sa.Column("active_key", sa.String(160), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_send_pauses")),
        sa.UniqueConstraint("active_key", name=op.f("uq_send_pauses_active_key")),
    )


def downgrade() -> None:
    op.drop_table("send_pauses")
