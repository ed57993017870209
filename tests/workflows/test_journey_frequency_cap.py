"""The frequency cap across a customer's journeys, in virtual time with the real
workflow, activities, SMTP sink and ledger: two journeys whose marketing falls due in
the same second send one message; the other waits for its slot and goes then, or is
dropped as stale, on the timeline and in the ledger. Transactional and other
uncapped messages of both go out at once.

The tests travel forward in virtual time, so they keep the order they are written in.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from temporalio.client import WorkflowHandle

from engine.messaging.frequency_caps import FrequencyCapStore, send_key
from engine.messaging.ledger import MessageLedger, idempotency_key
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.tables import CapSlotState, MessageStatus
from tests.support.orders import COFFEE, domain_order
from tests.support.virtual_time import VirtualJourneys, local, resolved, sent_steps
from workflows.order_journey import OrderJourney
from workflows.orders import LineItem, Order
from workflows.state import JourneyState, StepOutcome
from workflows.vocabulary import EventType

DAY = timedelta(days=1)
TZ = "Europe/Berlin"
# Same cycle as the coffee (14 days x 2): both run out, and are reminded, together.
GREEN_TEA = LineItem(
    sku="TEA-GRN-100",
    name="Sencha 100 g",
    category="tea",
    quantity=2,
    unit_price_minor=990,
    consumption_days=14,
)
Journey = WorkflowHandle[OrderJourney, JourneyState]


def customer_orders(*items: list[LineItem] | None) -> list[Order]:
    customer = f"cus-{uuid.uuid4().hex[:8]}"
    return [domain_order(customer_id=customer, items=these) for these in items]


async def start_delivered_together(journeys: VirtualJourneys, orders: list[Order]) -> list[Journey]:
    """Start the journeys, then deliver every order at one instant (one carrier scan),
    so their timers fall due in the same second."""
    handles = [await journeys.start(order) for order in orders]
    for handle in handles:
        await journeys.until(handle, resolved("order_confirmation"))
    delivered_at = await journeys.now()
    for n, handle in enumerate(handles):
        await handle.signal(
            OrderJourney.record_event,
            await journeys.order_event(
                EventType.DELIVERED, event_id=f"dlv-{n}", occurred_at=delivered_at
            ),
        )
    for handle in handles:
        await journeys.until(handle, resolved("delivered"))
    return handles


async def states(handles: list[Journey]) -> list[JourneyState]:
    return list(await asyncio.gather(*(h.query(OrderJourney.state) for h in handles)))


def notes_about(state: JourneyState, key: str) -> list[str]:
    return [e.detail for e in state.timeline if e.detail.startswith(f"{key}")]


async def test_one_reminder_goes_and_the_other_waits_three_days_for_its_slot(
    journeys: VirtualJourneys,
) -> None:
    await journeys.travel_to_local("09:00", TZ)
    coffee, tea = customer_orders([COFFEE], [GREEN_TEA])
    handles = await start_delivered_together(journeys, [coffee, tea])
    skus = [COFFEE.sku, GREEN_TEA.sku]
    delivered_day = local((await states(handles))[0].events[EventType.DELIVERED], TZ).date()

    # Both reminders are due 23 days on at 10:00 local (5 days before the run-out).
    await journeys.env.sleep(23 * DAY + 2 * timedelta(hours=1))
    first = await journeys.until(
        handles[0],
        lambda s: (
            s.reminders_sent.get(COFFEE.sku) == 1 or f"replenishment:{COFFEE.sku}" in s.deferred
        ),
    )
    second = await journeys.until(
        handles[1],
        lambda s: (
            s.reminders_sent.get(GREEN_TEA.sku) == 1
            or f"replenishment:{GREEN_TEA.sku}" in s.deferred
        ),
    )
    sent_now = [
        s.reminders_sent.get(sku) == 1 for s, sku in zip((first, second), skus, strict=True)
    ]
    assert sorted(sent_now) == [False, True], "exactly one reminder passes the cap"
    winner = sent_now.index(True)
    loser = 1 - winner
    waiting = (first, second)[loser]
    key = f"replenishment:{skus[loser]}"
    slot = waiting.deferred[key]
    [note] = [n for n in notes_about(waiting, key) if "deferred to" in n]
    assert "over the frequency cap (at most 1 marketing message per 3 days" in note
    # The query shows the reminder at its new time.
    [scheduled] = [s for s in waiting.scheduled if s.step.startswith(key)]
    assert scheduled.due_at == slot
    slot_local = local(slot, TZ)
    assert slot_local.date() == delivered_day + 26 * DAY  # three days after the other
    assert (slot_local.hour, slot_local.minute) in {(10, 0), (10, 1)}
    assert journeys.steps_mailed(handles[loser].id).count(key) == 0

    # Three days later the slot comes and the deferred reminder goes out.
    await journeys.env.sleep(3 * DAY)
    done = await journeys.until(handles[loser], lambda s: s.reminders_sent.get(skus[loser]) == 1)
    assert key not in done.deferred
    assert journeys.steps_mailed(handles[loser].id).count(key) == 1
    [sent] = [e for e in done.timeline if e.kind == "message" and e.detail.startswith(f"{key} #1")]
    assert sent.at >= slot
    assert local(sent.at, TZ).date() == slot_local.date()
    assert journeys.steps_mailed(handles[winner].id).count(f"replenishment:{skus[winner]}") == 1

    # In the database: both count, each once, three days apart.
    engine = create_engine(journeys.settings.resolved_database_url)
    try:
        caps = FrequencyCapStore(create_session_factory(engine))
        slots = await caps.slots(coffee.customer.id, "marketing")
    finally:
        await engine.dispose()
    assert [s.state for s in slots] == [CapSlotState.SENT, CapSlotState.SENT]
    assert slots[1].slot_at - slots[0].slot_at >= 3 * DAY
    for handle in handles:
        await handle.cancel()


async def test_a_cross_sell_that_would_be_stale_by_its_slot_is_dropped_and_recorded(
    journeys: VirtualJourneys,
) -> None:
    await journeys.travel_to_local("09:00", TZ, not_before=await journeys.now() + 40 * DAY)
    orders = customer_orders(None, None)
    handles = await start_delivered_together(journeys, orders)

    # Past the cross-sell (delivery + 21 d, 11:00 local; stale after 2 days).
    await journeys.env.sleep(22 * DAY)
    finals = [await journeys.until(h, resolved("cross_sell")) for h in handles]

    outcomes = sorted(state.steps["cross_sell"].outcome for state in finals)
    assert outcomes == [StepOutcome.SENT, StepOutcome.SKIPPED]
    [dropped] = [s for s in finals if s.steps["cross_sell"].outcome == StepOutcome.SKIPPED]
    detail = dropped.steps["cross_sell"].detail
    assert detail.startswith(
        "stale: over the frequency cap (at most 1 marketing message per 3 days and 3 per 30 days)"
    )
    assert f"cross_sell: {detail}" in [e.detail for e in dropped.timeline if e.kind == "skip"]
    assert [m.status for m in dropped.sent if m.step == "cross_sell"] == ["stale"]
    mailed = [journeys.steps_mailed(h.id) for h in handles]
    assert sorted(m.count("cross_sell") for m in mailed) == [0, 1]

    # Never silently lost: the ledger row says why.
    engine = create_engine(journeys.settings.resolved_database_url)
    try:
        ledger = MessageLedger(create_session_factory(engine))
        entry = await ledger.get(idempotency_key(dropped.journey_id, "cross_sell", 0, "email"))
        caps = FrequencyCapStore(create_session_factory(engine))
        slots = await caps.slots(orders[0].customer.id)
    finally:
        await engine.dispose()
    assert entry is not None
    assert entry.status == MessageStatus.SKIPPED
    assert entry.error == detail
    assert send_key(dropped.journey_id, "cross_sell", 0) not in [s.send_key for s in slots]

    # Nothing else of the two journeys is capped: the order confirmations, delivery
    # notes, thanks, tips and feedback requests of both went out, each on time.
    for state, steps in zip(finals, mailed, strict=True):
        expected = [
            "order_confirmation",
            "delivered",
            "thank_you",
            "product_education",
            "feedback_request",
            "feedback_reminder",
        ]
        assert sent_steps(state)[: len(expected)] == expected
        assert steps[: len(expected)] == expected
    at = [{k: r.at for k, r in s.steps.items()} for s in finals]
    for step in ("thank_you", "product_education", "feedback_request", "feedback_reminder"):
        assert abs(at[0][step] - at[1][step]) < timedelta(minutes=1), step
    for handle in handles:
        await handle.cancel()
