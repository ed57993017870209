"""Delivery reports on messages, and the suppression list.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode: a plain ALTER on PostgreSQL, and on SQLite whatever the
    # operation needs (adding nullable columns needs no table rebuild).
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("delivery_status", sa.String(20), nullable=True))
        batch.add_column(
            sa.Column("delivery_updated_at", sa.DateTime(timezone=True), nullable=True)
        )
    op.create_index(op.f("ix_messages_provider_message_id"), "messages", ["provider_message_id"])

    op.create_table(
        "suppressions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
        sa.UniqueConstraint("channel", "address", name=op.f("uq_suppressions_channel")),
    )


def downgrade() -> None:
    op.drop_table("suppressions")
    op.drop_index(op.f("ix_messages_provider_message_id"), table_name="messages")
    # SQLite rebuilds the table here; the rebuild keeps 0001's constraints and indexes.
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("delivery_updated_at")
        batch.drop_column("delivery_status")
