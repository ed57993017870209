"""Who was texted at which number (keyed hashes, for inbound STOP / START), and
the answers given on the feedback page.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "phone_customers",
        sa.Column("phone_hash", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("phone_hash", "customer_id", name=op.f("pk_phone_customers")),
    )
    op.create_index(
        op.f("ix_phone_customers_customer_id"), "phone_customers", ["customer_id"], unique=False
    )
    op.create_table(
        "feedback_responses",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("journey_id", sa.String(200), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("delivered", sa.Boolean(), nullable=False),
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_feedback_responses")),
    )
    op.create_index(
        op.f("ix_feedback_responses_customer_id"),
        "feedback_responses",
        ["customer_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_feedback_responses_customer_id"), table_name="feedback_responses")
    op.drop_table("feedback_responses")
    op.drop_index(op.f("ix_phone_customers_customer_id"), table_name="phone_customers")
    op.drop_table("phone_customers")
