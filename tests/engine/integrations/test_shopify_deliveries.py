"""The record of Shopify deliveries acted on, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.integrations.shopify.deliveries import WebhookDeliveries


async def test_a_delivery_is_recorded_once_with_its_first_outcome(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    deliveries = WebhookDeliveries(db_sessions)
    assert await deliveries.outcome_of("b54557e4-bdd9-4b37-8a5f-bf7d70bcd043") is None
    await deliveries.record(
        "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", "a.myshopify.com", "orders/create", "started"
    )
    # Two copies raced; the second's record changes nothing.
    await deliveries.record(
        "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "a.myshopify.com",
        "orders/create",
        "already_running",
    )
    assert await deliveries.outcome_of("b54557e4-bdd9-4b37-8a5f-bf7d70bcd043") == "started"
