"""Shipping in virtual time: the delay notice when nothing ships within the SLA, the
shipping notice when it does, and no shipping notice once the parcel arrived."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import WorkflowExecutionStatus

from tests.support.orders import domain_order
from tests.support.virtual_time import VirtualJourneys, local, resolved, sent_steps
from workflows.order_journey import OrderJourney
from workflows.state import StepOutcome
from workflows.vocabulary import EventType, Stage

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
TZ = "Europe/Berlin"


async def test_no_shipment_within_the_sla_sends_one_delay_notice_and_keeps_waiting(
    journeys: VirtualJourneys,
) -> None:
    # Ordered at 22:00 local: the 3-day SLA runs out at 22:00, outside the notice's
    # 08:00-20:00 window, so the apology waits for 08:00 the next morning.
    ordered = local(await journeys.travel_to_local("22:00", TZ), TZ)
    handle = await journeys.start(domain_order())
    await journeys.wait(handle, 4 * DAY)  # to 22:00 on day 4
    state = await journeys.until(handle, resolved("shipping_delay"))

    delay = state.steps["shipping_delay"]
    assert delay.outcome == StepOutcome.SENT
    sent_at = local(delay.at, TZ)
    assert (sent_at.date(), sent_at.hour, sent_at.minute) == (ordered.date() + 4 * DAY, 8, 0)
    assert state.stage == Stage.ORDERED
    assert EventType.SHIPPED in state.waiting_for
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING

    await journeys.wait(handle, 3 * DAY)  # still not shipped: no second apology
    assert journeys.steps_mailed(handle.id) == ["order_confirmation", "shipping_delay"]

    await journeys.event(handle, EventType.SHIPPED)
    state = await journeys.until(handle, resolved("shipping_notice"))
    assert state.stage == Stage.SHIPPED
    assert state.steps["shipping_notice"].outcome == StepOutcome.SENT
    expected = ["order_confirmation", "shipping_delay", "shipping_notice"]
    assert sent_steps(state) == expected
    assert journeys.steps_mailed(handle.id) == expected
    await handle.cancel()


async def test_shipment_before_the_delayed_notice_goes_out_cancels_the_apology(
    journeys: VirtualJourneys,
) -> None:
    # SLA over at 22:00 on day 3, the apology held for 08:00; it ships at 23:00.
    await journeys.travel_to_local("22:00", TZ)
    handle = await journeys.start(domain_order())
    await journeys.wait(handle, 3 * DAY + HOUR)
    state = await handle.query(OrderJourney.state)
    assert "shipping_delay" not in state.steps  # still held for the window

    await journeys.event(handle, EventType.SHIPPED)
    await journeys.until(handle, resolved("shipping_notice"))
    await journeys.wait(handle, DAY)  # past 08:00
    state = await journeys.until(handle, resolved("shipping_delay"))

    delay = state.steps["shipping_delay"]
    assert (delay.outcome, delay.detail) == (
        StepOutcome.SKIPPED,
        "not needed: shipped happened first",
    )
    assert journeys.steps_mailed(handle.id) == ["order_confirmation", "shipping_notice"]
    await handle.cancel()


async def test_late_shipped_after_delivered_sends_no_shipping_notice(
    journeys: VirtualJourneys,
) -> None:
    await journeys.travel_to_local("09:00", TZ)
    handle = await journeys.start(domain_order())
    await journeys.wait(handle, DAY)
    await journeys.event(handle, EventType.DELIVERED)
    await journeys.until(handle, resolved("delivered"))
    await journeys.wait(handle, HOUR)

    await journeys.event(handle, EventType.SHIPPED)  # reported (and stamped) late
    state = await journeys.until(handle, resolved("shipping_notice"))

    notice = state.steps["shipping_notice"]
    assert (notice.outcome, notice.detail) == (
        StepOutcome.SKIPPED,
        "not needed: delivered happened first",
    )
    assert state.stage == Stage.DELIVERED
    await journeys.wait(handle, DAY)
    assert journeys.steps_mailed(handle.id) == ["order_confirmation", "delivered", "thank_you"]
    await handle.cancel()


async def test_late_shipped_with_its_real_timestamp_sends_no_shipping_notice(
    journeys: VirtualJourneys,
) -> None:
    await journeys.travel_to_local("09:00", TZ)
    handle = await journeys.start(domain_order())
    await journeys.wait(handle, DAY)
    shipped_at = await journeys.now()  # the carrier scanned it here ...
    await journeys.wait(handle, DAY)
    await journeys.event(handle, EventType.DELIVERED)
    await journeys.until(handle, resolved("delivered"))
    await journeys.wait(handle, HOUR)

    # ... but the scan reaches the journey only now, after the delivery.
    await journeys.event(handle, EventType.SHIPPED, occurred_at=shipped_at)
    state = await journeys.until(handle, resolved("shipping_notice"))
    await handle.cancel()

    assert "shipping_notice" not in journeys.steps_mailed(handle.id)
    assert state.steps["shipping_notice"].outcome == StepOutcome.SKIPPED
