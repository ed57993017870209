"""Event subscriptions (a subscriber's endpoint, secret and filter) and the reading
of the journey event outbox on their behalf."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.platform.database.tables import EventSubscription, JourneyEventRecord
from engine.platform.database.timestamps import as_utc

ALL_EVENTS = "*"
# A gap in outbox ids is an insert not yet committed, or one rolled back; once the
# event after it has been recorded this long, it is taken to be rolled back.
GAP_SETTLE = timedelta(seconds=15)


@dataclass(frozen=True)
class Subscription:
    id: str
    url: str
    secret: str
    event_types: frozenset[str]  # empty: every type
    include_personal_data: bool
    created_at: datetime
    removed_at: datetime | None
    delivered_through: int = 0

    def wants(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types

    @classmethod
    def of(cls, row: EventSubscription) -> Subscription:
        types = row.event_types
        return cls(
            id=row.id,
            url=row.url,
            secret=row.secret,
            event_types=frozenset() if types == ALL_EVENTS else frozenset(types.split(",")),
            include_personal_data=row.include_personal_data,
            created_at=as_utc(row.created_at),
            removed_at=as_utc(row.removed_at) if row.removed_at else None,
            delivered_through=row.delivered_through or 0,
        )


@dataclass(frozen=True)
class OutboxEvent:
    id: int
    event_id: str
    journey_id: str
    type: str
    occurred_at: datetime
    data: dict[str, Any]
    personal: dict[str, Any] | None

    def payload(self, *, include_personal_data: bool) -> dict[str, Any]:
        """The body Standard Webhooks recommends: ``type``, ``timestamp``, ``data``."""
        data: dict[str, Any] = {
            "event_id": self.event_id,
            "journey_id": self.journey_id,
            "sequence": self.id,
            **self.data,
        }
        if include_personal_data and self.personal:
            data["personal"] = self.personal
        return {
            "type": self.type,
            "timestamp": self.occurred_at.isoformat().replace("+00:00", "Z"),
            "data": data,
        }


def stored_filter(event_types: Sequence[str]) -> str:
    """A subscription's ``event_types`` as the table keeps them: sorted, comma-joined,
    ``*`` for every type."""
    return ",".join(sorted(set(event_types))) if event_types else ALL_EVENTS


def new_secret() -> str:
    """A signing secret in the Standard Webhooks form: ``whsec_`` + base64 of 32 bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class EventSubscriptions:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def create(
        self,
        *,
        url: str,
        event_types: Sequence[str],
        include_personal_data: bool,
        delivered_through: int,
    ) -> Subscription:
        """A subscription whose dispatcher starts after outbox id ``delivered_through``."""
        row = EventSubscription(
            id="sub_" + secrets.token_hex(12),
            url=url,
            secret=new_secret(),
            event_types=stored_filter(event_types),
            include_personal_data=include_personal_data,
            created_at=datetime.now(UTC),
            removed_at=None,
            delivered_through=delivered_through,
        )
        async with self._sessions() as session, session.begin():
            session.add(row)
        return Subscription.of(row)

    async def get(self, subscription_id: str) -> Subscription | None:
        async with self._sessions() as session:
            row = await session.get(EventSubscription, subscription_id)
            return Subscription.of(row) if row else None

    async def active(self) -> list[Subscription]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(EventSubscription)
                .where(EventSubscription.removed_at.is_(None))
                .order_by(EventSubscription.created_at, EventSubscription.id)
            )
            return [Subscription.of(row) for row in rows]

    async def remove(self, subscription_id: str) -> bool:
        """Mark it removed; False when no active subscription has this id."""
        async with self._sessions() as session, session.begin():
            result: Any = await session.execute(
                update(EventSubscription)
                .where(
                    EventSubscription.id == subscription_id,
                    EventSubscription.removed_at.is_(None),
                )
                .values(removed_at=datetime.now(UTC))
            )
            if result.rowcount:
                await _prune(session)
            return bool(result.rowcount)

    async def advance(self, subscription_id: str, cursor: int) -> None:
        """The subscription's dispatcher has handled every event up to ``cursor``:
        record it, and prune what every active subscription has passed."""
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(EventSubscription)
                .where(
                    EventSubscription.id == subscription_id,
                    EventSubscription.delivered_through < cursor,
                )
                .values(delivered_through=cursor)
            )
            await _prune(session)

    async def latest_event_id(self) -> int:
        """The outbox's last id: where a new subscription starts (it gets what
        happens from now on, not the history)."""
        async with self._sessions() as session:
            latest = await session.scalar(select(func.max(JourneyEventRecord.id)))
            return int(latest or 0)

    async def ready_events(self, after: int, limit: int) -> list[OutboxEvent]:
        """Outbox events after id ``after``, in order, up to the first gap in ids that
        may still be filled (see GAP_SETTLE)."""
        async with self._sessions() as session:
            rows = (
                await session.scalars(
                    select(JourneyEventRecord)
                    .where(JourneyEventRecord.id > after)
                    .order_by(JourneyEventRecord.id)
                    .limit(limit)
                )
            ).all()
        settled_before = datetime.now(UTC) - GAP_SETTLE
        ready: list[OutboxEvent] = []
        expected = after + 1
        for row in rows:
            if row.id != expected and as_utc(row.recorded_at) > settled_before:
                break
            ready.append(
                OutboxEvent(
                    id=row.id,
                    event_id=row.event_id,
                    journey_id=row.journey_id,
                    type=row.type,
                    occurred_at=as_utc(row.occurred_at),
                    data=json.loads(row.data),
                    personal=json.loads(row.personal) if row.personal else None,
                )
            )
            expected = row.id + 1
        return ready


async def _prune(session: AsyncSession) -> None:
    """Delete the outbox events every active subscription has handled (all of them
    when none is active). The newest row always stays: SQLite gives a new row the
    highest id + 1, and an emptied table would hand out ids dispatchers have passed."""
    newest = await session.scalar(select(func.max(JourneyEventRecord.id)))
    if newest is None:
        return
    slowest = await session.scalar(
        select(func.min(EventSubscription.delivered_through)).where(
            EventSubscription.removed_at.is_(None)
        )
    )
    bound = newest - 1 if slowest is None else min(slowest, newest - 1)
    await session.execute(delete(JourneyEventRecord).where(JourneyEventRecord.id <= bound))
