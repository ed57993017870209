"""A copy of a small table kept in memory for a few seconds, for the send path.

Every send asks whether a pause holds it or an experiment was decided; reading the
database for each would put a query on the hottest path. A copy at most ``ttl`` old
answers instead, and callers asking together share one read."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Generic, TypeVar

T = TypeVar("T")


class TimedCopy(Generic[T]):
    def __init__(self, read: Callable[[], Awaitable[T]], ttl: timedelta) -> None:
        self._read = read
        self._ttl = ttl.total_seconds()
        self._value: T | None = None
        self._read_at: float | None = None  # event-loop time of the copy's read
        self._reading: asyncio.Lock | None = None

    async def get(self, *, fresh_since: float | None = None) -> T:
        """The copy, read again when older than the TTL or, with ``fresh_since`` (an
        event-loop time), when read before that instant."""
        if self._reading is None:
            # Made on first use: the lock belongs to the loop that serves the sends.
            self._reading = asyncio.Lock()
        async with self._reading:
            if self._value is None or self._is_old(fresh_since):
                self._value = await self._read()
                self._read_at = asyncio.get_running_loop().time()
            return self._value

    def _is_old(self, fresh_since: float | None) -> bool:
        if self._read_at is None:
            return True
        if fresh_since is not None:
            return self._read_at < fresh_since
        return asyncio.get_running_loop().time() - self._read_at >= self._ttl

    def forget(self) -> None:
        """This process changed the table: its next question reads it again."""
        self._read_at = None
