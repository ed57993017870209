"""Customer preferences (locale, timezone, quiet hours, preferred channel) and the
record of erased customers.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_preferences",
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("locale", sa.String(35), nullable=True),
        sa.Column("timezone", sa.String(64), nullable=True),
        sa.Column("quiet_start", sa.String(5), nullable=True),
        sa.Column("quiet_end", sa.String(5), nullable=True),
        sa.Column("preferred_channel", sa.String(20), nullable=True),
        sa.Column("revision", sa.Integer(), server_default="0", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_preferences")),
    )
    op.create_table(
        "erased_customers",
        sa.Column("customer_hash", sa.String(64), nullable=False),
        sa.Column(
            "erased_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("customer_hash", name=op.f("pk_erased_customers")),
    )


def downgrade() -> None:
    op.drop_table("erased_customers")
    op.drop_table("customer_preferences")
