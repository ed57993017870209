"""Journey states built by hand, for tests of the pure journey logic (no Temporal)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from workflows.state import JourneyState, StepOutcome, StepRecord
from workflows.vocabulary import EventType, Stage


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def journey_state(started_at: datetime, **fields: Any) -> JourneyState:
    """A journey of order A-1 started at ``started_at``; ``fields`` as JourneyState's."""
    return JourneyState(
        journey_id="order-A-1",
        order_id="A-1",
        customer_id="cus-1",
        stage=Stage.ORDERED,
        started_at=started_at,
        **fields,
    )


def happened(**times: datetime) -> dict[EventType, datetime]:
    """``happened(shipped=t)``: event times by event type name."""
    return {EventType(name): at for name, at in times.items()}


def sent(**times: datetime) -> dict[str, StepRecord]:
    """``sent(order_confirmation=t)``: step records of steps sent at those times."""
    return {step: StepRecord(StepOutcome.SENT, at) for step, at in times.items()}
