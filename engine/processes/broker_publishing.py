"""The broker publishing activity with the database engine it reads, for the worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from activities.broker.publish import BrokerPublishActivities
from engine.messaging.event_subscriptions import EventSubscriptions
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.settings import Settings


@asynccontextmanager
async def broker_publish_activities(settings: Settings) -> AsyncIterator[BrokerPublishActivities]:
    """Registered whether or not a broker is configured: without one, the broker's
    dispatcher (if one was left running) keeps its events waiting, in order."""
    engine = create_engine(settings.resolved_database_url)
    publisher = BrokerPublishActivities(
        EventSubscriptions(create_session_factory(engine)),
        settings.events_broker_url,
        settings.events_exchange,
    )
    try:
        yield publisher
    finally:
        await publisher.aclose()
        await engine.dispose()
