"""A journey as a history recorded it: the order, the plan it ran, and the order
events it received, each at its offset from the start. What a backtest replays
through another plan (engine.simulation.backtest)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType as HistoryEventType
from temporalio.api.history.v1 import History

from engine.platform.codec.payloads import DATA_CONVERTER
from workflows.orders import Order, OrderEvent
from workflows.plans.model import PinnedPlan
from workflows.state import JourneyInput

RECORD_EVENT_SIGNAL = "record_event"


@dataclass(frozen=True)
class RecordedJourney:
    journey_id: str
    order: Order
    plan: PinnedPlan
    # When the journey started (UTC): the hour and weekday quiet hours and send
    # windows were judged at.
    started_at: datetime
    # Each order event with how long after the journey's start it arrived.
    events: tuple[tuple[timedelta, OrderEvent], ...]


class NotAJourneyStart(ValueError):
    """The history is not a journey's first run (a later run after continue-as-new,
    or another workflow), so it does not hold the whole journey."""


def _decoded(payload: Payload, kind: type) -> object:
    return DATA_CONVERTER.payload_converter.from_payloads([payload], [kind])[0]


def recorded_journey(journey_id: str, history: History) -> RecordedJourney:
    """What ``history`` (decoded: exported, or recorded by ``make histories``) says
    about its journey; :class:`NotAJourneyStart` when it cannot say it all."""
    if not history.events:
        raise NotAJourneyStart("empty history")
    first = history.events[0]
    started = first.workflow_execution_started_event_attributes
    if started.workflow_type.name != "OrderJourney" or not started.input.payloads:
        raise NotAJourneyStart("not a journey")
    journey = _decoded(started.input.payloads[0], JourneyInput)
    assert isinstance(journey, JourneyInput)
    if journey.state is not None:
        raise NotAJourneyStart("a later run of the journey (after continue-as-new)")
    plan = journey.plan or _chosen_plan(history)
    if plan is None:
        raise NotAJourneyStart("no plan recorded")
    start = first.event_time.ToDatetime(tzinfo=UTC)
    events: list[tuple[timedelta, OrderEvent]] = []
    for event in history.events:
        if event.event_type != HistoryEventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            continue
        signal = event.workflow_execution_signaled_event_attributes
        if signal.signal_name != RECORD_EVENT_SIGNAL or not signal.input.payloads:
            continue
        order_event = _decoded(signal.input.payloads[0], OrderEvent)
        assert isinstance(order_event, OrderEvent)
        events.append((event.event_time.ToDatetime(tzinfo=UTC) - start, order_event))
    return RecordedJourney(journey_id, journey.order, plan, start, tuple(events))


def _chosen_plan(history: History) -> PinnedPlan | None:
    """The plan the journey's choose_plan activity answered (a local activity: its
    result is in a marker)."""
    for event in history.events:
        if event.event_type != HistoryEventType.EVENT_TYPE_MARKER_RECORDED:
            continue
        for payloads in event.marker_recorded_event_attributes.details.values():
            for payload in payloads.payloads:
                try:
                    found = _decoded(payload, PinnedPlan)
                except Exception:
                    continue
                if isinstance(found, PinnedPlan):
                    return found
    return None
