"""Which journey event types any active subscription wants, so the facts nobody
subscribed to write no outbox row.

Every ledger outcome, engagement row and conversion would otherwise add a read and
an insert to its transaction, and an outbox that nothing ever delivers. The answer
is a copy at most DEMAND_TTL old, one per database engine in the process, read
through the caller's own transaction. A new subscription therefore waits
DEMAND_SETTLE before it takes its starting point: by then every process's copy
includes it, and it misses nothing that happens after CreateSubscription returned.

No lock guards the reading (unlike engine/messaging/timed_copy.py): a caller reads
through its own session, which may still have to take the pool's only SQLite
connection, held meanwhile by another caller waiting for such a lock. Callers that
find the copy old at the same moment each read it, once a second at most.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from engine.messaging.event_subscriptions import ALL_EVENTS
from engine.platform.database.tables import EventSubscription

DEMAND_TTL = timedelta(seconds=1)
# Twice the TTL: a copy read just before the subscription committed, in a transaction
# that began a moment earlier, has been replaced by then.
DEMAND_SETTLE = DEMAND_TTL * 2


@dataclass
class _Copy:
    wanted: frozenset[str] | None = None  # None: some subscription wants every type
    read_at: float | None = None  # event-loop time


_copies: weakref.WeakKeyDictionary[AsyncEngine, _Copy] = weakref.WeakKeyDictionary()


async def is_wanted(session: AsyncSession, event_type: str) -> bool:
    """Whether some active subscription wants ``event_type``; when the copy is old it
    is read again within ``session``'s transaction."""
    engine = session.bind
    if not isinstance(engine, AsyncEngine):
        raise TypeError("journey events are recorded through an AsyncEngine session")
    copy = _copies.get(engine)
    if copy is None:
        copy = _copies[engine] = _Copy()
    now = asyncio.get_running_loop().time()
    if copy.read_at is None or now - copy.read_at >= DEMAND_TTL.total_seconds():
        copy.wanted = await _wanted_types(session)
        copy.read_at = now
    return copy.wanted is None or event_type in copy.wanted


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
