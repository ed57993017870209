"""Replenishment in virtual time: reminders before each run-out of a consumable, every
cycle, across continue-as-new, until the customer reorders."""

from __future__ import annotations

import uuid
from datetime import timedelta

from tests.support.orders import COFFEE, domain_order
from tests.support.virtual_time import VirtualJourneys, local, resolved, sent_steps
from workflows.state import StepOutcome
from workflows.vocabulary import EventType, Stage

DAY = timedelta(days=1)
TZ = "Europe/Berlin"
KEY = f"replenishment:{COFFEE.sku}"


async def test_reminders_each_cycle_until_reordered(journeys: VirtualJourneys) -> None:
    await journeys.travel_to_local("09:00", TZ)
    # Its own customer: a consumables journey stops the reminders of the customer's others.
    order = domain_order(items=[COFFEE], customer_id=f"cus-{uuid.uuid4().hex[:8]}")
    handle = await journeys.start(order)
    await journeys.event(handle, EventType.DELIVERED)  # 09:00 local
    state = await journeys.until(handle, resolved("delivered"))
    assert state.plan_id == "consumables"
    delivered_day = local(state.events[EventType.DELIVERED], TZ).date()

    # 14 days x 2 bags = a 28-day cycle; each reminder 5 days before the run-out.
    await journeys.wait(handle, 80 * DAY)
    state = await journeys.until(handle, lambda s: s.reminders_sent.get(COFFEE.sku) == 3)

    assert state.stage == Stage.REPLENISHMENT
    assert state.runs > 1  # a new run after each reminder
    assert KEY not in state.steps  # the series is still open
    reminders = [
        local(entry.at, TZ)
        for entry in state.timeline
        if entry.kind == "message" and entry.detail.startswith(f"{KEY} #")
    ]
    assert [(r.date(), r.hour, r.minute) for r in reminders] == [
        (delivered_day + 23 * DAY, 10, 0),
        (delivered_day + 51 * DAY, 10, 0),
        (delivered_day + 79 * DAY, 10, 0),
    ]
    assert journeys.steps_mailed(handle.id).count(KEY) == 3
    assert [step.step for step in state.scheduled] == [f"{KEY} #4"]

    await journeys.event(handle, EventType.REORDERED)
    state = await journeys.until(handle, resolved(KEY))
    assert (state.steps[KEY].outcome, state.steps[KEY].detail) == (
        StepOutcome.SKIPPED,
        "reordered",
    )
    assert state.scheduled == []

    await journeys.wait(handle, 40 * DAY)  # past where the 4th would have gone (+107 d)
    final = await handle.result()

    assert final.reminders_sent == {COFFEE.sku: 3}
    mailed = journeys.steps_mailed(handle.id)
    assert mailed.count(KEY) == 3
    assert final.stage == Stage.COMPLETED
    assert final.runs == state.runs > 1
    # The state carried through every run: what was sent, and the timeline from the start.
    assert sent_steps(final) == mailed
    assert mailed == [
        "order_confirmation",
        "delivered",
        "thank_you",
        "product_education",
        "feedback_request",
        "feedback_reminder",
        KEY,
        KEY,
        KEY,
    ]
    assert final.timeline[0].detail == "journey started"
    assert final.timeline[0].at < final.events[EventType.DELIVERED]
    assert sum(1 for e in final.timeline if e.detail.startswith(f"{KEY} #")) == 3
    assert final.plan_id == "consumables"
