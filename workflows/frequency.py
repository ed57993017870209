"""The frequency cap's arithmetic: how many messages of a category one customer may
get, across all their journeys, and when the next one fits.

Pure and deterministic (no clock, no I/O): the send activity runs it inside the
database transaction that records the send (``engine.messaging.frequency_caps``),
and the journey uses the same definitions to ask for it.

**A cap** ``FrequencyCap(max=m, days=d)`` holds when no stretch of ``d`` x 24 hours
contains more than ``m`` of the customer's messages of that category: two messages
``d`` days apart, to the second, both count in no common stretch. Every cap of a
category must hold ("1 per 3 days and 3 per 30 days").

**Priority** (0-100, higher wins; by default from the category, see
:data:`DEFAULT_PRIORITY`) only orders messages that are *waiting* for room:

* nothing already sent or reserved is ever displaced, whatever its priority;
* a message that does not fit waits for the earliest instant it does (its *hold*);
  holds of a higher priority, or of the same priority and older, count as taken at
  their instant, so a message can neither take the slot such a hold waits for nor
  jump ahead of it when both wake at once;
* holds of a lower priority are ignored: their messages find the slot taken when
  they wake and wait again (or are dropped as stale).

Priority does not keep room free for messages that are not yet due: the first to
ask gets the slot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from workflows.plans.model import (
    ALWAYS_ALLOWED_CATEGORIES,
    Category,
    FrequencyCap,
    Plan,
    TimeWindow,
)
from workflows.timing import defer_out_of, next_open

# A step's priority when the plan gives none. Only messages of one category compete
# for its cap, so these matter for plans that cap more than marketing.
DEFAULT_PRIORITY: Mapping[Category, int] = {
    Category.TRANSACTIONAL: 100,
    Category.SUPPORT: 90,
    Category.FEEDBACK: 60,
    Category.RELATIONSHIP: 50,
    Category.MARKETING: 20,
}

# Deferred sends go to the next whole minute: the send that filled the window was
# recorded a few moments after its own slot, and a wake-up to the second would
# only find the window still full.
_MINUTE = timedelta(minutes=1)
_SECOND = timedelta(seconds=1)
# next_slot alternates between the caps and the local-time rules, each only ever
# moving later; they settle in a few rounds, this bounds a bug, not real input.
_MAX_ROUNDS = 1000


@dataclass(frozen=True)
class CapCheck:
    """What the send activity needs to hold one message to the customer's caps."""

    caps: tuple[FrequencyCap, ...]
    priority: int
    timezone: str  # the customer's: a deferred message respects their local rules
    quiet_hours: TimeWindow | None = None
    window: TimeWindow | None = None  # the step's daily window, if any
    # The message is stale after this instant (the scheduler's stale rule): rather
    # than wait past it, it is dropped and recorded. None: it can wait indefinitely.
    stale_at: datetime | None = None


def caps_for(plan: Plan, category: Category) -> tuple[FrequencyCap, ...]:
    """The plan's caps for ``category``; none for categories never capped."""
    if category in ALWAYS_ALLOWED_CATEGORIES:
        return ()
    for name, caps in plan.frequency_caps.items():
        if name == category.value:
            return caps
    return ()


def priority_of(category: Category, explicit: int | None) -> int:
    return explicit if explicit is not None else DEFAULT_PRIORITY[category]


def fits(taken: Sequence[datetime], at: datetime, caps: Sequence[FrequencyCap]) -> bool:
    """Whether one more message at ``at`` keeps every cap, given the ``taken`` instants
    (sent, reserved, or held by messages that outrank it; before or after ``at``)."""
    return all(_fits_one(taken, at, cap) for cap in caps)


def _fits_one(taken: Sequence[datetime], at: datetime, cap: FrequencyCap) -> bool:
    span = timedelta(days=cap.days)
    near = sorted(moment for moment in taken if at - span < moment < at + span)
    if len(near) < cap.max:
        return True  # even all of them in one stretch with ``at`` leave room
    # The stretches [start, start + span) holding ``at`` start in (at - span, at]; the
    # fullest of them starts at ``at`` itself or at one of the earlier instants.
    starts = [at, *(moment for moment in near if moment <= at)]
    return all(
        sum(1 for moment in near if start <= moment < start + span) < cap.max for start in starts
    )


def earliest_fit(
    taken: Sequence[datetime], not_before: datetime, caps: Sequence[FrequencyCap]
) -> datetime:
    """The first instant at or after ``not_before`` at which one more message fits.

    Moving later, a message only gains room when an earlier one leaves its stretch
    (at that one's instant + the cap's days); between those points it can only lose
    room to later ones. So the answer is ``not_before`` or one of those points, and
    one always fits: the last of them is a full span past every instant.
    """
    candidates = sorted(
        {
            moment + timedelta(days=cap.days)
            for moment in taken
            for cap in caps
            if moment + timedelta(days=cap.days) > not_before
        }
    )
    for candidate in [not_before, *candidates]:
        if fits(taken, candidate, caps):
            return candidate
    raise AssertionError("unreachable: the last candidate is past every cap")  # pragma: no cover


def local_rules(
    moment: datetime, tz: str, window: TimeWindow | None, quiet_hours: TimeWindow | None
) -> datetime:
    """``moment`` moved into the step's daily window and out of quiet hours (as the
    scheduler moves due times; an explicit time of day is not reapplied)."""
    due = moment
    for _ in range(4):  # a window and quiet hours may push each other, only later
        before = due
        if window is not None:
            due = next_open(due, window.start, window.end, tz)
        if quiet_hours is not None:
            due = defer_out_of(due, quiet_hours.start, quiet_hours.end, tz)
        if due == before:
            break
    return due


def next_slot(
    taken: Sequence[datetime],
    after: datetime,
    caps: Sequence[FrequencyCap],
    settle: Callable[[datetime], datetime],
) -> datetime:
    """The earliest instant, on a whole minute, after ``after`` (at which one more
    message does not fit) that both fits the caps and is allowed by ``settle`` (the
    customer's local rules, see local_rules)."""
    moment = after
    for _ in range(_MAX_ROUNDS):
        # Past ``after`` whatever the caller says about it: a slot is never "now".
        fit = earliest_fit(taken, max(moment, after + _SECOND), caps)
        candidate = settle(_ceil_minute(fit))
        if fits(taken, candidate, caps):
            return candidate
        moment = candidate  # the local rules moved it where it no longer fits: go on
    raise RuntimeError(f"no slot found after {after.isoformat()}")  # pragma: no cover


def describe(category: str, caps: Sequence[FrequencyCap]) -> str:
    """``"at most 1 marketing message per 3 days and 3 per 30 days"``."""
    parts = [
        f"{cap.max} {category} message{'s' if cap.max != 1 else ''} per {_days(cap.days)}"
        if i == 0
        else f"{cap.max} per {_days(cap.days)}"
        for i, cap in enumerate(caps)
    ]
    return "at most " + " and ".join(parts)


def _ceil_minute(moment: datetime) -> datetime:
    floor = moment.replace(second=0, microsecond=0)
    return floor if floor == moment else floor + _MINUTE


def _days(days: int) -> str:
    return "day" if days == 1 else f"{days} days"
