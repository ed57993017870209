"""Which journey event types any active subscription wants, so the facts nobody
subscribed to write no outbox row.

Every ledger outcome, engagement row and conversion would otherwise add a read and
an insert to its transaction, and an outbox that nothing ever delivers. The answer
is a copy at most DEMAND_TTL old, one per database engine in the process, read
through the caller's own transaction. A new subscription therefore waits
DEMAND_SETTLE before it takes its starting point: by then every process's copy
includes it, and it misses nothing that happens after CreateSubscription returned.
"""

from __future__ import annotations

import weakref
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from engine.messaging.event_subscriptions import ALL_EVENTS
from engine.messaging.timed_copy import TimedCopy
from engine.platform.database.tables import EventSubscription

DEMAND_TTL = timedelta(seconds=1)
# Twice the TTL: a copy read just before the subscription committed, in a transaction
# that began a moment earlier, has been replaced by then.
DEMAND_SETTLE = DEMAND_TTL * 2

_copies: weakref.WeakKeyDictionary[AsyncEngine, TimedCopy[frozenset[str] | None]] = (
    weakref.WeakKeyDictionary()
)


async def is_wanted(session: AsyncSession, event_type: str) -> bool:
    """Whether some active subscription wants ``event_type``. The read, when the
    copy is old, joins ``session``'s transaction: SQLite's single pooled connection
    could not serve a second session while the caller holds it."""
    engine = session.bind
    if not isinstance(engine, AsyncEngine):
        raise TypeError("journey events are recorded through an AsyncEngine session")
    copy = _copies.get(engine)
    if copy is None:
        copy = _copies[engine] = TimedCopy(None, DEMAND_TTL)
    wanted = await copy.get(read=lambda: _wanted_types(session))
    return wanted is None or event_type in wanted


async def _wanted_types(session: AsyncSession) -> frozenset[str] | None:
    """The union of the active subscriptions' filters; None when one wants all."""
    filters = await session.scalars(
        select(EventSubscription.event_types).where(EventSubscription.removed_at.is_(None))
    )
    wanted: set[str] = set()
    for types in filters:
        if types == ALL_EVENTS:
            return None
        wanted.update(types.split(","))
    return frozenset(wanted)
