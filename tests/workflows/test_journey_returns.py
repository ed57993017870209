"""Returns and refunds in virtual time: a whole-order return stops everything that
assumes the customer keeps the goods; a partial return only what concerns its items."""

from __future__ import annotations

import uuid
from datetime import timedelta

from tests.support.orders import COFFEE, domain_order
from tests.support.virtual_time import VirtualJourneys, local, resolved, sent_steps, text_of
from workflows.order_journey import OrderJourney
from workflows.orders import LineItem
from workflows.state import StepOutcome
from workflows.vocabulary import EventType, Stage

DAY = timedelta(days=1)
TZ = "Europe/Berlin"
TEA = LineItem(
    sku="TEA-SEN-100",
    name="Sencha tea 100 g",
    category="tea",
    quantity=1,
    unit_price_minor=900,
    consumption_days=10,
)


async def test_return_after_delivery_confirms_and_stops_the_follow_ups(
    journeys: VirtualJourneys,
) -> None:
    await journeys.travel_to_local("09:00", TZ)
    handle = await journeys.start(domain_order())
    await journeys.event(handle, EventType.SHIPPED)
    await journeys.until(handle, resolved("shipping_notice"))
    await journeys.wait(handle, DAY)
    await journeys.event(handle, EventType.DELIVERED)  # 09:00 local
    await journeys.wait(handle, DAY)  # thank-you (13:00) out, product tips (+3 d) not yet
    await journeys.until(handle, resolved("thank_you"))

    await journeys.event(handle, EventType.RETURN_REQUESTED)
    state = await journeys.until(handle, resolved("return_confirmation"))

    assert state.stage == Stage.RETURNED
    assert state.whole_order_returned
    assert sent_steps(state)[-1] == "return_confirmation"
    skipped = {
        key: record.detail
        for key, record in state.steps.items()
        if record.outcome == StepOutcome.SKIPPED
    }
    for key in (
        "product_education",  # relationship, not sent yet
        "feedback_request",
        "feedback_reminder",
        "passive_thanks",  # relationship
        "review_request",
        "cross_sell",
    ):
        assert skipped[key] == "order returned", key
    assert state.steps["thank_you"].outcome == StepOutcome.SENT  # what went out stays
    assert not [step for step in state.scheduled if step.category != "transactional"]
    confirmation = journeys.mails(handle.id)[-1]
    assert confirmation.message["X-Aftercare-Step"] == "return_confirmation"
    assert f"your whole order {state.order_id}" in text_of(confirmation)

    await journeys.wait(handle, 3 * DAY)
    await journeys.event(handle, EventType.REFUNDED)
    state = await journeys.until(handle, resolved("refund_confirmation"))
    assert state.stage == Stage.RETURNED
    final = await handle.result()

    expected = [
        "order_confirmation",
        "shipping_notice",
        "delivered",
        "thank_you",
        "return_confirmation",
        "refund_confirmation",
    ]
    assert sent_steps(final) == expected
    assert journeys.steps_mailed(handle.id) == expected
    # It lingers for late events, then ends: 14 days after the refund confirmation.
    ended = final.timeline[-1]
    assert ended.detail == "journey ended"
    linger = ended.at - final.steps["refund_confirmation"].at
    assert timedelta(days=14) <= linger < timedelta(days=14, minutes=1)


async def test_partial_return_stops_replenishment_only_for_that_sku(
    journeys: VirtualJourneys,
) -> None:
    start = await journeys.travel_to_local("09:00", TZ)
    order = domain_order(items=[COFFEE, TEA], customer_id=f"cus-{uuid.uuid4().hex[:8]}")
    handle = await journeys.start(order)
    await journeys.event(handle, EventType.DELIVERED)  # 09:00 local
    await journeys.until(handle, resolved("delivered"))
    await journeys.wait(handle, DAY)

    await journeys.event(handle, EventType.RETURN_REQUESTED, skus=[COFFEE.sku])
    state = await journeys.until(handle, resolved("return_confirmation"))
    assert state.plan_id == "consumables"
    assert state.returned_skus == [COFFEE.sku]
    assert not state.whole_order_returned
    assert state.stage == Stage.DELIVERED  # the rest of the order is kept
    coffee = state.steps[f"replenishment:{COFFEE.sku}"]
    assert (coffee.outcome, coffee.detail) == (StepOutcome.SKIPPED, "returned")
    assert f"replenishment:{TEA.sku}" not in state.steps  # its series goes on
    assert any(step.step == f"replenishment:{TEA.sku} #1" for step in state.scheduled)
    text = text_of(journeys.mails(handle.id)[-1])
    assert COFFEE.name in text
    assert TEA.name not in text

    # Tea runs out every 10 days: reminders 5 days before, at delivery + 5 d and + 15 d.
    await journeys.wait(handle, 23 * DAY)  # to delivery + 24 d, past coffee's + 23 d
    state = await journeys.until(handle, lambda s: s.reminders_sent.get(TEA.sku) == 2)

    assert COFFEE.sku not in state.reminders_sent
    mailed = journeys.steps_mailed(handle.id)
    assert mailed.count(f"replenishment:{TEA.sku}") == 2
    assert f"replenishment:{COFFEE.sku}" not in mailed
    assert state.steps["feedback_request"].outcome == StepOutcome.SENT  # not a whole return
    reminders = [
        local(entry.at, TZ)
        for entry in state.timeline
        if entry.kind == "message" and entry.detail.startswith(f"replenishment:{TEA.sku} #")
    ]
    delivered_day = local(start, TZ).date()
    assert [(r.date(), r.hour, r.minute) for r in reminders] == [
        (delivered_day + 5 * DAY, 10, 0),
        (delivered_day + 15 * DAY, 10, 0),
    ]
    await handle.cancel()
    assert (await handle.query(OrderJourney.state)).reminders_sent == {TEA.sku: 2}
