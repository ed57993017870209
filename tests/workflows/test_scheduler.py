"""The plan interpreter's pure core, ``workflows.scheduler.build_agenda``, without
Temporal: the shipped plans (and small plans built here) against orders and
journey states built by hand. Every instant below is worked out from the plan in
the comment beside it; Europe/Berlin is UTC+2 in June (CEST) and UTC+1 in March
until the 30th."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import pytest

from tests.support.journey_state import happened, journey_state, sent, utc
from tests.support.orders import COFFEE, domain_order
from workflows.orders import Feedback, LineItem, Order
from workflows.plans.catalogue import load_catalogue
from workflows.plans.model import (
    Category,
    Conditions,
    Plan,
    Replenishment,
    Segment,
    Step,
    TimeWindow,
    Trigger,
    TriggerKind,
)
from workflows.scheduler import Agenda, PlannedSend, build_agenda, with_deferrals
from workflows.state import JourneyState, StepOutcome, StepRecord
from workflows.vocabulary import Channel, EventType

CATALOGUE = load_catalogue()
DEFAULT = CATALOGUE["default"].plan
CONSUMABLES = CATALOGUE["consumables"].plan

BERLIN = "Europe/Berlin"
# Monday 2 June 2025, 09:00 in Berlin.
START = utc(2025, 6, 2, 7, 0)
SHIPPED_AT = utc(2025, 6, 3, 8, 0)
# Thursday 5 June, 17:00 in Berlin.
DELIVERED_AT = utc(2025, 6, 5, 15, 0)
REPLENISH = "replenishment:COF-ETH-500"


def order_in(timezone: str = BERLIN) -> Order:
    return domain_order(order_id="A-1", customer_id="cus-1", timezone=timezone)


def coffee_order(*items: LineItem, timezone: str = BERLIN) -> Order:
    return dataclasses.replace(
        domain_order(order_id="A-1", customer_id="cus-1", timezone=timezone),
        items=list(items) or [COFFEE],
    )


def timing(agenda: Agenda) -> list[tuple[str, datetime, datetime]]:
    """(key, base_at, due_at) of each send, in the agenda's order."""
    return [(send.key, send.base_at, send.due_at) for send in agenda.sends]


def reasons(agenda: Agenda) -> dict[str, str]:
    return {skip.key: skip.reason for skip in agenda.skips}


def send_of(agenda: Agenda, key: str) -> PlannedSend:
    (send,) = [send for send in agenda.sends if send.key == key]
    return send


def delivered_state(**fields: object) -> JourneyState:
    """Shipped on 3 June, delivered on 5 June at 17:00 local; the transactional
    messages so far went out."""
    base: dict[str, object] = {
        "events": happened(shipped=SHIPPED_AT, delivered=DELIVERED_AT),
        "reported": happened(shipped=SHIPPED_AT, delivered=DELIVERED_AT),
        "steps": sent(order_confirmation=START, shipping_notice=SHIPPED_AT, delivered=DELIVERED_AT),
    }
    base.update(fields)
    return journey_state(START, **base)


def step(
    step_id: str,
    trigger: Trigger,
    category: Category = Category.RELATIONSHIP,
    **fields: object,
) -> Step:
    return Step(id=step_id, trigger=trigger, template=step_id, category=category, **fields)  # type: ignore[arg-type]


def plan_of(*steps: Step, **fields: object) -> Plan:
    return Plan(id="test", version=1, description="built in the test", steps=steps, **fields)  # type: ignore[arg-type]


AT_START = Trigger(on=TriggerKind.START)


# --- triggers and delays ---------------------------------------------------------------


def test_a_new_journey_sends_the_confirmation_now_and_the_delay_notice_after_the_sla() -> None:
    agenda = build_agenda(DEFAULT, order_in(), journey_state(START))

    assert timing(agenda) == [
        ("order_confirmation", START, START),
        # start + P3D is Thursday 09:00 local, inside the 08:00-20:00 window.
        ("shipping_delay", utc(2025, 6, 5, 7), utc(2025, 6, 5, 7)),
    ]
    assert agenda.skips == []
    confirmation = agenda.sends[0]
    assert confirmation.step is DEFAULT.step("order_confirmation")
    assert (confirmation.template, confirmation.category, confirmation.channels) == (
        "order_confirmation",
        Category.TRANSACTIONAL,
        (Channel.EMAIL,),
    )
    assert (confirmation.iteration, confirmation.position) == (0, 0)
    assert agenda.sends[1].position == 1
    # Every event a step is triggered by; feedback_reminder waits on a step, not an event.
    assert agenda.waiting_for == [
        EventType.ADDRESS_CHANGED,
        EventType.CANCELLED,
        EventType.DELIVERED,
        EventType.FEEDBACK,
        EventType.OUT_FOR_DELIVERY,
        EventType.REFUNDED,
        EventType.RETURN_REQUESTED,
        EventType.SHIPPED,
    ]


def test_event_triggers_anchor_to_the_event_and_add_their_delay() -> None:
    agenda = build_agenda(DEFAULT, order_in(), delivered_state())

    assert timing(agenda) == [
        # +PT4H is 21:00 local, after the 09:00-20:00 window: Friday 09:00 local.
        ("thank_you", utc(2025, 6, 5, 19), utc(2025, 6, 6, 7)),
        # +P3D is Sunday 17:00 local; "10:00": Monday 10:00 local.
        ("product_education", utc(2025, 6, 8, 15), utc(2025, 6, 9, 8)),
        # +P7D is Thursday 17:00 local; next 10:00 local is Friday's.
        ("feedback_request", utc(2025, 6, 12, 15), utc(2025, 6, 13, 8)),
        # +P21D at 11:00 local.
        ("cross_sell", utc(2025, 6, 26, 15), utc(2025, 6, 27, 9)),
    ]
    # A shipment before the SLA ran out makes the delay notice moot.
    assert reasons(agenda) == {"shipping_delay": "not needed: shipped happened first"}
    assert agenda.waiting_for == [
        EventType.ADDRESS_CHANGED,
        EventType.CANCELLED,
        EventType.FEEDBACK,
        EventType.OUT_FOR_DELIVERY,
        EventType.REFUNDED,
        EventType.RETURN_REQUESTED,
    ]


def test_steps_already_recorded_are_left_out_whatever_became_of_them() -> None:
    state = delivered_state()
    state.steps["thank_you"] = StepRecord(StepOutcome.FAILED, utc(2025, 6, 6, 7), "smtp down")
    state.steps["shipping_delay"] = StepRecord(StepOutcome.SKIPPED, SHIPPED_AT, "not needed")
    agenda = build_agenda(DEFAULT, order_in(), state)

    keys = [send.key for send in agenda.sends] + [skip.key for skip in agenda.skips]
    assert "thank_you" not in keys
    assert "shipping_delay" not in keys
    assert [send.key for send in agenda.sends] == [
        "product_education",
        "feedback_request",
        "cross_sell",
    ]


def test_a_step_triggered_by_a_step_anchors_to_its_send_time_to_the_minute() -> None:
    # The request went out a few seconds after 10:00 local on Friday 13 June.
    request_sent = utc(2025, 6, 13, 8, 0, 5)
    state = delivered_state()
    state.steps.update(sent(thank_you=utc(2025, 6, 6, 7), feedback_request=request_sent))
    agenda = build_agenda(DEFAULT, order_in(), state)

    reminder = send_of(agenda, "feedback_reminder")
    assert reminder.base_at == request_sent + timedelta(days=3)
    # "10:00" three days on is that day's 10:00, not the next day's.
    assert reminder.due_at == utc(2025, 6, 16, 8)
    assert reminder.position == 12


def test_a_step_whose_parent_was_not_sent_is_skipped() -> None:
    for outcome in (StepOutcome.SKIPPED, StepOutcome.FAILED):
        state = delivered_state()
        state.steps["feedback_request"] = StepRecord(outcome, utc(2025, 6, 13, 8))
        agenda = build_agenda(DEFAULT, order_in(), state)
        assert reasons(agenda)["feedback_reminder"] == "feedback_request was not sent"
        assert "feedback_reminder" not in [send.key for send in agenda.sends]


def test_a_step_whose_parent_is_still_to_come_neither_sends_nor_waits() -> None:
    agenda = build_agenda(DEFAULT, order_in(), delivered_state())
    keys = [send.key for send in agenda.sends] + [skip.key for skip in agenda.skips]
    assert "feedback_reminder" not in keys


# --- local time: time of day, windows, quiet hours ---------------------------------------


def test_a_window_moves_the_due_time_but_not_the_base_time() -> None:
    # Ordered at 23:30 local: the SLA runs out at 23:30 local three days later, and
    # the delay notice waits for its window to open at 08:00 local.
    late = utc(2025, 6, 2, 21, 30)
    agenda = build_agenda(DEFAULT, order_in(), journey_state(late))
    assert timing(agenda) == [
        # Transactional: at once, quiet hours or not.
        ("order_confirmation", late, late),
        ("shipping_delay", utc(2025, 6, 5, 21, 30), utc(2025, 6, 6, 6)),
    ]


@pytest.mark.parametrize(
    ("timezone", "due"),
    [
        # 15:30 local: outside the quiet hours, sent at once.
        ("Europe/Berlin", utc(2025, 6, 12, 13, 30)),
        # 22:30 local: held until 08:00 local.
        ("Asia/Tokyo", utc(2025, 6, 12, 23)),
        # 09:30 local.
        ("America/New_York", utc(2025, 6, 12, 13, 30)),
        # 01:30 local the next day: held until 08:00 local.
        ("Pacific/Auckland", utc(2025, 6, 12, 20)),
    ],
)
def test_quiet_hours_are_the_customers_own(timezone: str, due: datetime) -> None:
    feedback_at = utc(2025, 6, 12, 13, 30)
    state = delivered_state(
        events=happened(shipped=SHIPPED_AT, delivered=DELIVERED_AT, feedback=feedback_at),
        feedback=Feedback(score=7),
    )
    agenda = build_agenda(DEFAULT, order_in(timezone), state)
    thanks = send_of(agenda, "passive_thanks")
    assert thanks.base_at == feedback_at
    assert thanks.due_at == due


def test_transactional_messages_ignore_quiet_hours() -> None:
    # Delivered at 23:10 local.
    night = utc(2025, 6, 5, 21, 10)
    state = journey_state(
        START,
        events=happened(shipped=SHIPPED_AT, delivered=night),
        steps=sent(order_confirmation=START, shipping_notice=SHIPPED_AT),
    )
    agenda = build_agenda(DEFAULT, order_in(), state)
    assert timing(agenda)[0] == ("delivered", night, night)
    # The thank-you (+PT4H, 03:10 local) waits for its window at 09:00 local.
    assert send_of(agenda, "thank_you").due_at == utc(2025, 6, 6, 7)


def test_a_time_of_day_follows_the_clock_change() -> None:
    # Delivered Thursday 27 March 2025, 13:00 CET; +P3D is Sunday 30 March 14:00 CEST
    # (clocks went forward that night); 10:00 local on Monday is 08:00 UTC, not 09:00.
    delivered = utc(2025, 3, 27, 12)
    state = journey_state(
        utc(2025, 3, 24, 9),
        events=happened(delivered=delivered),
        steps=sent(order_confirmation=utc(2025, 3, 24, 9), delivered=delivered),
    )
    agenda = build_agenda(DEFAULT, order_in(), state)
    education = send_of(agenda, "product_education")
    assert education.base_at == utc(2025, 3, 30, 12)
    assert education.due_at == utc(2025, 3, 31, 8)


def test_quiet_hours_and_a_window_settle_on_a_time_both_allow() -> None:
    # Quiet until 08:00, window from 07:00 to 09:00: a 06:00 base moves to 08:00.
    plan = plan_of(
        step("early", AT_START, window=TimeWindow("07:00", "09:00")),
        quiet_hours=TimeWindow("21:00", "08:00"),
    )
    agenda = build_agenda(plan, order_in(), journey_state(utc(2025, 6, 2, 4)))
    assert timing(agenda) == [("early", utc(2025, 6, 2, 4), utc(2025, 6, 2, 6))]


def test_a_plan_without_quiet_hours_sends_at_night() -> None:
    plan = plan_of(step("night", AT_START, Category.MARKETING), quiet_hours=None)
    night = utc(2025, 6, 2, 0, 30)  # 02:30 local
    agenda = build_agenda(plan, order_in(), journey_state(night))
    assert timing(agenda) == [("night", night, night)]


# --- `unless` events -------------------------------------------------------------------


def test_an_unless_event_before_the_trigger_makes_the_step_moot() -> None:
    # The carrier's `shipped` scan arrives after `delivered` (both happened in order).
    state = journey_state(
        START,
        events=happened(delivered=utc(2025, 6, 4, 10), shipped=utc(2025, 6, 4, 12)),
        reported=happened(delivered=utc(2025, 6, 4, 10), shipped=utc(2025, 6, 4, 12)),
        steps=sent(order_confirmation=START),
    )
    agenda = build_agenda(DEFAULT, order_in(), state)
    assert reasons(agenda)["shipping_notice"] == "not needed: delivered happened first"


def test_an_unless_event_after_the_step_was_due_does_not_stop_it() -> None:
    state = journey_state(
        START,
        events=happened(shipped=utc(2025, 6, 4, 10), delivered=utc(2025, 6, 4, 12)),
        reported=happened(shipped=utc(2025, 6, 4, 10), delivered=utc(2025, 6, 4, 12)),
        steps=sent(order_confirmation=START),
    )
    agenda = build_agenda(DEFAULT, order_in(), state)
    assert "shipping_notice" not in reasons(agenda)
    assert timing(agenda)[:2] == [
        ("shipping_notice", utc(2025, 6, 4, 10), utc(2025, 6, 4, 10)),
        ("delivered", utc(2025, 6, 4, 12), utc(2025, 6, 4, 12)),
    ]


def test_an_unless_event_reported_before_the_trigger_makes_the_step_moot() -> None:
    # `shipped` happened first, but was reported a day after `delivered`.
    state = journey_state(
        START,
        events=happened(shipped=utc(2025, 6, 4, 10), delivered=utc(2025, 6, 4, 12)),
        reported=happened(shipped=utc(2025, 6, 5, 12), delivered=utc(2025, 6, 4, 12)),
        steps=sent(order_confirmation=START),
    )
    agenda = build_agenda(DEFAULT, order_in(), state)
    assert reasons(agenda)["shipping_notice"] == "not needed: delivered was reported first"


def test_the_unless_check_uses_the_due_time_after_the_local_rules() -> None:
    # Ordered 23:30 local: the delay notice's base is Thursday 23:30 local, its due
    # time Friday 08:00 local. A `shipped` in between still stops it.
    late = utc(2025, 6, 2, 21, 30)
    for shipped, reason in [
        (utc(2025, 6, 5, 23), "not needed: shipped happened first"),
        (utc(2025, 6, 6, 6), "not needed: shipped happened first"),  # at the due time
        (utc(2025, 6, 6, 6, 1), None),
    ]:
        state = journey_state(
            late,
            events=happened(shipped=shipped),
            steps=sent(order_confirmation=late, shipping_notice=shipped),
        )
        agenda = build_agenda(DEFAULT, order_in(), state)
        assert reasons(agenda).get("shipping_delay") == reason, shipped
        if reason is None:
            assert timing(agenda)[0] == (
                "shipping_delay",
                utc(2025, 6, 5, 21, 30),
                utc(2025, 6, 6, 6),
            )


def test_feedback_before_the_request_makes_request_and_reminder_moot() -> None:
    feedback_at = utc(2025, 6, 7, 10)
    state = delivered_state(
        events=happened(shipped=SHIPPED_AT, delivered=DELIVERED_AT, feedback=feedback_at),
        feedback=Feedback(score=10),
    )
    agenda = build_agenda(DEFAULT, order_in(), state)
    assert reasons(agenda)["feedback_request"] == "not needed: feedback happened first"


# --- cancellation ----------------------------------------------------------------------


def test_a_cancellation_keeps_what_was_owed_and_skips_everything_else() -> None:
    cancelled = START + timedelta(hours=2)
    shipped = START + timedelta(hours=1)
    state = journey_state(START, events=happened(shipped=shipped, cancelled=cancelled))
    agenda = build_agenda(DEFAULT, order_in(), state)

    assert timing(agenda) == [
        # Owed before the cancellation: the confirmation and the shipping notice.
        ("order_confirmation", START, START),
        ("shipping_notice", shipped, shipped),
        ("order_cancelled", cancelled, cancelled),
    ]
    owed = {"order_confirmation", "shipping_notice", "order_cancelled"}
    assert reasons(agenda) == {
        step.id: "order cancelled" for step in DEFAULT.steps if step.id not in owed
    }
    assert agenda.waiting_for == []


def test_a_non_transactional_step_due_before_the_cancellation_is_skipped_too() -> None:
    delivered = utc(2025, 6, 5, 8)
    cancelled = utc(2025, 6, 5, 14)  # after the thank-you's base (12:00 UTC)
    state = journey_state(
        START,
        events=happened(shipped=SHIPPED_AT, delivered=delivered, cancelled=cancelled),
        steps=sent(order_confirmation=START, shipping_notice=SHIPPED_AT),
    )
    agenda = build_agenda(DEFAULT, order_in(), state)
    assert reasons(agenda)["thank_you"] == "order cancelled"
    assert reasons(agenda)["product_education"] == "order cancelled"
    assert [send.key for send in agenda.sends] == ["delivered", "order_cancelled"]


# --- returns, unhappy feedback ---------------------------------------------------------


def test_a_whole_order_return_stops_feedback_marketing_and_relationship_messages() -> None:
    returned = utc(2025, 6, 6, 10)
    state = delivered_state(
        events=happened(shipped=SHIPPED_AT, delivered=DELIVERED_AT, return_requested=returned),
        whole_order_returned=True,
    )
    agenda = build_agenda(DEFAULT, order_in(), state)
    assert timing(agenda) == [("return_confirmation", returned, returned)]
    assert reasons(agenda) == {
        "shipping_delay": "not needed: shipped happened first",
        "thank_you": "order returned",
        "product_education": "order returned",
        "feedback_request": "order returned",
        "feedback_reminder": "order returned",
        # Event-triggered steps still waiting for their event are stopped as well.
        "passive_thanks": "order returned",
        "review_request": "order returned",
        "cross_sell": "order returned",
    }
    # Support (the detractor follow-up) and transactional steps still wait.
    assert EventType.FEEDBACK in agenda.waiting_for
    assert EventType.REFUNDED in agenda.waiting_for


def test_a_partial_return_stops_nothing_of_the_plan_steps() -> None:
    state = delivered_state(returned_skus=["SH-1"])
    agenda = build_agenda(DEFAULT, order_in(), state)
    assert [send.key for send in agenda.sends] == [
        "thank_you",
        "product_education",
        "feedback_request",
        "cross_sell",
    ]


def test_no_marketing_after_a_detractor_score() -> None:
    feedback_at = utc(2025, 6, 13, 12)
    state = delivered_state(
        events=happened(shipped=SHIPPED_AT, delivered=DELIVERED_AT, feedback=feedback_at),
        feedback=Feedback(score=3, comment="arrived broken"),
        marketing_blocked=True,
    )
    state.steps.update(
        sent(
            thank_you=utc(2025, 6, 6, 7),
            product_education=utc(2025, 6, 9, 8),
            feedback_request=utc(2025, 6, 13, 8),
        )
    )
    agenda = build_agenda(DEFAULT, order_in(), state)

    assert timing(agenda) == [("detractor_follow_up", feedback_at, feedback_at)]
    assert reasons(agenda) == {
        "shipping_delay": "not needed: shipped happened first",
        "feedback_reminder": "not needed: feedback happened first",
        "passive_thanks": "feedback score 3 outside 7-8",
        "review_request": "no marketing after unhappy feedback",
        "cross_sell": "no marketing after unhappy feedback",
    }


# --- conditions and feedback scores ----------------------------------------------------


@pytest.mark.parametrize(
    ("score", "follow_up", "others"),
    [
        (0, "detractor_follow_up", {"passive_thanks": "7-8", "review_request": "9-10"}),
        (6, "detractor_follow_up", {"passive_thanks": "7-8", "review_request": "9-10"}),
        (7, "passive_thanks", {"detractor_follow_up": "0-6", "review_request": "9-10"}),
        (8, "passive_thanks", {"detractor_follow_up": "0-6", "review_request": "9-10"}),
        (9, "review_request", {"detractor_follow_up": "0-6", "passive_thanks": "7-8"}),
        (10, "review_request", {"detractor_follow_up": "0-6", "passive_thanks": "7-8"}),
    ],
)
def test_the_feedback_score_picks_one_follow_up(
    score: int, follow_up: str, others: dict[str, str]
) -> None:
    # Saturday 14 June, 12:00 local: inside every window, outside the quiet hours.
    feedback_at = utc(2025, 6, 14, 10)
    state = delivered_state(
        events=happened(shipped=SHIPPED_AT, delivered=DELIVERED_AT, feedback=feedback_at),
        feedback=Feedback(score=score),
    )
    agenda = build_agenda(DEFAULT, order_in(), state)

    follow_ups = [send for send in agenda.sends if send.key in others or send.key == follow_up]
    assert [(send.key, send.due_at) for send in follow_ups] == [(follow_up, feedback_at)]
    skips = reasons(agenda)
    for key, scores in others.items():
        assert skips[key] == f"feedback score {score} outside {scores}"


def test_a_review_request_late_at_night_waits_for_its_window() -> None:
    feedback_at = utc(2025, 6, 14, 19)  # 21:00 local
    state = delivered_state(
        events=happened(shipped=SHIPPED_AT, delivered=DELIVERED_AT, feedback=feedback_at),
        feedback=Feedback(score=10),
    )
    review = send_of(build_agenda(DEFAULT, order_in(), state), "review_request")
    assert (review.base_at, review.due_at) == (feedback_at, utc(2025, 6, 15, 7))
    assert review.category == Category.MARKETING


@pytest.mark.parametrize(
    ("conditions", "matches"),
    [
        (Conditions(segment=Segment.FIRST_TIME), True),
        (Conditions(segment=Segment.REPEAT), False),
        # The order's total is 3900 x 2 + 1250 + 495 = 9545.
        (Conditions(min_order_value_minor=9545), True),
        (Conditions(min_order_value_minor=9546), False),
        (Conditions(max_order_value_minor=9545), True),
        (Conditions(max_order_value_minor=9544), False),
        (Conditions(categories=("home", "garden")), True),
        (Conditions(categories=("coffee",)), False),
        (Conditions(countries=("de", "AT")), True),
        (Conditions(countries=("FR",)), False),
        (Conditions(segment=Segment.FIRST_TIME, countries=("FR",)), False),
    ],
)
def test_order_conditions_decide_whether_a_step_runs(conditions: Conditions, matches: bool) -> None:
    plan = plan_of(step("welcome", AT_START, when=conditions))
    agenda = build_agenda(plan, order_in(), journey_state(START))
    if matches:
        assert timing(agenda) == [("welcome", START, START)]
        assert agenda.skips == []
    else:
        assert agenda.sends == []
        assert reasons(agenda) == {"welcome": "conditions not met"}


def test_a_repeat_buyer_is_not_a_first_time_buyer() -> None:
    plan = plan_of(
        step("first", AT_START, when=Conditions(segment=Segment.FIRST_TIME)),
        step("again", AT_START, when=Conditions(segment=Segment.REPEAT)),
    )
    order = order_in()
    repeat = dataclasses.replace(
        order, customer=dataclasses.replace(order.customer, previous_orders=4)
    )
    agenda = build_agenda(plan, repeat, journey_state(START))
    assert [send.key for send in agenda.sends] == ["again"]
    assert reasons(agenda) == {"first": "conditions not met"}


# --- staleness -------------------------------------------------------------------------


def test_a_message_that_could_only_go_out_too_late_is_dropped() -> None:
    window = TimeWindow("09:00", "10:00")
    plan = plan_of(
        step("stale", AT_START, Category.MARKETING, window=window, stale_after=timedelta(hours=6)),
        step("fresh", AT_START, Category.MARKETING, window=window, stale_after=timedelta(hours=22)),
        step("late", AT_START, Category.MARKETING, window=window),
        step(
            "owed",
            AT_START,
            Category.TRANSACTIONAL,
            window=window,
            stale_after=timedelta(hours=1),
        ),
    )
    # 11:00 local: the window opens again at 09:00 local tomorrow, 22 hours later.
    eleven = utc(2025, 6, 2, 9)
    agenda = build_agenda(plan, order_in(), journey_state(eleven))
    tomorrow_nine = utc(2025, 6, 3, 7)
    assert reasons(agenda) == {"stale": "stale: it could only go out 22 hours late"}
    # Exactly stale_after late is not stale; no stale_after, or transactional: sent late.
    assert timing(agenda) == [
        ("fresh", eleven, tomorrow_nine),
        ("late", eleven, tomorrow_nine),
        ("owed", eleven, tomorrow_nine),
    ]


# --- replenishment ---------------------------------------------------------------------


def replenishment_state(**fields: object) -> JourneyState:
    base: dict[str, object] = {
        "events": happened(shipped=SHIPPED_AT, delivered=DELIVERED_AT),
        "reported": happened(shipped=SHIPPED_AT, delivered=DELIVERED_AT),
        "steps": sent(
            order_confirmation=START,
            shipping_notice=SHIPPED_AT,
            delivered=DELIVERED_AT,
            thank_you=utc(2025, 6, 6, 7),
            product_education=utc(2025, 6, 9, 8),
            feedback_request=utc(2025, 6, 13, 8),
            feedback_reminder=utc(2025, 6, 16, 8),
        ),
    }
    base.update(fields)
    return journey_state(START, **base)


def test_the_first_reminder_comes_lead_time_before_the_run_out() -> None:
    agenda = build_agenda(CONSUMABLES, coffee_order(), replenishment_state())

    reminder = send_of(agenda, REPLENISH)
    # 14 days x 2 bags after delivery: Thursday 3 July 17:00 local.
    assert reminder.run_out_at == DELIVERED_AT + timedelta(days=28)
    # P5D before: Saturday 28 June 17:00 local; at 10:00 local: Sunday 29 June.
    assert reminder.base_at == utc(2025, 6, 28, 15)
    assert reminder.due_at == utc(2025, 6, 29, 8)
    assert reminder.iteration == 1
    assert reminder.step_id == REPLENISH
    assert reminder.step is None
    assert reminder.focus_sku == "COF-ETH-500"
    assert reminder.template == "replenishment_reminder"
    assert reminder.category == Category.MARKETING
    assert reminder.channels == (Channel.EMAIL, Channel.SMS)
    # After every plan step.
    assert reminder.position == len(CONSUMABLES.steps)
    assert EventType.REORDERED in agenda.waiting_for


def test_later_reminders_come_a_cycle_apart() -> None:
    for done, run_out_days in [(1, 56), (2, 84), (5, 168)]:
        state = replenishment_state(reminders_sent={"COF-ETH-500": done})
        reminder = send_of(build_agenda(CONSUMABLES, coffee_order(), state), REPLENISH)
        assert reminder.iteration == done + 1
        assert reminder.run_out_at == DELIVERED_AT + timedelta(days=run_out_days)
        assert reminder.base_at == DELIVERED_AT + timedelta(days=run_out_days - 5)


def test_the_series_ends_after_max_reminders() -> None:
    state = replenishment_state(reminders_sent={"COF-ETH-500": 6})
    agenda = build_agenda(CONSUMABLES, coffee_order(), state)
    assert agenda.sends == []
    assert reasons(agenda) == {
        "shipping_delay": "not needed: shipped happened first",
        REPLENISH: "all 6 reminders sent",
    }
    assert EventType.REORDERED not in agenda.waiting_for


def test_quantities_of_one_sku_add_up_and_each_consumable_has_its_series() -> None:
    tea = LineItem(
        sku="TEA-1", name="Green tea", category="tea", quantity=1,
        unit_price_minor=900, consumption_days=30,
    )  # fmt: skip
    more_coffee = dataclasses.replace(COFFEE, quantity=1, unit_price_minor=1400)
    shirt = LineItem(sku="SH-1", name="Shirt", quantity=1, unit_price_minor=3900)
    order = coffee_order(COFFEE, tea, more_coffee, shirt)
    agenda = build_agenda(CONSUMABLES, order, replenishment_state())

    # Soonest first: the tea runs out first; the shirt is no consumable.
    assert [(send.key, send.run_out_at, send.base_at) for send in agenda.sends] == [
        (
            "replenishment:TEA-1",
            DELIVERED_AT + timedelta(days=30),
            DELIVERED_AT + timedelta(days=25),
        ),
        # 14 days x (2 + 1) bags.
        (REPLENISH, DELIVERED_AT + timedelta(days=42), DELIVERED_AT + timedelta(days=37)),
    ]


def test_a_lead_time_longer_than_the_cycle_reminds_right_after_delivery() -> None:
    espresso = dataclasses.replace(COFFEE, sku="ESP-1", quantity=1, consumption_days=3)
    agenda = build_agenda(CONSUMABLES, coffee_order(espresso), replenishment_state())
    reminder = send_of(agenda, "replenishment:ESP-1")
    assert reminder.run_out_at == DELIVERED_AT + timedelta(days=3)
    assert reminder.base_at == DELIVERED_AT
    # 17:00 local: the next 10:00 local is Friday's.
    assert reminder.due_at == utc(2025, 6, 6, 8)


def test_reminders_wait_for_delivery() -> None:
    state = journey_state(START, steps=sent(order_confirmation=START))
    agenda = build_agenda(CONSUMABLES, coffee_order(), state)
    assert [send.key for send in agenda.sends] == ["shipping_delay"]
    assert EventType.DELIVERED in agenda.waiting_for
    assert EventType.REORDERED not in agenda.waiting_for


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"reordered_skus": ["COF-ETH-500"]}, "reordered"),
        ({"returned_skus": ["COF-ETH-500"]}, "returned"),
        ({"whole_order_returned": True}, "returned"),
        ({"marketing_blocked": True}, "no marketing after unhappy feedback"),
        (
            {"events": happened(delivered=DELIVERED_AT, cancelled=utc(2025, 6, 6))},
            "order cancelled",
        ),
    ],
)
def test_what_stops_a_replenishment_series(fields: dict[str, object], reason: str) -> None:
    agenda = build_agenda(CONSUMABLES, coffee_order(), replenishment_state(**fields))
    assert REPLENISH not in [send.key for send in agenda.sends]
    assert reasons(agenda)[REPLENISH] == reason
    (skip,) = [skip for skip in agenda.skips if skip.key == REPLENISH]
    assert skip.ends_series


def test_another_skus_reorder_or_return_leaves_the_series_alone() -> None:
    state = replenishment_state(reordered_skus=["TEA-1"], returned_skus=["SH-1"])
    agenda = build_agenda(CONSUMABLES, coffee_order(), state)
    assert send_of(agenda, REPLENISH).due_at == utc(2025, 6, 29, 8)


def test_a_series_already_recorded_is_left_out() -> None:
    state = replenishment_state()
    state.steps[REPLENISH] = StepRecord(StepOutcome.SKIPPED, utc(2025, 6, 20), "reordered")
    agenda = build_agenda(CONSUMABLES, coffee_order(), state)
    assert REPLENISH not in [send.key for send in agenda.sends]
    assert REPLENISH not in reasons(agenda)


def test_a_plan_without_replenishment_ignores_consumables() -> None:
    agenda = build_agenda(DEFAULT, coffee_order(), replenishment_state())
    assert [send.key for send in agenda.sends] == ["cross_sell"]


# --- order of the agenda ---------------------------------------------------------------


def test_sends_are_sorted_by_due_time_then_by_plan_position() -> None:
    plan = plan_of(
        step("z_later", Trigger(on=TriggerKind.START, delay=timedelta(hours=2))),
        step("z_sooner", Trigger(on=TriggerKind.START, delay=timedelta(hours=1))),
        # Due with z_sooner; later in the plan, though its id sorts first.
        step("a_same_time", Trigger(on=TriggerKind.START, delay=timedelta(hours=1))),
        step("a_now", AT_START),
    )
    agenda = build_agenda(plan, order_in(), journey_state(START))
    assert [(send.key, send.position, send.due_at) for send in agenda.sends] == [
        ("a_now", 3, START),
        ("z_sooner", 1, START + timedelta(hours=1)),
        ("a_same_time", 2, START + timedelta(hours=1)),
        ("z_later", 0, START + timedelta(hours=2)),
    ]


def test_plan_steps_and_reminders_due_at_one_instant_go_in_plan_order() -> None:
    plan = plan_of(
        step("tips", Trigger(on=TriggerKind.EVENT, event=EventType.DELIVERED), at="10:00"),
        replenishment=Replenishment(
            template="replenishment_reminder", lead_time=timedelta(days=100), at="10:00"
        ),
    )
    state = journey_state(START, events=happened(delivered=DELIVERED_AT))
    agenda = build_agenda(plan, coffee_order(), state)
    friday_ten = utc(2025, 6, 6, 8)
    assert [(send.key, send.due_at) for send in agenda.sends] == [
        ("tips", friday_ten),
        (REPLENISH, friday_ten),
    ]


def test_due_and_next_due_read_the_agenda_at_a_moment() -> None:
    agenda = build_agenda(DEFAULT, order_in(), delivered_state())
    assert [send.key for send in agenda.due(utc(2025, 6, 9, 8))] == [
        "thank_you",
        "product_education",
    ]
    assert agenda.next_due(utc(2025, 6, 9, 8)) == utc(2025, 6, 13, 8)
    assert agenda.next_due(utc(2025, 6, 27, 9)) is None


def test_deferrals_move_a_send_later_never_earlier() -> None:
    agenda = build_agenda(DEFAULT, order_in(), delivered_state())
    moved = with_deferrals(
        agenda,
        {"thank_you": utc(2025, 6, 20, 8), "product_education": utc(2025, 6, 1)},
    )
    assert [(send.key, send.due_at) for send in moved.sends] == [
        ("product_education", utc(2025, 6, 9, 8)),
        ("feedback_request", utc(2025, 6, 13, 8)),
        ("thank_you", utc(2025, 6, 20, 8)),
        ("cross_sell", utc(2025, 6, 27, 9)),
    ]
    assert with_deferrals(agenda, {}) is agenda
