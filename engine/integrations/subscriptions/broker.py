"""Journey events to the broker (``AFTERCARE_EVENTS_BROKER_URL``): its subscription
and dispatcher, made to match the settings when a worker starts.

With the setting, the broker's subscription (a fixed id) is made or updated and its
dispatcher started, at once for every worker that starts (idempotent). Without it,
a broker subscription left from before is removed and its dispatcher stopped.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from sqlalchemy.exc import SQLAlchemyError
from temporalio.client import Client
from temporalio.service import RPCError

from engine.integrations.subscriptions.dispatchers import Dispatchers
from engine.messaging.broker_subscription import (
    BROKER_SUBSCRIPTION_ID,
    configure_broker_subscription,
)
from engine.messaging.event_demand import DEMAND_SETTLE
from engine.messaging.event_subscriptions import EventSubscriptions
from engine.messaging.journey_events import EVENT_TYPES
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.logging import get_logger
from engine.platform.settings import Settings
from workflows.webhook_contracts import BROKER_TRANSPORT

log = get_logger(__name__)


class BrokerConfigError(ValueError):
    """A broker publishing setting that cannot work; the message names it."""


def published_event_types(settings: Settings) -> tuple[str, ...]:
    """``AFTERCARE_EVENTS_TYPES``, checked against the event types there are."""
    unknown = sorted(set(settings.events_types) - EVENT_TYPES)
    if unknown:
        raise BrokerConfigError(
            f"AFTERCARE_EVENTS_TYPES: unknown event type(s) {', '.join(map(repr, unknown))}; "
            f"each must be one of {', '.join(sorted(EVENT_TYPES))} (empty: every type)"
        )
    return tuple(sorted(set(settings.events_types)))


def broker_location(url: str, exchange: str) -> str:
    """Where the events go, as the subscription shows it: the broker's address and
    virtual host and the exchange, never the credentials in the URL."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path or '/'} exchange {exchange}"


async def ensure_broker_publishing(client: Client, settings: Settings) -> None:
    """The broker's subscription and dispatcher as the settings say (see the module)."""
    types = published_event_types(settings)
    engine = create_engine(settings.resolved_database_url)
    try:
        sessions = create_session_factory(engine)
        subscriptions = EventSubscriptions(sessions)
        dispatchers = Dispatchers(client, settings.task_queue)
        if settings.events_broker_url is None:
            await _retire(subscriptions, dispatchers)
            return
        location = broker_location(
            settings.events_broker_url.get_secret_value(), settings.events_exchange
        )
        configured = await configure_broker_subscription(
            sessions,
            location=location,
            event_types=types,
            include_personal_data=settings.events_personal_data,
            start_after=await subscriptions.latest_event_id(),
        )
        if configured.demand_changed:
            # Until every process's copy of who wants what includes the broker's types,
            # events of those types may go unrecorded (as for CreateSubscription).
            await asyncio.sleep(DEMAND_SETTLE.total_seconds())
        await dispatchers.start(
            BROKER_SUBSCRIPTION_ID, configured.start_after, transport=BROKER_TRANSPORT
        )
        log.info(
            "journey events published to the broker",
            broker=location,
            event_types=",".join(types) or "*",
            personal_data=settings.events_personal_data,
        )
    finally:
        await engine.dispose()


async def _retire(subscriptions: EventSubscriptions, dispatchers: Dispatchers) -> None:
    # A tidy-up, not a need of this worker: one without a broker must not fail to
    # start over it (its dispatcher, left running, holds the events back meanwhile).
    try:
        if await subscriptions.remove(BROKER_SUBSCRIPTION_ID):
            await dispatchers.stop(BROKER_SUBSCRIPTION_ID)
            log.info("journey events no longer published to a broker")
    except (SQLAlchemyError, RPCError) as err:
        log.warning("could not look for a broker subscription to remove", error=type(err).__name__)
