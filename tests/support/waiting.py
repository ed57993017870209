"""Polling for conditions that become true eventually (e.g. Temporal visibility)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    *,
    seconds: float = 20.0,
    interval: float = 0.2,
) -> T:
    """Call ``probe`` until ``accept`` says yes; fail with the last value seen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        value = await probe()
        if accept(value):
            return value
        if loop.time() >= deadline:
            raise AssertionError(f"condition not met within {seconds}s; last value: {value!r}")
        await asyncio.sleep(interval)
