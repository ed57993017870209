"""How an order event changes a journey's state: ``workflows.events.apply_event``,
pure, without Temporal. The sentence it returns goes on the journey's timeline."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.support.journey_state import journey_state, utc
from tests.support.orders import COFFEE, domain_order
from workflows.events import DETRACTOR_MAX_SCORE, apply_event
from workflows.orders import Address, Feedback, LineItem, Order, OrderEvent, Shipment
from workflows.state import JourneyState
from workflows.vocabulary import EventType

START = utc(2025, 6, 2, 7)
NOW = utc(2025, 6, 5, 12)
TEA = LineItem(
    sku="TEA-1",
    name="Green tea",
    category="tea",
    quantity=1,
    unit_price_minor=900,
    consumption_days=30,
)
SHIRT = LineItem(sku="SH-1", name="Linen shirt", quantity=1, unit_price_minor=3900)
DHL = Shipment(carrier="DHL", tracking_number="JD01", tracking_url="https://dhl.example/JD01")
NEW_ADDRESS = Address(
    name="Jane Doe",
    line1="Schönhauser Allee 1",
    city="Berlin",
    postal_code="10119",
    country_code="DE",
)


def order() -> Order:
    return domain_order(order_id="A-1", customer_id="cus-1", items=[COFFEE, TEA, SHIRT])


def fresh() -> JourneyState:
    return journey_state(START)


def event(
    event_type: EventType, event_id: str, occurred_at: datetime = START, **fields: object
) -> OrderEvent:
    return OrderEvent(event_id=event_id, type=event_type, occurred_at=occurred_at, **fields)  # type: ignore[arg-type]


# --- timers: the first occurrence, clamped ---------------------------------------------


def test_the_first_occurrence_anchors_the_timers_at_its_source_time() -> None:
    state = fresh()
    shipped_at = utc(2025, 6, 3, 9, 15)

    detail = apply_event(state, order(), event(EventType.SHIPPED, "s1", shipped_at), NOW)

    assert detail == "shipped (s1)"
    assert state.events == {EventType.SHIPPED: shipped_at}
    # When it reached the journey, for the `unless ... reported first` rule.
    assert state.reported == {EventType.SHIPPED: NOW}
    assert state.last_activity_at == NOW


@pytest.mark.parametrize(
    ("occurred_at", "anchored"),
    [
        # Before the journey started (a clock behind, or an event from before the
        # order reached us): the start.
        (START - timedelta(days=2), START),
        (START, START),
        (START + timedelta(seconds=1), START + timedelta(seconds=1)),
        (NOW, NOW),
        # In the future (a clock ahead): now, so no step is pushed later.
        (NOW + timedelta(seconds=1), NOW),
        (NOW + timedelta(days=30), NOW),
    ],
)
def test_the_event_time_is_clamped_into_the_journeys_life(
    occurred_at: datetime, anchored: datetime
) -> None:
    state = fresh()
    apply_event(state, order(), event(EventType.DELIVERED, "d1", occurred_at), NOW)
    assert state.events[EventType.DELIVERED] == anchored
    assert state.reported[EventType.DELIVERED] == NOW


def test_a_second_occurrence_keeps_the_first_time_and_says_so() -> None:
    state = fresh()
    first = utc(2025, 6, 3, 9)
    apply_event(state, order(), event(EventType.OUT_FOR_DELIVERY, "o1", first), NOW)
    later_now = NOW + timedelta(hours=3)

    detail = apply_event(
        state, order(), event(EventType.OUT_FOR_DELIVERY, "o2", utc(2025, 6, 4)), later_now
    )

    assert detail == "out_for_delivery (o2); already recorded once, timers keep the first"
    assert state.events == {EventType.OUT_FOR_DELIVERY: first}
    assert state.reported == {EventType.OUT_FOR_DELIVERY: NOW}
    # It was still activity.
    assert state.last_activity_at == later_now


def test_events_of_different_types_each_keep_their_own_time() -> None:
    state = fresh()
    apply_event(state, order(), event(EventType.SHIPPED, "s1", utc(2025, 6, 3)), NOW)
    apply_event(
        state, order(), event(EventType.DELIVERED, "d1", utc(2025, 6, 4)), NOW + timedelta(hours=1)
    )
    assert state.events == {
        EventType.SHIPPED: utc(2025, 6, 3),
        EventType.DELIVERED: utc(2025, 6, 4),
    }
    assert state.reported == {
        EventType.SHIPPED: NOW,
        EventType.DELIVERED: NOW + timedelta(hours=1),
    }


def test_applying_an_event_touches_nothing_else() -> None:
    state = fresh()
    apply_event(state, order(), event(EventType.SHIPPED, "s1", shipment=DHL), NOW)
    untouched = journey_state(
        START,
        events=state.events,
        reported=state.reported,
        shipment=DHL,
        last_activity_at=NOW,
    )
    assert state == untouched


# --- what an event carries ---------------------------------------------------------------


def test_the_first_shipment_details_are_kept() -> None:
    state = fresh()
    apply_event(state, order(), event(EventType.SHIPPED, "s1", shipment=DHL), NOW)
    other = Shipment(carrier="UPS", tracking_number="1Z9")

    detail = apply_event(state, order(), event(EventType.SHIPPED, "s2", shipment=other), NOW)

    assert state.shipment == DHL
    assert detail == "shipped (s2); already recorded once, timers keep the first"


def test_shipment_details_arriving_with_a_later_shipped_event_are_taken() -> None:
    state = fresh()
    apply_event(state, order(), event(EventType.SHIPPED, "s1", utc(2025, 6, 3)), NOW)
    assert state.shipment is None

    apply_event(state, order(), event(EventType.SHIPPED, "s2", shipment=DHL), NOW)

    assert state.shipment == DHL
    assert state.events[EventType.SHIPPED] == utc(2025, 6, 3)


def test_shipment_details_on_another_event_type_are_ignored() -> None:
    state = fresh()
    apply_event(state, order(), event(EventType.DELIVERED, "d1", shipment=DHL), NOW)
    assert state.shipment is None


def test_feedback_is_recorded_with_its_score() -> None:
    state = fresh()
    answer = Feedback(score=9, comment="Lovely beans")

    detail = apply_event(state, order(), event(EventType.FEEDBACK, "f1", feedback=answer), NOW)

    assert detail == "feedback (f1): score 9"
    assert state.feedback == answer
    assert not state.marketing_blocked


@pytest.mark.parametrize(
    ("score", "blocked"), [(0, True), (3, True), (6, True), (7, False), (10, False)]
)
def test_a_detractor_score_blocks_marketing(score: int, blocked: bool) -> None:
    state = fresh()
    apply_event(state, order(), event(EventType.FEEDBACK, "f1", feedback=Feedback(score)), NOW)
    assert state.marketing_blocked is blocked
    assert (score <= DETRACTOR_MAX_SCORE) is blocked


def test_only_the_first_feedback_counts() -> None:
    state = fresh()
    apply_event(state, order(), event(EventType.FEEDBACK, "f1", feedback=Feedback(9)), NOW)

    detail = apply_event(
        state,
        order(),
        event(EventType.FEEDBACK, "f2", feedback=Feedback(2, "changed my mind")),
        NOW,
    )

    assert detail == "feedback (f2); already recorded once, timers keep the first"
    assert state.feedback == Feedback(9)
    assert not state.marketing_blocked


def test_a_new_address_is_recorded_and_a_later_one_replaces_it() -> None:
    state = fresh()
    assert (
        apply_event(
            state, order(), event(EventType.ADDRESS_CHANGED, "a1", new_address=NEW_ADDRESS), NOW
        )
        == "address_changed (a1)"
    )
    assert state.shipping_address == NEW_ADDRESS

    again = Address(
        name="Jane Doe", line1="Torstr. 5", city="Berlin", postal_code="10119", country_code="DE"
    )
    detail = apply_event(
        state,
        order(),
        event(EventType.ADDRESS_CHANGED, "a2", utc(2025, 6, 4), new_address=again),
        NOW,
    )

    assert state.shipping_address == again
    assert detail == "address_changed (a2); already recorded once, timers keep the first"
    assert state.events[EventType.ADDRESS_CHANGED] == START


def test_an_address_change_without_an_address_keeps_the_address() -> None:
    state = fresh()
    apply_event(state, order(), event(EventType.ADDRESS_CHANGED, "a1"), NOW)
    assert state.shipping_address is None
    assert EventType.ADDRESS_CHANGED in state.events


# --- returns and reorders --------------------------------------------------------------


def test_returned_skus_are_recorded_once_each() -> None:
    state = fresh()
    detail = apply_event(
        state, order(), event(EventType.RETURNED, "r1", skus=["SH-1", "TEA-1"]), NOW
    )
    assert detail == "returned (r1) for SH-1, TEA-1"
    assert state.returned_skus == ["SH-1", "TEA-1"]
    assert not state.whole_order_returned

    # Items come back one parcel at a time: no "already recorded" note for returns.
    later = NOW + timedelta(days=1)
    detail = apply_event(
        state, order(), event(EventType.RETURNED, "r2", skus=["TEA-1", "COF-ETH-500"]), later
    )
    assert detail == "returned (r2) for TEA-1, COF-ETH-500"
    assert state.returned_skus == ["SH-1", "TEA-1", "COF-ETH-500"]
    assert state.events[EventType.RETURNED] == START
    assert state.reported[EventType.RETURNED] == NOW
    assert not state.whole_order_returned


@pytest.mark.parametrize(
    "event_type", [EventType.RETURN_REQUESTED, EventType.RETURNED, EventType.REFUNDED]
)
def test_a_return_without_skus_is_the_whole_order(event_type: EventType) -> None:
    state = fresh()
    detail = apply_event(state, order(), event(event_type, "r1"), NOW)
    assert detail == f"{event_type} (r1)"
    assert state.whole_order_returned
    assert state.returned_skus == []


@pytest.mark.parametrize("event_type", [EventType.RETURN_REQUESTED, EventType.REFUNDED])
def test_a_partial_refund_or_return_request_names_its_skus(event_type: EventType) -> None:
    state = fresh()
    detail = apply_event(state, order(), event(event_type, "r1", skus=["SH-1"]), NOW)
    assert detail == f"{event_type} (r1) for SH-1"
    assert state.returned_skus == ["SH-1"]
    assert not state.whole_order_returned


def test_a_whole_order_return_after_a_partial_one() -> None:
    state = fresh()
    apply_event(state, order(), event(EventType.RETURNED, "r1", skus=["SH-1"]), NOW)
    detail = apply_event(state, order(), event(EventType.REFUNDED, "r2"), NOW)
    assert detail == "refunded (r2)"
    assert state.whole_order_returned
    assert state.returned_skus == ["SH-1"]


def test_a_repeated_refund_is_noted() -> None:
    state = fresh()
    apply_event(state, order(), event(EventType.REFUNDED, "r1", skus=["SH-1"]), NOW)
    detail = apply_event(state, order(), event(EventType.REFUNDED, "r2", skus=["TEA-1"]), NOW)
    assert detail == "refunded (r2) for TEA-1; already recorded once, timers keep the first"
    assert state.returned_skus == ["SH-1", "TEA-1"]


def test_a_reorder_without_skus_is_every_consumable_of_the_order() -> None:
    state = fresh()
    detail = apply_event(state, order(), event(EventType.REORDERED, "o1"), NOW)
    assert detail == "reordered (o1)"
    # The shirt is no consumable.
    assert state.reordered_skus == ["COF-ETH-500", "TEA-1"]


def test_a_reorder_names_its_skus_and_repeats_quietly() -> None:
    state = fresh()
    apply_event(state, order(), event(EventType.REORDERED, "o1", skus=["TEA-1"]), NOW)
    detail = apply_event(
        state, order(), event(EventType.REORDERED, "o2", skus=["COF-ETH-500", "TEA-1"]), NOW
    )
    # A customer reorders again and again: no note.
    assert detail == "reordered (o2)"
    assert state.reordered_skus == ["TEA-1", "COF-ETH-500"]
    assert state.returned_skus == []
