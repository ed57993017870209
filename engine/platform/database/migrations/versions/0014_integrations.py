"""Webhook deliveries taken once, event subscriptions and their outbox.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "shopify_webhook_deliveries",
        sa.Column("webhook_id", sa.String(100), nullable=False),
        sa.Column("shop_domain", sa.String(255), nullable=False),
        sa.Column("topic", sa.String(100), nullable=False),
        sa.Column("outcome", sa.String(40), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("webhook_id", name=op.f("pk_shopify_webhook_deliveries")),
    )
    op.create_index(
        op.f("ix_shopify_webhook_deliveries_received_at"),
        "shopify_webhook_deliveries",
        ["received_at"],
    )
    op.create_table(
        "journey_event_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(300), nullable=False),
        sa.Column("journey_id", sa.String(200), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("personal", sa.Text(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journey_event_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_journey_event_outbox_event_id")),
    )
    op.create_index(
        op.f("ix_journey_event_outbox_journey_id"), "journey_event_outbox", ["journey_id"]
    )
    op.create_table(
        "event_subscriptions",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("secret", sa.String(200), nullable=False),
        sa.Column("event_types", sa.String(1000), nullable=False),
        sa.Column("include_personal_data", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_subscriptions")),
    )


def downgrade() -> None:
    op.drop_table("event_subscriptions")
    op.drop_index(op.f("ix_journey_event_outbox_journey_id"), table_name="journey_event_outbox")
    op.drop_table("journey_event_outbox")
    op.drop_index(
        op.f("ix_shopify_webhook_deliveries_received_at"), table_name="shopify_webhook_deliveries"
    )
    op.drop_table("shopify_webhook_deliveries")
