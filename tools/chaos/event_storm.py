"""Scenario 6: many clients call RecordEvent at once, for a minute, with duplicates and
out-of-order events mixed in.

Every journey is started first. Then ``event_clients`` clients, each with a gRPC
connection of its own, call RecordEvent as fast as they can: each of a journey's
three events (shipped, out_for_delivery, delivered) is released at a random moment
of the storm, so most journeys hear them out of their logical order, and between
releases the clients repeat events already released (the same event id: what a
backend retrying, or replaying a queue, does).

Checked, besides every message exactly once: each journey applied each event once
(its ``seen_event_ids``), timed it by when it happened at the source and not by
when it arrived (``events`` equal the events' ``occurred_at``, whatever the arrival
order), and noted every repeat that reached it as a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aftercare.v1 import journey_pb2 as pb

from clients import AftercareClient
from clients.aftercare_client import AftercareError, JourneyEndedError
from tools.bench.stack import api_client
from tools.chaos.config import ChaosConfig
from tools.chaos.driving import (
    EVENT_TYPES,
    RETRYABLE_CODES,
    OrderSystem,
    chaos_order,
    event_id,
    order_event,
)
from tools.chaos.harness import ChaosRun
from tools.chaos.scenario import ScenarioResult, run_scenario
from workflows.order_journey import MAX_TIMELINE
from workflows.state import JourneyState
from workflows.vocabulary import EventType

NAME = "event_storm"
# Logical order: each event happened this long after the previous one.
_EVENT_SPACING = timedelta(milliseconds=100)
# Every occurred_at lies this far in the past when the storm begins, so no journey
# clamps one to its arrival time.
_LEAD = timedelta(seconds=1)
# Releases of first copies fall in this share of the storm: the rest is repeats only.
_RELEASE_SHARE = 0.7
_CONFIRMATIONS_TIMEOUT_SECONDS = 600.0
_EVENT_TYPE_NAMES = {
    pb.EVENT_TYPE_SHIPPED: EventType.SHIPPED,
    pb.EVENT_TYPE_OUT_FOR_DELIVERY: EventType.OUT_FOR_DELIVERY,
    pb.EVENT_TYPE_DELIVERED: EventType.DELIVERED,
}


@dataclass
class Storm:
    """What the clients did, per event id."""

    occurred: dict[pb.EventType.ValueType, datetime] = field(default_factory=dict)
    accepted: Counter[str] = field(default_factory=Counter)  # RecordEvent answered OK
    attempted: Counter[str] = field(default_factory=Counter)
    ended: int = 0  # repeats refused because the journey had already ended
    transient: Counter[str] = field(default_factory=Counter)
    released: list[tuple[str, pb.EventType.ValueType]] = field(default_factory=list)

    @property
    def repeats_accepted(self) -> int:
        return sum(self.accepted.values()) - len(self.accepted)


@dataclass(order=True)
class _Release:
    at: float
    order_id: str = field(compare=False)
    event_type: pb.EventType.ValueType = field(compare=False)


class StormDriver:
    """Starts the journeys, then runs the storm; ``storm`` keeps the record."""

    def __init__(self) -> None:
        self.storm = Storm()
        # Journeys that were told their events in another order than they happened.
        self.out_of_order = 0

    async def __call__(self, run: ChaosRun, system: OrderSystem, orders: list[str]) -> int:
        config = run.config
        variants = {order_id: n for n, order_id in enumerate(orders)}
        started = await asyncio.gather(
            *(system.start(chaos_order(order_id, n)) for order_id, n in variants.items())
        )
        orders = [order_id for order_id, ok in zip(orders, started, strict=True) if ok]
        # Each journey has begun (its first workflow task stamped started_at) once its
        # confirmation is out: from then on an occurred_at in the past is kept as is.
        await run.stack.sink.handler.wait_for(len(orders), _CONFIRMATIONS_TIMEOUT_SECONDS)
        base = datetime.now(UTC)
        self.storm.occurred = {
            event_type: base + _EVENT_SPACING * k for k, event_type in enumerate(EVENT_TYPES)
        }
        run.note(
            f"{len(orders)} journeys confirmed; {config.event_clients} clients start calling "
            f"RecordEvent for {config.event_storm_seconds:g} s"
        )
        await asyncio.sleep(_LEAD.total_seconds())

        loop = asyncio.get_running_loop()
        begin = loop.time()
        window = config.event_storm_seconds * _RELEASE_SHARE
        releases = sorted(
            _Release(begin + random.uniform(0, window), order_id, event_type)
            for order_id in orders
            for event_type in EVENT_TYPES
        )
        end = begin + config.event_storm_seconds
        clients = [api_client(run.stack) for _ in range(config.event_clients)]
        try:
            await asyncio.gather(
                *(self._client(client, releases, orders, end) for client in clients)
            )
        finally:
            for client in clients:
                with contextlib.suppress(Exception):
                    await client.close()
        storm = self.storm
        run.note(
            f"storm over: {sum(storm.attempted.values())} RecordEvent calls, "
            f"{len(storm.accepted)} distinct events, {storm.repeats_accepted} repeats accepted, "
            f"{storm.ended} repeats refused (journey already ended), transient errors "
            f"{dict(storm.transient) or 'none'}"
        )
        return len({order_id for order_id, _ in storm.released})

    async def _client(
        self,
        api: AftercareClient,
        releases: list[_Release],
        orders: list[str],
        end: float,
    ) -> None:
        loop = asyncio.get_running_loop()
        storm = self.storm
        while True:
            now = loop.time()
            if releases and releases[0].at <= now:
                release = releases.pop(0)
                first = True
                order_id, event_type = release.order_id, release.event_type
            elif now >= end and not releases:
                return
            elif storm.released:
                first = False
                order_id, event_type = random.choice(storm.released)
            else:
                await asyncio.sleep(0.01)
                continue
            event = order_event(order_id, event_type, storm.occurred[event_type])
            storm.attempted[event.event_id] += 1
            try:
                await api.record_event(order_id, event)
            except JourneyEndedError:
                storm.ended += 1
                continue
            except AftercareError as err:
                storm.transient[err.code.name] += 1
                if first and err.code in RETRYABLE_CODES:
                    # A first copy must get through: put it back, due now.
                    releases.insert(0, _Release(loop.time(), order_id, event_type))
                elif first:
                    raise
                continue
            storm.accepted[event.event_id] += 1
            if first:
                storm.released.append((order_id, event_type))

    def check_state(self, order_id: str, state: JourneyState) -> list[str]:
        storm, problems = self.storm, []
        self.out_of_order += arrived_out_of_order(state)
        ids = [event_id(order_id, event_type) for event_type in EVENT_TYPES]
        if sorted(state.seen_event_ids) != sorted(ids):
            problems.append(f"applied events {state.seen_event_ids}, expected each of {ids} once")
        for event_type, occurred in storm.occurred.items():
            name = _EVENT_TYPE_NAMES[event_type]
            if state.events.get(name) != occurred:
                problems.append(
                    f"{name} timed {state.events.get(name)}, but it happened at {occurred}"
                )
        if len(state.timeline) < MAX_TIMELINE:
            noted = sum(
                1
                for entry in state.timeline
                if entry.kind == "event" and entry.detail.startswith("duplicate event")
            )
            accepted = sum(storm.accepted[i] for i in ids) - len(ids)
            attempted = sum(storm.attempted[i] for i in ids) - len(ids)
            # A repeat answered OK reached the journey; one that failed may have too.
            if not accepted <= noted <= attempted:
                problems.append(
                    f"{noted} duplicates noted, but {accepted} repeats were accepted "
                    f"(and {attempted} attempted)"
                )
        return problems


def arrived_out_of_order(state: JourneyState) -> bool:
    reported = [state.reported.get(_EVENT_TYPE_NAMES[t]) for t in EVENT_TYPES]
    known = [moment for moment in reported if moment is not None]
    return known != sorted(known)


async def run(config: ChaosConfig) -> ScenarioResult:
    driver = StormDriver()

    async def no_other_fault(run: ChaosRun) -> int:
        return 0  # the storm is the fault: the driver plays it

    result = await run_scenario(
        NAME,
        f"{config.event_clients} clients calling RecordEvent at once for "
        f"{config.event_storm_seconds:g} s, with repeats and events out of order",
        config,
        no_other_fault,
        drive=driver,
        check_state=driver.check_state,
    )
    storm = driver.storm
    result.faults = storm.repeats_accepted + driver.out_of_order
    result.observed.append(
        f"storm: {sum(storm.attempted.values())} RecordEvent calls for {len(storm.accepted)} "
        f"distinct events; {storm.repeats_accepted} repeats accepted and ignored by the "
        f"journeys, {storm.ended} refused after the journey ended; "
        f"at least {driver.out_of_order} journeys heard their events out of order"
    )
    return result
