"""Journey events for outbound subscribers: the one writer of the outbox.

Each event is written by :func:`record_journey_event` in the caller's transaction,
beside the fact it reports (a ledger outcome, an engagement row, a conversion, a
feedback answer), so an event exists exactly when its fact does, and only when
some subscription wants its type (engine/messaging/event_demand.py). ``event_id`` is
derived from the fact (``message.sent:<ledger key>``...), which makes recording it
again a no-op and gives receivers a stable ``webhook-id`` to deduplicate on.

``data`` must hold no personal data (ids, step, channel, score, amounts); addresses,
names and comments go in ``personal``, which only subscriptions that ask for it get.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Table, bindparam, insert, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.messaging.event_demand import is_wanted
from engine.platform.database.tables import JourneyEventRecord

JOURNEY_STARTED = "journey.started"
JOURNEY_ENDED = "journey.ended"
STAGE_CHANGED = "stage.changed"
MESSAGE_SENT = "message.sent"
MESSAGE_FAILED = "message.failed"
MESSAGE_DELIVERED = "message.delivered"
MESSAGE_CLICKED = "message.clicked"
FEEDBACK_RECEIVED = "feedback.received"
DETRACTOR = "detractor"
CONVERSION = "conversion"

# What a subscription may filter on (its ``event_types``, or ``*`` for all).
EVENT_TYPES = frozenset(
    {
        JOURNEY_STARTED,
        JOURNEY_ENDED,
        STAGE_CHANGED,
        MESSAGE_SENT,
        MESSAGE_FAILED,
        MESSAGE_DELIVERED,
        MESSAGE_CLICKED,
        FEEDBACK_RECEIVED,
        DETRACTOR,
        CONVERSION,
    }
)

# Net Promoter Score: 0-6 is a detractor.
DETRACTOR_MAX_SCORE = 6

# Built once, on the table: the send path writes events (docs/performance.md).
_OUTBOX = cast(Table, JourneyEventRecord.__table__)
_RECORDED = select(_OUTBOX.c.id).where(_OUTBOX.c.event_id == bindparam("event_id"))
_INSERT = insert(_OUTBOX)
_INSERT_UNLESS_RECORDED = sqlite_insert(_OUTBOX).on_conflict_do_nothing(
    index_elements=[_OUTBOX.c.event_id]
)


async def record_journey_event(
    session: AsyncSession,
    *,
    event_id: str,
    journey_id: str,
    type: str,
    occurred_at: datetime,
    data: Mapping[str, Any],
    personal: Mapping[str, Any] | None = None,
) -> bool:
    """Add the event to the outbox in ``session``'s transaction; False when an event
    with ``event_id`` is already there or no subscription wants its type. Raises
    ValueError for an unknown type."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown journey event type {type!r}")
    if not await is_wanted(session, type):
        return False
    row = {
        "event_id": event_id,
        "journey_id": journey_id,
        "type": type,
        "occurred_at": occurred_at.astimezone(UTC),
        "data": json.dumps(dict(data), sort_keys=True, default=str),
        "personal": json.dumps(dict(personal), sort_keys=True, default=str) if personal else None,
        "recorded_at": datetime.now(UTC),
    }
    if session.get_bind().dialect.name == "sqlite":
        # A conflict spends no id in SQLite: one statement does it.
        inserted = await session.execute(_INSERT_UNLESS_RECORDED, row)
        return cast(CursorResult[Any], inserted).rowcount > 0
    # Looked up first rather than ON CONFLICT: PostgreSQL would spend a sequence
    # value on the conflict, and every gap in ids holds the dispatcher back a moment.
    if await session.scalar(_RECORDED, {"event_id": event_id}) is not None:
        return False
    await session.execute(_INSERT, row)
    return True


async def record_journey_event_alone(
    sessions: async_sessionmaker[AsyncSession],
    *,
    event_id: str,
    journey_id: str,
    type: str,
    occurred_at: datetime,
    data: Mapping[str, Any],
    personal: Mapping[str, Any] | None = None,
) -> bool:
    """:func:`record_journey_event` in a transaction of its own, for a fact kept
    outside our database (a journey started in Temporal)."""
    async with sessions() as session, session.begin():
        return await record_journey_event(
            session,
            event_id=event_id,
            journey_id=journey_id,
            type=type,
            occurred_at=occurred_at,
            data=data,
            personal=personal,
        )


async def forget_personal_data(session: AsyncSession, journey_ids: Sequence[str]) -> None:
    """Erasure: drop the personal data of these journeys' events (the rest stays)."""
    await session.execute(
        update(JourneyEventRecord)
        .where(
            JourneyEventRecord.journey_id.in_(list(journey_ids)),
            JourneyEventRecord.personal.is_not(None),
        )
        .values(personal=None)
    )


def feedback_events(
    *, source_id: str, journey_id: str, score: int, occurred_at: datetime, comment: str | None
) -> list[dict[str, Any]]:
    """The events a feedback answer makes: ``feedback.received``, and ``detractor``
    for a score of 0-6 (keyword arguments for :func:`record_journey_event`)."""
    personal = {"comment": comment} if comment else None
    events: list[dict[str, Any]] = [
        {
            "event_id": f"{FEEDBACK_RECEIVED}:{source_id}",
            "journey_id": journey_id,
            "type": FEEDBACK_RECEIVED,
            "occurred_at": occurred_at,
            "data": {"score": score},
            "personal": personal,
        }
    ]
    if score <= DETRACTOR_MAX_SCORE:
        events.append(
            {
                "event_id": f"{DETRACTOR}:{source_id}",
                "journey_id": journey_id,
                "type": DETRACTOR,
                "occurred_at": occurred_at,
                "data": {"score": score},
                "personal": personal,
            }
        )
    return events
