"""Browsers' web push subscriptions as push devices: their two keys beside the
endpoint, which takes the token's place.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("push_devices") as batch:
        batch.add_column(sa.Column("web_push_p256dh", sa.String(100), nullable=True))
        batch.add_column(sa.Column("web_push_auth", sa.String(40), nullable=True))


def downgrade() -> None:
    # Without their keys the subscriptions would pass for FCM tokens: they go.
    op.execute(sa.text("DELETE FROM push_devices WHERE web_push_auth IS NOT NULL"))
    with op.batch_alter_table("push_devices") as batch:
        batch.drop_column("web_push_auth")
        batch.drop_column("web_push_p256dh")
