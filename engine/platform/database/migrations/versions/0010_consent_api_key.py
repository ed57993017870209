"""Which API key recorded a consent decision (None: the customer, on our pages or by text).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("consent_events") as table:
        table.add_column(sa.Column("api_key_id", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consent_events") as table:
        table.drop_column("api_key_id")
