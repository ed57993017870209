"""Events take effect while a send is still retrying, in virtual time with a real SMTP
server that defers every message for hours: a refund arriving while the cross-sell
retries is applied at once, its confirmation does not wait behind the cross-sell,
and the cross-sell, moot now, is cancelled and never sent."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import WorkflowHandle

from engine.devstack.mail_sink import MailSink
from tests.support.orders import domain_order
from tests.support.virtual_time import VirtualJourneys, resolved
from tests.support.waiting import eventually
from workflows.order_journey import OrderJourney
from workflows.state import JourneyState, StepOutcome
from workflows.vocabulary import EventType, Stage

DAY = timedelta(days=1)
TZ = "Europe/Berlin"
Journey = WorkflowHandle[OrderJourney, JourneyState]


async def test_a_refund_during_a_retrying_cross_sell_is_confirmed_and_cancels_it(
    journeys: VirtualJourneys, mail_sink: MailSink
) -> None:
    email = "retrying.cross.sell@example.test"
    await journeys.travel_to_local("09:00", TZ)
    handle = await journeys.start(domain_order(email=email))
    await journeys.event(handle, EventType.DELIVERED)
    await journeys.wait(handle, 20 * DAY)
    state = await journeys.until(handle, resolved("product_education", "feedback_reminder"))
    assert "cross_sell" not in state.steps

    # From now on the mail server defers every message to this customer.
    mail_sink.handler.refusals[email] = "451 4.2.0 mailbox busy, try later"
    try:
        await journeys.wait(handle, 2 * DAY)  # the cross-sell is due (delivery + 21 d)

        async def cross_sell_attempts() -> int:
            pending = (await handle.describe()).raw_description.pending_activities
            return max((activity.attempt for activity in pending), default=0)

        await eventually(cross_sell_attempts, lambda attempts: attempts >= 2, seconds=60)
        state = await handle.query(OrderJourney.state)
        assert state.scheduled[0].step == "cross_sell"

        await journeys.event(handle, EventType.REFUNDED)

        # At once, not after the cross-sell's day of retries: the refund is applied,
        # the cross-sell is cancelled, and the confirmation is on its way.
        state = await journeys.until(
            handle,
            lambda s: (
                any("cancelled while under way" in e.detail for e in s.timeline)
                and any(step.step == "refund_confirmation" for step in s.scheduled)
            ),
            seconds=30,
        )
        assert state.stage == Stage.RETURNED
        cross_sell = state.steps["cross_sell"]
        assert (cross_sell.outcome, cross_sell.detail) == (StepOutcome.SKIPPED, "order returned")
        assert "cross_sell: cancelled while under way (order returned)" in [
            entry.detail for entry in state.timeline
        ]
    finally:
        del mail_sink.handler.refusals[email]

    # The mail server takes messages again: the confirmation goes, the cross-sell never.
    await journeys.wait(handle, timedelta(minutes=10))
    state = await journeys.until(handle, resolved("refund_confirmation"))
    assert state.steps["refund_confirmation"].outcome == StepOutcome.SENT
    await journeys.wait(handle, DAY)
    mailed = journeys.steps_mailed(handle.id)
    assert "refund_confirmation" in mailed
    assert "cross_sell" not in mailed
    await handle.cancel()
