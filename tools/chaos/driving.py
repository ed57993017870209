"""The order system of a chaos run: it starts journeys and reports their events through
the gRPC API, and like any well-behaved backend it retries what the API could not take
(server down, deadline exceeded). Retrying is safe by design: StartJourney is idempotent
and every event carries an id, so a repeat that did get through the first time is
recorded by the journey as a duplicate and not applied again.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

import grpc
from aftercare.v1 import journey_pb2 as pb

from clients import AftercareClient
from clients.aftercare_client import AftercareError
from engine.cli.samples import sample_shipment
from tools.bench.workloads import bench_order

T = TypeVar("T")

# Answers that say "not now" rather than "never": the call is repeated.
RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.CANCELLED,
    }
)
# The events every chaos journey receives, in their logical order.
EVENT_TYPES: tuple[pb.EventType.ValueType, ...] = (
    pb.EVENT_TYPE_SHIPPED,
    pb.EVENT_TYPE_OUT_FOR_DELIVERY,
    pb.EVENT_TYPE_DELIVERED,
)
_FIRST_BACKOFF_SECONDS = 0.2
_MAX_BACKOFF_SECONDS = 5.0


@dataclass
class CallStats:
    calls: int = 0
    retried: int = 0
    # Calls given up on, or refused for good, by status code.
    failed: Counter[str] = field(default_factory=Counter)
    # Retryable answers seen along the way, by status code.
    transient: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        text = f"{self.calls} API calls, {self.retried} repeated after a transient error"
        if self.transient:
            text += " (" + ", ".join(f"{code} x{n}" for code, n in self.transient.items()) + ")"
        if self.failed:
            text += "; FAILED: " + ", ".join(f"{code} x{n}" for code, n in self.failed.items())
        return text


class OrderSystem:
    """Calls the API with at most ``in_flight`` calls at once, repeating retryable
    failures with backoff for up to ``give_up_seconds``."""

    def __init__(self, api: AftercareClient, in_flight: int, give_up_seconds: float) -> None:
        self._api = api
        self._gate = asyncio.Semaphore(in_flight)
        self._give_up_seconds = give_up_seconds
        self.stats = CallStats()

    async def call(self, attempt: Callable[[], Awaitable[T]]) -> T | None:
        """The call's answer, or None when it failed for good (counted in ``stats``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._give_up_seconds
        backoff = _FIRST_BACKOFF_SECONDS
        while True:
            self.stats.calls += 1
            try:
                async with self._gate:
                    return await attempt()
            except AftercareError as err:
                code = err.code.name
                if err.code not in RETRYABLE_CODES or loop.time() + backoff > deadline:
                    self.stats.failed[code] += 1
                    return None
                self.stats.transient[code] += 1
            self.stats.retried += 1
            # Jitter keeps hundreds of callers from retrying in lockstep.
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)

    async def start(self, order: pb.Order) -> bool:
        return await self.call(lambda: self._api.start_journey(order)) is not None

    async def record(self, order_id: str, event: pb.OrderEvent) -> bool:
        return await self.call(lambda: self._api.record_event(order_id, event)) is not None


def order_ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{n:04d}" for n in range(count)]


def chaos_order(order_id: str, variant: int) -> pb.Order:
    """A sample order (email and mobile number) of a customer of its own."""
    return bench_order(order_id, variant)


def event_id(order_id: str, event_type: pb.EventType.ValueType) -> str:
    return f"{order_id}-{pb.EventType.Name(event_type).removeprefix('EVENT_TYPE_').lower()}"


def order_event(
    order_id: str, event_type: pb.EventType.ValueType, occurred_at: datetime | None = None
) -> pb.OrderEvent:
    event = pb.OrderEvent(event_id=event_id(order_id, event_type), type=event_type)
    if occurred_at is not None:
        event.occurred_at.FromDatetime(occurred_at)
    if event_type == pb.EVENT_TYPE_SHIPPED:
        event.shipment.CopyFrom(sample_shipment(order_id))
    return event


async def drive_journeys(system: OrderSystem, orders: list[str], pace_seconds: float) -> int:
    """Start each journey, then report shipped, out_for_delivery and delivered,
    ``pace_seconds`` apart; returns how many journeys got all their events."""

    async def one(variant: int, order_id: str) -> bool:
        if not await system.start(chaos_order(order_id, variant)):
            return False
        for event_type in EVENT_TYPES:
            await asyncio.sleep(pace_seconds)
            if not await system.record(order_id, order_event(order_id, event_type)):
                return False
        return True

    done = await asyncio.gather(*(one(n, order_id) for n, order_id in enumerate(orders)))
    return sum(done)
