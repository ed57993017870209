"""Every branch of the default and consumables plans, walked in virtual time with the
real workflow, real activities, a real SMTP sink and a real ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support.orders import domain_order
from tests.support.virtual_time import VirtualJourneys, local, sent_steps
from workflows.state import StepOutcome
from workflows.vocabulary import EventType, Stage

DAY = timedelta(days=1)


async def test_promoter_walks_the_whole_default_journey(journeys: VirtualJourneys) -> None:
    # Tuesday 2027-06-01 09:00 in Berlin (07:00 UTC).
    await journeys.travel_to(datetime(2027, 6, 1, 7, 0, tzinfo=UTC))
    order = domain_order()
    handle = await journeys.start(order)
    await journeys.wait(handle, DAY)
    await journeys.event(handle, EventType.SHIPPED)
    await journeys.wait(handle, DAY)
    await journeys.event(handle, EventType.DELIVERED)  # Wed 09:00 local
    await journeys.wait(handle, 9 * DAY)  # past the feedback request (delivery + 7 d)
    await journeys.event(handle, EventType.FEEDBACK, score=10)
    final = await handle.result()

    assert sent_steps(final) == [
        "order_confirmation",
        "shipping_notice",
        "delivered",
        "thank_you",
        "product_education",
        "feedback_request",
        "review_request",
        "cross_sell",
    ]
    assert journeys.steps_mailed(handle.id) == sent_steps(final)  # each exactly once
    skipped = {key: r.detail for key, r in final.steps.items() if r.outcome == StepOutcome.SKIPPED}
    assert skipped["shipping_delay"].startswith("not needed: shipped")
    assert skipped["feedback_reminder"].startswith("not needed: feedback")
    assert "outside" in skipped["detractor_follow_up"]
    assert "outside" in skipped["passive_thanks"]
    assert final.stage == Stage.COMPLETED
    assert final.plan_id == "default"

    # When each step went out, in the journey's (virtual) time.
    sent = {key: record.at for key, record in final.steps.items()}
    delivered_at = final.events[EventType.DELIVERED]
    education = local(sent["product_education"], "Europe/Berlin")
    assert (education.date(), education.hour, education.minute) == (
        (delivered_at + 3 * DAY).date(),
        10,
        0,
    )
    assert sent["thank_you"] - delivered_at >= timedelta(hours=4)
    assert local(sent["cross_sell"], "Europe/Berlin").hour == 11


async def test_state_query_shows_the_schedule(journeys: VirtualJourneys) -> None:
    handle = await journeys.start(domain_order(timezone="Pacific/Auckland"))
    await journeys.event(handle, EventType.DELIVERED)
    state = await journeys.until(
        handle, lambda s: any(step.step == "product_education" for step in s.scheduled)
    )
    scheduled = {step.step: step for step in state.scheduled}
    education = scheduled["product_education"]
    assert education.due_local.endswith(("T10:00+12:00", "T10:00+13:00"))
    assert local(education.due_at, "Pacific/Auckland").hour == 10
    assert state.next_step.startswith(state.scheduled[0].step)
    await handle.cancel()
