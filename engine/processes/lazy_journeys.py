"""The HTTP app's way to Temporal: a ``JourneyDirectory`` made at first use.

The app also takes Twilio's callbacks and the unsubscribe and preference links,
none of which needs Temporal: connecting lazily lets it start, and keep serving
them, while Temporal is unreachable. A failed connection surfaces as
ConnectionError (the feedback page asks to retry; consent changes are recorded
and only the journeys' notification is missed) and the next call tries again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from engine.journeys.directory import JourneyDirectory
from workflows.orders import OrderEvent


class ConnectingJourneys:
    def __init__(self, make: Callable[[], Awaitable[JourneyDirectory]]) -> None:
        self._make = make
        self._directory: JourneyDirectory | None = None
        self._lock = asyncio.Lock()

    async def directory(self) -> JourneyDirectory:
        async with self._lock:
            if self._directory is None:
                self._directory = await self._make()
            return self._directory

    async def record_event(self, order_id: str, event: OrderEvent) -> str:
        """``JourneyDirectory.record_event`` (what the feedback page needs)."""
        return await (await self.directory()).record_event(order_id, event)

    async def notify_preferences_changed(self, customer_id: str) -> int:
        """``JourneyDirectory.notify_preferences_changed`` (the pages' consent callback)."""
        return await (await self.directory()).notify_preferences_changed(customer_id)
