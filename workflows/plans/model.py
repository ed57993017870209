"""Journey plans: which steps a journey runs, when, on which channels.

A plan is data (YAML under ``workflows/plans/``), validated by pydantic into these
frozen dataclasses when loaded, then carried *inside* the journey's state so a
sleeping journey keeps the plan it started with when the files change.

Times are written as ISO 8601 durations (``P3D``, ``PT2H``) and local times of
day as ``"HH:MM"`` in the customer's time zone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from workflows.vocabulary import Channel, EventType

# Unknown keys in a plan file are mistakes (a typo silently ignored would change
# a journey), so every plan dataclass forbids them.
_STRICT = ConfigDict(extra="forbid")


class Category(StrEnum):
    """What a message is for; decides consent, quiet hours and what a return stops."""

    TRANSACTIONAL = "transactional"
    RELATIONSHIP = "relationship"
    FEEDBACK = "feedback"
    SUPPORT = "support"
    MARKETING = "marketing"


# Messages that answer the order or the customer: they need no consent, and no
# frequency cap counts them or holds them back.
ALWAYS_ALLOWED_CATEGORIES = frozenset({Category.TRANSACTIONAL, Category.SUPPORT})


class Segment(StrEnum):
    FIRST_TIME = "first_time"
    REPEAT = "repeat"


class TriggerKind(StrEnum):
    START = "start"  # the journey started
    EVENT = "event"  # an order event arrived
    STEP = "step"  # another step was sent


class Hook(StrEnum):
    SUPPORT_TICKET = "support_ticket"  # tell the support desk (webhook)


@dataclass(frozen=True)
class TimeWindow:
    """A daily window in local time, ``start`` inclusive, ``end`` exclusive;
    ``start`` after ``end`` wraps midnight (21:00-08:00)."""

    __pydantic_config__ = _STRICT
    start: str
    end: str


# A message's priority under the frequency cap (see workflows.frequency): 0-100,
# higher wins; None takes its category's default.
Priority = Annotated[int, Field(ge=0, le=100)]


@dataclass(frozen=True)
class FrequencyCap:
    """At most ``max`` messages of one category to one customer, across all their
    journeys, in any stretch of ``days`` x 24 hours."""

    __pydantic_config__ = _STRICT
    max: Annotated[int, Field(ge=1)]
    days: Annotated[int, Field(ge=1, le=365)]


# Transactional and support messages answer the order or the customer: never capped,
# so a plan cannot name them here.
CappedCategory = Literal["relationship", "feedback", "marketing"]


def _default_frequency_caps() -> dict[CappedCategory, tuple[FrequencyCap, ...]]:
    return {"marketing": (FrequencyCap(max=1, days=3), FrequencyCap(max=3, days=30))}


@dataclass(frozen=True)
class Conditions:
    """All given conditions must hold; an empty Conditions always holds."""

    __pydantic_config__ = _STRICT
    segment: Segment | None = None
    min_order_value_minor: int | None = None
    max_order_value_minor: int | None = None
    # At least one item in one of these product categories.
    categories: tuple[str, ...] = ()
    # ISO 3166 country codes of the shipping address.
    countries: tuple[str, ...] = ()
    # For steps triggered by a feedback event: the score range, inclusive.
    min_score: int | None = None
    max_score: int | None = None


@dataclass(frozen=True)
class Trigger:
    __pydantic_config__ = _STRICT
    on: TriggerKind
    event: EventType | None = None  # for on=event
    step: str | None = None  # for on=step
    delay: timedelta = timedelta(0)


# The arm every experiment compares against; the holdout gets no message at all.
CONTROL_VARIANT = "control"
HOLDOUT_VARIANT = "holdout"


@dataclass(frozen=True)
class Variant:
    """One arm of a step's experiment: what it changes of the step (nothing given:
    the step as written), and its share (``weight``, relative to the other arms)."""

    __pydantic_config__ = _STRICT
    name: str
    weight: float = 1.0
    template: str | None = None
    # The email's subject line as written here, instead of the template's: one text
    # for every language, or one per locale ({en: "...", de: "..."}; a language
    # without one keeps the template's subject).
    subject: str | dict[str, str] | None = None
    channels: tuple[Channel, ...] | None = None


@dataclass(frozen=True)
class Experiment:
    """An A/B test on one step (see workflows.experiments): each customer is
    assigned one arm for good, by a hash of their id and the experiment's id.
    ``holdout`` is the share of customers (0 to 0.5) who get no message; the rest
    are split among ``variants`` by weight. One variant is named "control"."""

    __pydantic_config__ = _STRICT
    id: str
    variants: tuple[Variant, ...]
    holdout: float = 0.0

    def variant(self, name: str) -> Variant | None:
        return next((v for v in self.variants if v.name == name), None)


@dataclass(frozen=True)
class Step:
    __pydantic_config__ = _STRICT
    id: str
    trigger: Trigger
    template: str
    category: Category
    channels: tuple[Channel, ...] = (Channel.EMAIL,)
    # Send at this local time of day, on or after the trigger's due time.
    at: str | None = None
    # Only send inside this local window (moved to the next opening otherwise).
    window: TimeWindow | None = None
    when: Conditions = field(default_factory=Conditions)
    # Not needed any more once one of these events has happened (e.g. no shipping
    # delay notice once `shipped` arrived; no feedback reminder after feedback).
    unless: tuple[EventType, ...] = ()
    hook: Hook | None = None
    # Deferred past this age (quiet hours, caps), a non-transactional message is
    # stale: it is dropped and recorded instead of sent late.
    stale_after: timedelta | None = None
    # Who gets a slot first when the frequency cap is contended; None: by category.
    priority: Priority | None = None
    # An A/B test of this step's message (None: every customer gets the step as written).
    experiment: Experiment | None = None


@dataclass(frozen=True)
class Replenishment:
    """Reminders to reorder consumables before they run out, one series per SKU.

    Run-out is delivery + ``consumption_days`` x quantity; a reminder goes out
    ``lead_time`` before each run-out, every cycle, until a ``reordered`` event
    (or a newer journey of the same customer with the same SKU) stops it.
    """

    __pydantic_config__ = _STRICT
    template: str
    channels: tuple[Channel, ...] = (Channel.EMAIL,)
    lead_time: timedelta = timedelta(days=3)
    at: str = "10:00"
    max_reminders: int = 6
    category: Category = Category.MARKETING
    priority: Priority | None = None  # under the frequency cap; None: by category


@dataclass(frozen=True)
class Attribution:
    """Which purchase counts as a message's conversion (engine.insights.attribution):
    the customer's next order within ``click_window`` after clicking the message,
    else within ``delivery_window`` after it was delivered."""

    __pydantic_config__ = _STRICT
    click_window: timedelta = timedelta(days=7)
    delivery_window: timedelta = timedelta(days=1)


@dataclass(frozen=True)
class Plan:
    __pydantic_config__ = _STRICT
    id: str
    version: int
    description: str
    steps: tuple[Step, ...]
    # Chosen when these hold; among matching plans the highest priority wins.
    applies_when: Conditions = field(default_factory=Conditions)
    priority: int = 0
    quiet_hours: TimeWindow | None = TimeWindow(start="21:00", end="08:00")
    # Once nothing is scheduled, how long the journey stays open for late events.
    linger: timedelta = timedelta(days=14)
    # A journey never delivered, returned or cancelled ends after this long.
    expire_after: timedelta = timedelta(days=120)
    # SMS and WhatsApp texts are trimmed to fit this many segments.
    sms_max_segments: int = 2
    replenishment: Replenishment | None = None
    # Per category, the caps on messages to one customer across all their journeys
    # (every cap holds); a category not listed is not capped. See workflows.frequency.
    frequency_caps: dict[CappedCategory, tuple[FrequencyCap, ...]] = field(
        default_factory=_default_frequency_caps
    )
    # The windows in which a purchase is credited to a message of this plan.
    attribution: Attribution = field(default_factory=Attribution)

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)


@dataclass(frozen=True)
class PinnedPlan:
    """The plan a journey runs, with the hash of the exact content it started with."""

    plan: Plan
    content_hash: str
    source: str = ""  # file name, for people

    @property
    def label(self) -> str:
        return f"{self.plan.id}@v{self.plan.version}"
