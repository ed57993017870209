"""Local time in virtual time: quiet hours and windows defer what can wait (also across
a DST change), transactional messages never wait, and "10:00" is the customer's.

The tests travel to fixed dates in order (virtual time only moves forward), so they
keep the order they are written in.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support.orders import domain_order
from tests.support.virtual_time import VirtualJourneys, local, resolved
from workflows.order_journey import OrderJourney
from workflows.state import StepOutcome
from workflows.vocabulary import EventType

DAY = timedelta(days=1)
TZ = "Europe/Berlin"
# Recorded when the send finished: at most moments after the instant it was due.
LATENCY = timedelta(seconds=5)


def close_after(moment: datetime, expected: datetime) -> bool:
    return timedelta(0) <= moment - expected < LATENCY


async def test_thank_you_deferred_across_the_dst_change(journeys: VirtualJourneys) -> None:
    # Saturday 2027-03-27, 20:30 CET (UTC+1). Delivery + 4 h is 00:30 in the night
    # the clocks go forward; quiet hours (21:00-08:00) and the thank-you's window
    # (09:00-20:00) hold it until 09:00 CEST (UTC+2) = 07:00 UTC, not 08:00 UTC.
    await journeys.travel_to(datetime(2027, 3, 27, 19, 30, tzinfo=UTC))
    handle = await journeys.start(domain_order())
    await journeys.event(handle, EventType.DELIVERED)
    state = await journeys.until(handle, resolved("delivered"))
    scheduled = {step.step: step for step in state.scheduled}
    assert scheduled["thank_you"].due_at == datetime(2027, 3, 28, 7, 0, tzinfo=UTC)
    assert scheduled["thank_you"].due_local == "2027-03-28T09:00+02:00"

    await journeys.wait(handle, 4 * DAY)  # to 2027-03-31 21:30 CEST
    state = await journeys.until(handle, resolved("thank_you", "product_education"))

    thank_you = state.steps["thank_you"]
    assert thank_you.outcome == StepOutcome.SENT
    assert close_after(thank_you.at, datetime(2027, 3, 28, 7, 0, tzinfo=UTC)), thank_you.at
    # Product tips at 10:00 local once three days have passed: delivery + 3 d is
    # 21:30 CEST on the 30th, so 10:00 CEST on the 31st = 08:00 UTC.
    education = state.steps["product_education"].at
    assert close_after(education, datetime(2027, 3, 31, 8, 0, tzinfo=UTC)), education
    mailed = journeys.steps_mailed(handle.id)
    assert mailed == ["order_confirmation", "delivered", "thank_you", "product_education"]
    await handle.cancel()


async def test_quiet_hours_defer_the_thank_you_to_the_next_morning(
    journeys: VirtualJourneys,
) -> None:
    # Tuesday 2027-06-01, 20:30 CEST: delivery + 4 h is 00:30, in the quiet hours.
    delivered_at = datetime(2027, 6, 1, 18, 30, tzinfo=UTC)
    await journeys.travel_to(delivered_at)
    handle = await journeys.start(domain_order())
    await journeys.event(handle, EventType.DELIVERED)
    await journeys.wait(handle, timedelta(hours=12))  # to 08:30 local: not yet
    state = await journeys.until(handle, resolved("delivered"))
    assert "thank_you" not in state.steps
    assert journeys.steps_mailed(handle.id) == ["order_confirmation", "delivered"]

    await journeys.wait(handle, timedelta(hours=1))  # to 09:30 local
    state = await journeys.until(handle, resolved("thank_you"))

    sent_at = state.steps["thank_you"].at
    assert close_after(sent_at, datetime(2027, 6, 2, 7, 0, tzinfo=UTC)), sent_at
    assert local(sent_at, TZ).hour == 9
    assert journeys.steps_mailed(handle.id)[-1] == "thank_you"
    await handle.cancel()


async def test_transactional_messages_go_out_at_once_even_at_night(
    journeys: VirtualJourneys,
) -> None:
    # Ordered Wednesday 2027-06-02 at 23:30 CEST, shipped the next night at 23:30.
    await journeys.travel_to(datetime(2027, 6, 2, 21, 30, tzinfo=UTC))
    handle = await journeys.start(domain_order())
    state = await journeys.until(handle, resolved("order_confirmation"))
    assert close_after(state.steps["order_confirmation"].at, state.started_at)

    await journeys.wait(handle, DAY)
    shipped_at = await journeys.now()
    assert (local(shipped_at, TZ).hour, local(shipped_at, TZ).minute) == (23, 30)
    await journeys.event(handle, EventType.SHIPPED)
    state = await journeys.until(handle, resolved("shipping_notice"))

    notice = state.steps["shipping_notice"]
    assert notice.outcome == StepOutcome.SENT
    assert close_after(notice.at, shipped_at), notice.at
    assert journeys.steps_mailed(handle.id) == ["order_confirmation", "shipping_notice"]
    await handle.cancel()


async def test_product_education_at_10_in_auckland(journeys: VirtualJourneys) -> None:
    # Delivered 2027-07-01 00:00 UTC = 12:00 NZST (UTC+12, no DST in July). Three days
    # later is 12:00 on 4 July, past 10:00, so the tips go at 10:00 NZST on 5 July:
    # 2027-07-04 22:00 UTC.
    await journeys.travel_to(datetime(2027, 7, 1, 0, 0, tzinfo=UTC))
    handle = await journeys.start(domain_order(timezone="Pacific/Auckland"))
    await journeys.event(handle, EventType.DELIVERED)
    state = await journeys.until(handle, resolved("delivered"))
    scheduled = {step.step: step for step in state.scheduled}
    assert scheduled["product_education"].due_local == "2027-07-05T10:00+12:00"

    await journeys.wait(handle, 4 * DAY)
    state = await journeys.until(handle, resolved("product_education"))

    education = state.steps["product_education"]
    assert education.outcome == StepOutcome.SENT
    assert close_after(education.at, datetime(2027, 7, 4, 22, 0, tzinfo=UTC)), education.at
    assert (await handle.query(OrderJourney.state)).timezone == "Pacific/Auckland"
    await handle.cancel()
