"""Push devices, WhatsApp service windows, bounces and complaints.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "push_devices",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("platform", sa.String(10), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_push_devices")),
    )
    op.create_index(op.f("ix_push_devices_customer_id"), "push_devices", ["customer_id"])
    op.create_table(
        "push_deliveries",
        sa.Column("ledger_key", sa.String(300), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("fcm_name", sa.String(300), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ledger_key", "token_hash", name=op.f("pk_push_deliveries")),
    )
    op.create_table(
        "whatsapp_windows",
        sa.Column("phone_hash", sa.String(64), nullable=False),
        sa.Column("last_inbound_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("phone_hash", name=op.f("pk_whatsapp_windows")),
    )


def downgrade() -> None:
    op.drop_table("whatsapp_windows")
    op.drop_table("push_deliveries")
    op.drop_index(op.f("ix_push_devices_customer_id"), table_name="push_devices")
    op.drop_table("push_devices")
