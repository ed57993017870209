"""How an order event changes a journey's state (pure; the workflow records it)."""

from __future__ import annotations

from datetime import datetime

from workflows.orders import Order, OrderEvent
from workflows.scheduler import RETURN_EVENTS
from workflows.state import JourneyState
from workflows.vocabulary import EventType

# Scores 0-6 are NPS detractors: they get help, never marketing.
DETRACTOR_MAX_SCORE = 6


def apply_event(state: JourneyState, order: Order, event: OrderEvent, now: datetime) -> str:
    """Apply ``event`` to ``state``; returns a sentence for the timeline.

    Timers anchor to when the event happened at its source, but never to a time
    before the journey started or after now: a late report catches up at once,
    a clock running ahead cannot push steps into the future.
    """
    happened = min(max(event.occurred_at, state.started_at), now)
    state.last_activity_at = now
    first = event.type not in state.events
    if first:
        state.events[event.type] = happened
        state.reported[event.type] = now
    detail = f"{event.type} ({event.event_id})"
    if event.type == EventType.SHIPPED and event.shipment and state.shipment is None:
        state.shipment = event.shipment
    elif event.type == EventType.FEEDBACK and event.feedback and state.feedback is None:
        state.feedback = event.feedback
        detail += f": score {event.feedback.score}"
        if event.feedback.score <= DETRACTOR_MAX_SCORE:
            state.marketing_blocked = True
    elif event.type in RETURN_EVENTS:
        if event.skus:
            _add(state.returned_skus, event.skus)
            detail += f" for {', '.join(event.skus)}"
        else:
            state.whole_order_returned = True
    elif event.type == EventType.REORDERED:
        skus = event.skus or [item.sku for item in order.items if item.consumption_days > 0]
        _add(state.reordered_skus, skus)
    elif event.type == EventType.ADDRESS_CHANGED and event.new_address:
        state.shipping_address = event.new_address
    if not first and event.type not in {EventType.RETURNED, EventType.REORDERED}:
        detail += "; already recorded once, timers keep the first"
    return detail


def _add(target: list[str], values: list[str]) -> None:
    for value in values:
        if value not in target:
            target.append(value)
