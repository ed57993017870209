"""The frequency cap's window arithmetic (pure): what fits, when the next one fits,
local rules on the way, priorities by category, and deferrals in the agenda."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from workflows.frequency import (
    DEFAULT_PRIORITY,
    caps_for,
    describe,
    earliest_fit,
    fits,
    local_rules,
    next_slot,
    priority_of,
)
from workflows.plans.catalogue import DEFAULT_PLAN_FOLDER, PlanError, load_catalogue, load_plan
from workflows.plans.model import Category, FrequencyCap, TimeWindow
from workflows.scheduler import Agenda, PlannedSend, with_deferrals

DAY = timedelta(days=1)
T0 = datetime(2027, 5, 3, 9, 0, tzinfo=UTC)  # a Monday, 11:00 in Berlin
DEFAULT_CAPS = (FrequencyCap(max=1, days=3), FrequencyCap(max=3, days=30))
BERLIN = "Europe/Berlin"
QUIET = TimeWindow(start="21:00", end="08:00")


def no_rules(moment: datetime) -> datetime:
    return moment


def test_an_empty_history_always_fits() -> None:
    assert fits([], T0, DEFAULT_CAPS)
    assert earliest_fit([], T0, DEFAULT_CAPS) == T0


def test_one_per_three_days_counts_a_full_span_to_the_second() -> None:
    taken = [T0]
    assert not fits(taken, T0, DEFAULT_CAPS)  # the same second
    assert not fits(taken, T0 + 3 * DAY - timedelta(seconds=1), DEFAULT_CAPS)
    assert fits(taken, T0 + 3 * DAY, DEFAULT_CAPS)  # exactly three days later
    # Earlier messages are bounded the same way: three days before it, not less.
    assert not fits(taken, T0 - 2 * DAY, DEFAULT_CAPS)
    assert fits(taken, T0 - 3 * DAY, DEFAULT_CAPS)
    assert earliest_fit(taken, T0 + timedelta(seconds=2), DEFAULT_CAPS) == T0 + 3 * DAY


def test_three_per_thirty_days_holds_across_the_whole_span() -> None:
    taken = [T0, T0 + 3 * DAY, T0 + 6 * DAY]
    # Three days after the third, the 1-per-3 cap is fine but the month is full
    # until the first leaves its 30 days.
    assert not fits(taken, T0 + 9 * DAY, DEFAULT_CAPS)
    assert earliest_fit(taken, T0 + 9 * DAY, DEFAULT_CAPS) == T0 + 30 * DAY
    assert fits(taken, T0 + 30 * DAY, DEFAULT_CAPS)


def test_a_message_cannot_squeeze_between_later_ones() -> None:
    # Slots already taken (or held) after the asking instant count as well: with
    # holds at +4 d and +8 d, nothing fits in between under 1 per 3 days.
    taken = [T0 + 4 * DAY, T0 + 8 * DAY]
    caps = (FrequencyCap(max=1, days=3),)
    assert fits(taken, T0 + DAY, caps)
    assert not fits(taken, T0 + 2 * DAY, caps)
    assert not fits(taken, T0 + 6 * DAY, caps)
    assert earliest_fit(taken, T0 + 2 * DAY, caps) == T0 + 11 * DAY


def test_two_per_window_finds_the_fullest_stretch() -> None:
    caps = (FrequencyCap(max=2, days=7),)
    taken = [T0, T0 + 5 * DAY]
    assert fits([T0], T0 + DAY, caps)
    # At +6 d, [T0, +7 d) already holds two: full until T0 leaves at +7 d.
    assert not fits(taken, T0 + 6 * DAY, caps)
    assert earliest_fit(taken, T0 + 6 * DAY, caps) == T0 + 7 * DAY
    # But +11 d shares a stretch only with +5 d.
    assert fits(taken, T0 + 11 * DAY, caps)


def test_the_answer_is_the_earliest_instant_that_fits() -> None:
    caps = (FrequencyCap(max=2, days=4), FrequencyCap(max=3, days=10))
    taken = [T0, T0 + DAY, T0 + 5 * DAY, T0 + 6 * DAY - timedelta(hours=1)]
    start = T0 + 2 * DAY
    found = earliest_fit(taken, start, caps)
    assert fits(taken, found, caps)
    # Nothing earlier fits, checked every hour.
    moment = start
    while moment < found:
        assert not fits(taken, moment, caps), moment
        moment += timedelta(hours=1)


def test_next_slot_goes_to_the_whole_minute_after_the_window_frees() -> None:
    sent = T0 + timedelta(seconds=7, microseconds=5)
    slot = next_slot([sent], sent + timedelta(seconds=3), DEFAULT_CAPS, no_rules)
    assert slot == T0 + 3 * DAY + timedelta(minutes=1)
    assert (slot.second, slot.microsecond) == (0, 0)


def test_next_slot_respects_quiet_hours_in_the_customers_zone() -> None:
    # Sent at 22:00 UTC, midnight in Berlin (CEST, UTC+2): the window frees three
    # days later at midnight local, inside quiet hours, so the slot is 08:00 local.
    sent = datetime(2027, 5, 3, 22, 0, tzinfo=UTC)

    def rules(moment: datetime) -> datetime:
        return local_rules(moment, BERLIN, None, QUIET)

    slot = next_slot([sent], sent + timedelta(seconds=1), DEFAULT_CAPS, rules)
    assert slot == datetime(2027, 5, 7, 6, 0, tzinfo=UTC)  # 08:00 CEST


def test_next_slot_respects_the_steps_window() -> None:
    window = TimeWindow(start="09:00", end="20:00")
    sent = datetime(2027, 5, 3, 19, 30, tzinfo=UTC)  # 21:30 local

    def rules(moment: datetime) -> datetime:
        return local_rules(moment, BERLIN, window, QUIET)

    assert next_slot([sent], sent, DEFAULT_CAPS, rules) == datetime(2027, 5, 7, 7, 0, tzinfo=UTC)


def test_next_slot_keeps_looking_when_local_rules_move_it_into_a_full_stretch() -> None:
    # 1 per day. Sent at midnight local (May 4); a hold waits for 07:00 local on May 6.
    # The window frees at midnight on May 5 (31 h before the hold: fine), but quiet
    # hours move that to 08:00, 23 h before the hold: full. The next room is a day
    # after the hold, 07:00 on May 7, which quiet hours move to 08:00.
    sent = datetime(2027, 5, 3, 22, 0, tzinfo=UTC)
    held = datetime(2027, 5, 6, 5, 0, tzinfo=UTC)
    caps = (FrequencyCap(max=1, days=1),)

    def rules(moment: datetime) -> datetime:
        return local_rules(moment, BERLIN, None, QUIET)

    assert fits([sent, held], sent + DAY, caps)
    assert not fits([sent, held], rules(sent + DAY), caps)
    slot = next_slot([sent, held], sent + timedelta(seconds=1), caps, rules)
    assert slot == datetime(2027, 5, 7, 6, 0, tzinfo=UTC)


def test_local_rules_leave_an_allowed_moment_alone() -> None:
    assert local_rules(T0, BERLIN, None, QUIET) == T0
    assert local_rules(T0, BERLIN, TimeWindow(start="09:00", end="20:00"), None) == T0


def test_caps_by_category_and_never_for_transactional_or_support() -> None:
    plan = load_catalogue()["default"].plan
    assert caps_for(plan, Category.MARKETING) == DEFAULT_CAPS
    assert caps_for(plan, Category.RELATIONSHIP) == ()
    assert caps_for(plan, Category.TRANSACTIONAL) == ()
    assert caps_for(plan, Category.SUPPORT) == ()


def test_priority_defaults_by_category_and_a_plan_value_wins() -> None:
    assert priority_of(Category.MARKETING, None) == DEFAULT_PRIORITY[Category.MARKETING]
    assert priority_of(Category.MARKETING, 70) == 70
    assert priority_of(Category.MARKETING, 0) == 0
    order = [Category.MARKETING, Category.RELATIONSHIP, Category.FEEDBACK, Category.SUPPORT]
    assert [DEFAULT_PRIORITY[c] for c in order] == sorted(DEFAULT_PRIORITY[c] for c in order)


def test_describe_names_every_cap() -> None:
    assert describe("marketing", DEFAULT_CAPS) == (
        "at most 1 marketing message per 3 days and 3 per 30 days"
    )
    assert describe("feedback", (FrequencyCap(max=2, days=1),)) == (
        "at most 2 feedback messages per day"
    )


def planned(key: str, due: datetime, position: int) -> PlannedSend:
    return PlannedSend(
        key=key,
        step_id=key,
        template=key,
        category=Category.MARKETING,
        channels=(),
        iteration=0,
        base_at=due,
        due_at=due,
        position=position,
    )


def test_deferrals_move_sends_later_and_keep_the_agenda_sorted() -> None:
    agenda = Agenda(sends=[planned("a", T0, 1), planned("b", T0 + DAY, 2)])
    moved = with_deferrals(agenda, {"a": T0 + 2 * DAY})
    assert [(send.key, send.due_at) for send in moved.sends] == [
        ("b", T0 + DAY),
        ("a", T0 + 2 * DAY),
    ]
    # A deferral never brings a send forward, and none leaves the agenda as it was.
    assert with_deferrals(agenda, {"b": T0}).sends == agenda.sends
    assert with_deferrals(agenda, {}) is agenda


@pytest.mark.parametrize(
    ("caps", "ok"),
    [((FrequencyCap(max=1, days=1),), False), ((FrequencyCap(max=2, days=1),), True)],
)
def test_same_instant_twice(caps: tuple[FrequencyCap, ...], ok: bool) -> None:
    assert fits([T0], T0, caps) is ok


SHIPPED_CAPS = "frequency_caps:\n  marketing: [{max: 1, days: 3}, {max: 3, days: 30}]\n"


def plan_file(tmp_path: Path, extra: str, *, replace: tuple[str, str] = ("", "")) -> Path:
    """The shipped default plan with ``extra`` caps instead of its own."""
    text = (DEFAULT_PLAN_FOLDER / "default.yaml").read_text()
    assert SHIPPED_CAPS in text
    text = text.replace(SHIPPED_CAPS, "")
    if replace[0]:
        assert replace[0] in text
        text = text.replace(*replace)
    path = tmp_path / "capped.yaml"
    path.write_text(text + extra)
    return path


def test_a_plan_sets_its_own_caps_and_priorities(tmp_path: Path) -> None:
    path = plan_file(
        tmp_path,
        "frequency_caps:\n  marketing: [{max: 2, days: 7}]\n  feedback: [{max: 1, days: 1}]\n",
        replace=("    template: cross_sell\n", "    template: cross_sell\n    priority: 70\n"),
    )
    plan = load_plan(path).plan
    assert caps_for(plan, Category.MARKETING) == (FrequencyCap(max=2, days=7),)
    assert caps_for(plan, Category.FEEDBACK) == (FrequencyCap(max=1, days=1),)
    assert plan.step("cross_sell").priority == 70
    assert plan.step("review_request").priority is None
    # Without the key a plan has the default caps; an empty mapping turns them off.
    assert load_plan(plan_file(tmp_path, "")).plan.frequency_caps == {"marketing": DEFAULT_CAPS}
    assert load_plan(plan_file(tmp_path, "frequency_caps: {}\n")).plan.frequency_caps == {}


@pytest.mark.parametrize(
    ("extra", "replace", "path", "message"),
    [
        (
            "frequency_caps: {transactional: [{max: 1, days: 3}]}\n",
            ("", ""),
            "frequency_caps.transactional.[key]",
            "'relationship', 'feedback' or 'marketing'",
        ),
        (
            "frequency_caps: {marketing: [{max: 0, days: 3}]}\n",
            ("", ""),
            "frequency_caps.marketing[0].max",
            "greater than or equal to 1",
        ),
        (
            "frequency_caps: {marketing: [{max: 1, days: 400}]}\n",
            ("", ""),
            "frequency_caps.marketing[0].days",
            "less than or equal to 365",
        ),
        (
            "frequency_caps: {marketing: [{max: 1, days: 3, weeks: 1}]}\n",
            ("", ""),
            "frequency_caps.marketing[0].weeks",
            "unknown key",
        ),
        (
            "",
            ("    template: cross_sell\n", "    template: cross_sell\n    priority: 101\n"),
            "steps[16].priority",
            "less than or equal to 100",
        ),
    ],
)
def test_bad_caps_and_priorities_name_the_field(
    tmp_path: Path, extra: str, replace: tuple[str, str], path: str, message: str
) -> None:
    with pytest.raises(PlanError) as caught:
        load_plan(plan_file(tmp_path, extra, replace=replace))
    assert caught.value.path == path
    assert message in str(caught.value)
