"""Events in virtual time: duplicates, a storm of signals at once, an address change."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

from temporalio.api.enums.v1 import EventType as HistoryEventType

from tests.support.orders import domain_order
from tests.support.virtual_time import VirtualJourneys, resolved, sent_steps, text_of
from workflows.contracts import SendMessageInput
from workflows.order_journey import OrderJourney
from workflows.orders import Address, OrderEvent
from workflows.state import JourneyState, StepOutcome
from workflows.vocabulary import EventType, Stage

DAY = timedelta(days=1)
TZ = "Europe/Berlin"
SCORE_STEPS = ("detractor_follow_up", "passive_thanks", "review_request")


async def test_duplicate_event_ids_are_recorded_once_and_not_applied_again(
    journeys: VirtualJourneys,
) -> None:
    await journeys.travel_to_local("10:00", TZ)
    handle = await journeys.start(domain_order())
    await journeys.event(handle, EventType.SHIPPED, event_id="ship-1")
    await journeys.until(handle, resolved("shipping_notice"))
    await journeys.event(handle, EventType.SHIPPED, event_id="ship-1")
    await journeys.event(handle, EventType.DELIVERED, event_id="deliver-1")
    await journeys.until(handle, resolved("delivered"))
    await journeys.event(handle, EventType.FEEDBACK, event_id="feedback-1", score=10)
    await journeys.until(handle, resolved("review_request"))
    # The same id again, now carrying a detractor's score: still the same event.
    await journeys.event(handle, EventType.FEEDBACK, event_id="feedback-1", score=2)
    await journeys.event(handle, EventType.DELIVERED, event_id="deliver-1")
    state = await handle.query(OrderJourney.state)

    assert state.seen_event_ids == ["ship-1", "deliver-1", "feedback-1"]
    notes = [entry.detail for entry in state.timeline if entry.kind == "event"]
    assert notes.count("duplicate event ship-1 (shipped) ignored") == 1
    assert notes.count("duplicate event feedback-1 (feedback) ignored") == 1
    assert notes.count("duplicate event deliver-1 (delivered) ignored") == 1
    applied = [note for note in notes if not note.startswith("duplicate")]
    assert applied == [
        "shipped (ship-1)",
        "delivered (deliver-1)",
        "feedback (feedback-1): score 10",
    ]
    assert state.feedback is not None
    assert state.feedback.score == 10
    assert not state.marketing_blocked
    assert "detractor_follow_up" not in sent_steps(state)
    expected = ["order_confirmation", "shipping_notice", "delivered", "review_request"]
    assert sent_steps(state) == expected
    assert journeys.steps_mailed(handle.id) == expected
    await handle.cancel()


async def test_event_storm_sends_each_step_at_most_once(journeys: VirtualJourneys) -> None:
    await journeys.travel_to_local("10:00", TZ)
    handle = await journeys.start(domain_order())
    await journeys.until(handle, resolved("order_confirmation"))
    await journeys.wait(handle, DAY)  # Day 2, 10:00 local: everything happens at once.

    events: list[OrderEvent] = []
    for n in range(5):  # the delivery first, each id three times: 15
        delivered = await journeys.order_event(EventType.DELIVERED, event_id=f"dlv-{n}")
        events += [delivered] * 3
    for n in range(10):  # then the (late) shipping reports, each a new id: 10
        events.append(await journeys.order_event(EventType.SHIPPED, event_id=f"shp-{n}"))
    for n in range(5):  # out for delivery, each id twice: 10
        out = await journeys.order_event(EventType.OUT_FOR_DELIVERY, event_id=f"ofd-{n}")
        events += [out, out]
    for n in range(15):  # feedback with different scores, new ids: 15
        score = (3, 8, 10)[n % 3]
        events.append(
            await journeys.order_event(EventType.FEEDBACK, event_id=f"fb-{n}", score=score)
        )
    assert len(events) == 50
    distinct = {event.event_id for event in events}
    storm_at = await journeys.now()

    def settled(state: JourneyState) -> bool:
        """All events seen and applied, and nothing due now (the thank-you is 4 h off)."""
        return (
            len(state.seen_event_ids) == len(distinct)
            and not state.pending_events
            and all(key in state.steps for key in ("delivered", *SCORE_STEPS))
            and all(step.due_at > storm_at + timedelta(hours=2) for step in state.scheduled)
        )

    await asyncio.gather(*(handle.signal(OrderJourney.record_event, e) for e in events))
    state = await journeys.until(handle, settled)

    mailed = journeys.steps_mailed(handle.id)
    assert max(Counter(mailed).values()) == 1, mailed
    assert sent_steps(state) == mailed
    assert mailed[0] == "order_confirmation"
    assert "delivered" in mailed
    # A shipping update is moot once the parcel is known to have arrived; one may go
    # out only if its event was taken in before any delivery report.
    delay = state.steps["shipping_delay"]
    assert delay.outcome == StepOutcome.SKIPPED
    assert delay.detail.startswith("not needed: ")
    for key in ("shipping_notice", "out_for_delivery"):
        record = state.steps[key]
        if record.outcome == StepOutcome.SENT:
            assert mailed.index(key) < mailed.index("delivered"), mailed
        else:
            assert record.outcome == StepOutcome.SKIPPED, key
            assert record.detail.startswith("not needed: "), record.detail
    assert sorted(state.seen_event_ids) == sorted(distinct)
    duplicates = [e.detail for e in state.timeline if e.detail.startswith("duplicate event")]
    assert len(duplicates) == len(events) - len(distinct)
    # Each new id is applied once; after the first of its type, timers keep the first.
    repeats = [e for e in state.timeline if "already recorded once" in e.detail]
    assert len(repeats) == len(distinct) - len(state.events)
    assert state.stage == Stage.DELIVERED
    assert set(state.events) == {
        EventType.DELIVERED,
        EventType.SHIPPED,
        EventType.OUT_FOR_DELIVERY,
        EventType.FEEDBACK,
    }
    # One feedback counts (the first applied); exactly the follow-up for its score went out.
    assert state.feedback is not None
    score = state.feedback.score
    follow_up = {3: "detractor_follow_up", 8: "passive_thanks", 10: "review_request"}[score]
    assert [key for key in SCORE_STEPS if key in mailed] == [follow_up]
    assert state.marketing_blocked == (score == 3)
    first_feedback = next(e.detail for e in state.timeline if e.detail.startswith("feedback ("))
    assert first_feedback.endswith(f": score {score}")
    await handle.cancel()


async def test_address_change_is_confirmed_and_used_afterwards(journeys: VirtualJourneys) -> None:
    await journeys.travel_to_local("10:00", TZ)
    order = domain_order()
    handle = await journeys.start(order)
    await journeys.until(handle, resolved("order_confirmation"))
    assert order.shipping_address.line1 in text_of(journeys.mails(handle.id)[0])
    new_address = Address(
        name="Jane Doe",
        line1="Lindenstrasse 7",
        city="Hamburg",
        postal_code="20095",
        country_code="DE",
    )
    await journeys.event(handle, EventType.ADDRESS_CHANGED, new_address=new_address)
    state = await journeys.until(handle, resolved("address_changed"))
    assert state.shipping_address == new_address
    confirmation = journeys.mails(handle.id)[-1]
    assert confirmation.message["X-Aftercare-Step"] == "address_changed"
    text = text_of(confirmation)
    assert "Lindenstrasse 7" in text
    assert "20095 Hamburg" in text
    assert order.shipping_address.line1 not in text

    await journeys.event(handle, EventType.SHIPPED)
    await journeys.event(handle, EventType.DELIVERED)
    await journeys.wait(handle, DAY)
    await journeys.until(handle, resolved("thank_you"))
    await handle.cancel()
    mailed = journeys.steps_mailed(handle.id)
    assert mailed == [
        "order_confirmation",
        "address_changed",
        "shipping_notice",
        "delivered",
        "thank_you",
    ]

    # The delivery and thank-you templates print no address, so look at what the
    # journey handed to the send activity for every message after the change.
    addresses: dict[str, Address] = {}
    async for event in handle.fetch_history_events():
        if event.event_type != HistoryEventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        scheduled = event.activity_task_scheduled_event_attributes
        if scheduled.activity_type.name != "send_message":
            continue
        [request] = await journeys.env.client.data_converter.decode(
            scheduled.input.payloads, [SendMessageInput]
        )
        assert isinstance(request, SendMessageInput)
        addresses[request.step] = request.order.shipping_address
    assert addresses["order_confirmation"] == order.shipping_address
    for step in ("address_changed", "shipping_notice", "delivered", "thank_you"):
        assert addresses[step] == new_address, step
