"""The outbox's activities (webhook delivery, the journeys' own event reports) with
the database engine each uses, for the worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from activities.journey_events import JourneyEventActivities
from activities.webhooks.deliver import WebhookDeliveryActivities
from engine.messaging.event_subscriptions import EventSubscriptions
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.settings import Settings


@asynccontextmanager
async def webhook_delivery_activities(
    settings: Settings,
) -> AsyncIterator[WebhookDeliveryActivities]:
    engine = create_engine(settings.resolved_database_url)
    try:
        yield WebhookDeliveryActivities(EventSubscriptions(create_session_factory(engine)))
    finally:
        await engine.dispose()


@asynccontextmanager
async def journey_event_activities(settings: Settings) -> AsyncIterator[JourneyEventActivities]:
    """The journeys' own reports into the same outbox the deliveries read."""
    engine = create_engine(settings.resolved_database_url)
    try:
        yield JourneyEventActivities(create_session_factory(engine))
    finally:
        await engine.dispose()
