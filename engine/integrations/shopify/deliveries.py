"""Which Shopify webhook deliveries were acted on (``X-Shopify-Webhook-Id``).

Shopify delivers at least once and retries with the same id; a delivery is recorded
only after the journey took it, so a delivery that failed on our side is acted on
when Shopify retries it. Two copies racing each other are both harmless: what they
carry is idempotent in the journey (one journey per order, an event once per id).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.platform.database.tables import ShopifyWebhookDelivery
from engine.platform.database.upsert import insert_on_conflict


class WebhookDeliveries:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def outcome_of(self, webhook_id: str) -> str | None:
        """What the delivery came to when it was acted on; None if it never was."""
        async with self._sessions() as session:
            return await session.scalar(
                select(ShopifyWebhookDelivery.outcome).where(
                    ShopifyWebhookDelivery.webhook_id == webhook_id
                )
            )

    async def record(self, webhook_id: str, shop_domain: str, topic: str, outcome: str) -> None:
        async with self._sessions.begin() as session:
            dialect = session.get_bind().dialect.name
            statement = (
                insert_on_conflict(dialect, ShopifyWebhookDelivery)
                .values(
                    webhook_id=webhook_id,
                    shop_domain=shop_domain,
                    topic=topic,
                    outcome=outcome,
                    received_at=datetime.now(UTC),
                )
                .on_conflict_do_nothing(index_elements=["webhook_id"])
            )
            await session.execute(statement)
