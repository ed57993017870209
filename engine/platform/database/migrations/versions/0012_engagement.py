"""Engagement (clicks, delivery outcomes), conversions and experiment assignments.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# (name, length) of the ledger's new columns, all nullable: rows from before have none.
NEW_LEDGER_COLUMNS = (
    ("plan", 100),
    ("category", 20),
    ("customer_id", 128),
    ("experiment", 100),
    ("variant", 40),
)


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        for name, length in NEW_LEDGER_COLUMNS:
            batch.add_column(sa.Column(name, sa.String(length), nullable=True))
        batch.create_index(op.f("ix_messages_plan"), ["plan"])
        batch.create_index(op.f("ix_messages_customer_id"), ["customer_id"])
    op.create_table(
        "engagement_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("automated", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.String(200), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_engagement_events_message_id_messages"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engagement_events")),
    )
    for column in ("message_id", "kind", "occurred_at"):
        op.create_index(op.f(f"ix_engagement_events_{column}"), "engagement_events", [column])
    op.create_table(
        "conversions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("order_id", sa.String(128), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("revenue_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("attributed_by", sa.String(20), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_conversions_message_id_messages")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversions")),
        sa.UniqueConstraint("order_id", name=op.f("uq_conversions_order_id")),
    )
    for column in ("message_id", "customer_id", "occurred_at"):
        op.create_index(op.f(f"ix_conversions_{column}"), "conversions", [column])
    op.create_table(
        "experiment_decisions",
        sa.Column("experiment", sa.String(100), nullable=False),
        sa.Column("winner", sa.String(40), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("experiment", name=op.f("pk_experiment_decisions")),
    )


def downgrade() -> None:
    op.drop_table("experiment_decisions")
    op.drop_table("conversions")
    op.drop_table("engagement_events")
    with op.batch_alter_table("messages") as batch:
        batch.drop_index(op.f("ix_messages_customer_id"))
        batch.drop_index(op.f("ix_messages_plan"))
        for name, _ in reversed(NEW_LEDGER_COLUMNS):
            batch.drop_column(name)
