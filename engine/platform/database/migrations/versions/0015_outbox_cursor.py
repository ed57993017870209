"""Each subscription's delivered cursor, so the outbox can be pruned behind them.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("event_subscriptions") as batch:
        batch.add_column(
            sa.Column("delivered_through", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("event_subscriptions") as batch:
        batch.drop_column("delivered_through")
