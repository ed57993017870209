"""The journey events the directory reports: ``journey.started``, and
``feedback.received`` / ``detractor`` for a feedback event, however it arrived
(API, feedback page, Shopify, the bus).

Their facts live in Temporal, not in our database, so each is recorded after
Temporal took it, under an id derived from the journey (and the event's own id):
a caller retrying after a crash in between records it then, and a repeat records
nothing.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.messaging.journey_events import (
    JOURNEY_STARTED,
    feedback_events,
    record_journey_event,
)
from workflows.ids import journey_id_for
from workflows.orders import Order, OrderEvent
from workflows.vocabulary import EventType


class JourneyEventsOutbox:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def started(self, order: Order, plan: str | None) -> None:
        journey_id = journey_id_for(order.order_id)
        address = order.shipping_address
        await self._record(
            {
                "event_id": f"{JOURNEY_STARTED}:{journey_id}",
                "journey_id": journey_id,
                "type": JOURNEY_STARTED,
                "occurred_at": datetime.now(UTC),
                "data": {
                    "order_id": order.order_id,
                    "customer_id": order.customer.id,
                    "plan": plan,
                    "currency": order.currency,
                    "total_minor": order.total_minor,
                    "item_count": order.item_count,
                    "country_code": address.country_code,
                },
                "personal": {
                    "name": order.customer.name,
                    "email": order.customer.email,
                    "phone": order.customer.phone,
                    "shipping_address": {
                        "name": address.name,
                        "line1": address.line1,
                        "line2": address.line2,
                        "city": address.city,
                        "postal_code": address.postal_code,
                        "region": address.region,
                        "country_code": address.country_code,
                    },
                },
            }
        )

    async def event_taken(self, journey_id: str, event: OrderEvent) -> None:
        """Report what the journey was told, when subscribers hear of it."""
        if event.type != EventType.FEEDBACK or event.feedback is None:
            return
        await self._record(
            *feedback_events(
                source_id=f"{journey_id}:{event.event_id}",
                journey_id=journey_id,
                score=event.feedback.score,
                occurred_at=event.occurred_at,
                comment=event.feedback.comment,
            )
        )

    async def _record(self, *events: dict[str, Any]) -> None:
        # A concurrent caller (a retried request) recording the same events wins
        # the unique event id: theirs stand.
        with contextlib.suppress(IntegrityError):
            async with self._sessions() as session, session.begin():
                for event in events:
                    await record_journey_event(session, **event)
