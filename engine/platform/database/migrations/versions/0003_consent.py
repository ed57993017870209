"""Consent events (an append-only audit trail) and used one-time link tokens.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-15
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "consent_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("channel", sa.String(20), nullable=True),
        sa.Column("category", sa.String(20), nullable=True),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_events")),
    )
    op.create_index(
        op.f("ix_consent_events_customer_id"), "consent_events", ["customer_id"], unique=False
    )
    op.create_table(
        "used_link_tokens",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column(
            "used_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_used_link_tokens")),
    )


def downgrade() -> None:
    op.drop_table("used_link_tokens")
    op.drop_index(op.f("ix_consent_events_customer_id"), table_name="consent_events")
    op.drop_table("consent_events")
