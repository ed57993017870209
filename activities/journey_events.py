"""The ``report_journey_events`` local activity: a journey's own events (its stage
changed, it ended) into the outbound outbox.

A local activity: it runs in the journey's workflow task, with no round trip through
a task queue, and when no subscription wants these types it writes nothing at all
(engine/messaging/event_demand.py). Each note's event id is derived from the journey
and the note's number, so a retried report records nothing twice.
"""

from __future__ import annotations

import contextlib

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from engine.messaging.journey_events import JOURNEY_ENDED, record_journey_event
from workflows.contracts import (
    REPORT_JOURNEY_EVENTS_ACTIVITY,
    JourneyEventNote,
    ReportJourneyEventsInput,
)


class JourneyEventActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @activity.defn(name=REPORT_JOURNEY_EVENTS_ACTIVITY)
    async def report_journey_events(self, request: ReportJourneyEventsInput) -> None:
        # An attempt cut short after its commit (a worker stopped) is retried: the
        # events it wrote stand, the rest are written now.
        with contextlib.suppress(IntegrityError):
            async with self._sessions() as session, session.begin():
                for note in request.notes:
                    await record_journey_event(
                        session,
                        event_id=event_id_of(request.journey_id, note),
                        journey_id=request.journey_id,
                        type=note.type,
                        occurred_at=note.occurred_at,
                        data={
                            "order_id": request.order_id,
                            "customer_id": request.customer_id,
                            "plan": request.plan,
                            **note.data,
                        },
                    )


def event_id_of(journey_id: str, note: JourneyEventNote) -> str:
    if note.type == JOURNEY_ENDED:
        return f"{JOURNEY_ENDED}:{journey_id}"
    return f"{note.type}:{journey_id}:{note.number}"
