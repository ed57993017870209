"""Cancellation in virtual time: the customer's order cancelled (a `cancelled` event),
and an operator stopping the journey (a Temporal cancel), at each stage."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import CancelledError

from tests.support.orders import domain_order
from tests.support.virtual_time import VirtualJourneys, resolved, sent_steps
from workflows.order_journey import OrderJourney
from workflows.state import JourneyState, StepOutcome
from workflows.vocabulary import EventType, Stage

DAY = timedelta(days=1)
TZ = "Europe/Berlin"
STAGES = [Stage.ORDERED, Stage.SHIPPED, Stage.DELIVERED]

Handle = WorkflowHandle[OrderJourney, JourneyState]


async def _start_and_reach(journeys: VirtualJourneys, stage: Stage) -> tuple[Handle, list[str]]:
    """A new journey (started 09:00 local) driven to ``stage``; the steps mailed so far."""
    await journeys.travel_to_local("09:00", TZ)
    handle = await journeys.start(domain_order())
    await journeys.until(handle, resolved("order_confirmation"))
    if stage in (Stage.SHIPPED, Stage.DELIVERED):
        await journeys.wait(handle, DAY)
        await journeys.event(handle, EventType.SHIPPED)
        await journeys.until(handle, resolved("shipping_notice"))
    if stage == Stage.DELIVERED:
        await journeys.wait(handle, DAY)
        await journeys.event(handle, EventType.DELIVERED)
        await journeys.until(handle, resolved("delivered"))
    state = await handle.query(OrderJourney.state)
    assert state.stage == stage
    mailed = journeys.steps_mailed(handle.id)
    assert mailed == sent_steps(state)
    return handle, mailed


@pytest.mark.parametrize("stage", STAGES)
async def test_cancelled_order_is_confirmed_once_and_ends_the_journey(
    journeys: VirtualJourneys, stage: Stage
) -> None:
    handle, before = await _start_and_reach(journeys, stage)

    await journeys.event(handle, EventType.CANCELLED)
    final = await handle.result()  # ends by itself: no linger after a cancellation

    assert final.stage == Stage.ORDER_CANCELLED
    assert sent_steps(final) == [*before, "order_cancelled"]
    assert journeys.steps_mailed(handle.id) == [*before, "order_cancelled"]
    cancelled_at = final.steps["order_cancelled"].at
    ended = final.timeline[-1]
    assert ended.detail == "journey ended"
    assert ended.at - cancelled_at < timedelta(minutes=1)
    # Everything not sent before the cancellation was dropped for it, follow-ups included.
    dropped = {
        key: record.detail
        for key, record in final.steps.items()
        if record.outcome == StepOutcome.SKIPPED and record.at >= final.events[EventType.CANCELLED]
    }
    assert {"thank_you", "product_education", "feedback_request", "cross_sell"} <= set(dropped)
    assert set(dropped.values()) == {"order cancelled"}
    assert final.scheduled == []


@pytest.mark.parametrize("signal_with_start", [True, False], ids=["with-start", "right-after"])
async def test_confirmation_racing_a_cancel_still_goes_out_first(
    journeys: VirtualJourneys, signal_with_start: bool
) -> None:
    await journeys.travel_to_local("09:00", TZ)
    cancel = await journeys.order_event(EventType.CANCELLED)
    if signal_with_start:
        handle = await journeys.start(domain_order(), first_event=cancel)
    else:
        handle = await journeys.start(domain_order())
        await handle.signal(OrderJourney.record_event, cancel)

    final = await handle.result()

    assert final.stage == Stage.ORDER_CANCELLED
    assert sent_steps(final) == ["order_confirmation", "order_cancelled"]
    assert journeys.steps_mailed(handle.id) == ["order_confirmation", "order_cancelled"]
    assert final.steps["order_confirmation"].at <= final.steps["order_cancelled"].at
    assert final.steps["shipping_delay"].outcome == StepOutcome.SKIPPED
    assert final.steps["shipping_delay"].detail == "order cancelled"


@pytest.mark.parametrize("stage", STAGES)
async def test_operator_cancel_stops_the_journey_for_good(
    journeys: VirtualJourneys, stage: Stage
) -> None:
    handle, before = await _start_and_reach(journeys, stage)
    if stage == Stage.DELIVERED:
        waiting = await handle.query(OrderJourney.state)
        scheduled = {step.step for step in waiting.scheduled}
        assert {"thank_you", "product_education", "feedback_request", "cross_sell"} <= scheduled

    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert isinstance(failure.value.cause, CancelledError)
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED

    stopped = await handle.query(OrderJourney.state)  # a closed journey still answers
    assert stopped.stage == Stage.STOPPED
    assert stopped.scheduled == []
    assert stopped.next_step == "Nothing: the journey was cancelled"
    assert any("cancelled by an operator" in entry.detail for entry in stopped.timeline)

    await journeys.env.sleep(30 * DAY)
    assert journeys.steps_mailed(handle.id) == before
    assert sent_steps(await handle.query(OrderJourney.state)) == before


async def test_cancel_while_the_delay_notice_waits_for_its_window_drops_it(
    journeys: VirtualJourneys,
) -> None:
    # Ordered at 22:00 local: the SLA runs out at 22:00 on day 3 and the apology
    # waits for its 08:00 window; the order is cancelled at 23:00 in between.
    await journeys.travel_to_local("22:00", TZ)
    handle = await journeys.start(domain_order())
    await journeys.wait(handle, 3 * DAY + timedelta(hours=1))
    state = await handle.query(OrderJourney.state)
    assert [step.step for step in state.scheduled] == ["shipping_delay"]

    await journeys.event(handle, EventType.CANCELLED)
    final = await handle.result()

    assert final.stage == Stage.ORDER_CANCELLED
    assert journeys.steps_mailed(handle.id) == ["order_confirmation", "order_cancelled"]
    delay = final.steps["shipping_delay"]
    assert (delay.outcome, delay.detail) == (
        StepOutcome.SKIPPED,
        "not needed: cancelled happened first",
    )
