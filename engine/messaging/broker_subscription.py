"""The broker's subscription: the row of ``event_subscriptions`` through which journey
events reach the configured RabbitMQ exchange, served by a dispatcher like any other.

Its id is fixed, so every worker of a deployment configures the same row. It has no
secret: the broker's credentials stay in the settings (``AFTERCARE_EVENTS_BROKER_URL``)
and are read when publishing; its ``url`` says where the events go, without them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.messaging.event_subscriptions import stored_filter
from engine.platform.database.tables import EventSubscription

BROKER_SUBSCRIPTION_ID = "sub_broker"


async def configure_broker_subscription(
    sessions: async_sessionmaker[AsyncSession],
    *,
    location: str,
    event_types: Sequence[str],
    include_personal_data: bool,
    start_after: int,
) -> Configured:
    """Make the broker's subscription active with these values."""
    wanted = _Wanted(location, event_types, include_personal_data, start_after)
    try:
        return await _configure(sessions, wanted)
    except IntegrityError:
        # Another worker made the row at the same moment: it is there now.
        return await _configure(sessions, wanted)


@dataclass(frozen=True)
class Configured:
    # The outbox id its dispatcher is to start after: ``start_after`` when it was not
    # active (never made, or removed since), else where it had got to.
    start_after: int
    # Whether the event types it wants are new (see engine.messaging.event_demand).
    demand_changed: bool


@dataclass(frozen=True)
class _Wanted:
    location: str
    event_types: Sequence[str]
    include_personal_data: bool
    start_after: int


async def _configure(sessions: async_sessionmaker[AsyncSession], wanted: _Wanted) -> Configured:
    types = stored_filter(wanted.event_types)
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        row = await session.get(EventSubscription, BROKER_SUBSCRIPTION_ID, with_for_update=True)
        if row is None:
            session.add(
                EventSubscription(
                    id=BROKER_SUBSCRIPTION_ID,
                    url=wanted.location,
                    secret="",
                    event_types=types,
                    include_personal_data=wanted.include_personal_data,
                    created_at=now,
                    removed_at=None,
                    delivered_through=wanted.start_after,
                )
            )
            return Configured(wanted.start_after, demand_changed=True)
        demand_changed = row.removed_at is not None or row.event_types != types
        row.url = wanted.location
        row.event_types = types
        row.include_personal_data = wanted.include_personal_data
        if row.removed_at is not None:
            # Subscribed again: from now on, as a new subscription (the outbox may
            # have been pruned past where it stopped).
            row.created_at = now
            row.removed_at = None
            row.delivered_through = wanted.start_after
        return Configured(int(row.delivered_through or 0), demand_changed)
