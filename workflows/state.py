"""A journey's state (what the query and the UI show) and its input.

Carried whole across continue-as-new; plain dataclasses for Temporal's pydantic
data converter, importable by the workflow sandbox without side effects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from workflows.contracts import JourneyEventNote, SentMessage, UndeliveredMessage
from workflows.orders import Address, Feedback, Order, OrderEvent, Shipment
from workflows.overrides import CustomerOverrides
from workflows.plans.model import PinnedPlan
from workflows.vocabulary import Channel, EventType, Stage


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # "event", "message", "stage", "skip", "note"
    detail: str


@dataclass(frozen=True)
class ScheduledStep:
    """A step with a known due time, as the query and the UI show it."""

    step: str
    template: str
    category: str
    channels: list[Channel]
    due_at: datetime
    due_local: str
    # Why a pause holds it ("" when none does); ``due_at`` is then when it is asked again.
    held: str = ""


class StepOutcome(StrEnum):
    SENT = "sent"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True)
class StepRecord:
    """What became of a step (or of one replenishment reminder)."""

    outcome: StepOutcome
    at: datetime
    detail: str = ""


class JourneyPause(StrEnum):
    """The journey's own pause (an operator's signal): which of its sends it holds."""

    NON_TRANSACTIONAL = "non_transactional"
    ALL = "all"


@dataclass(frozen=True)
class HeldSend:
    """A send a pause holds: since when, and why."""

    since: datetime
    # "paused by pause-1a2b... (step=cross_sell)", or "the journey is paused".
    reason: str
    by_journey: bool = False  # held by the journey's own pause, not a scope pause
    transactional: bool = False


@dataclass
class JourneyState:
    """Everything a journey knows; carried whole across continue-as-new.

    ``events`` keeps the first occurrence of each event type, which is what the
    plan's timers are anchored to.
    """

    journey_id: str
    order_id: str
    customer_id: str
    stage: Stage
    started_at: datetime
    timezone: str = "UTC"  # the customer's: every local time shown is in it
    plan_id: str = ""
    plan_version: int = 0
    plan_hash: str = ""
    events: dict[EventType, datetime] = field(default_factory=dict)
    # When each event type first reached the journey (workflow time).
    reported: dict[EventType, datetime] = field(default_factory=dict)
    seen_event_ids: list[str] = field(default_factory=list)
    pending_events: list[OrderEvent] = field(default_factory=list)
    feedback: Feedback | None = None
    returned_skus: list[str] = field(default_factory=list)
    whole_order_returned: bool = False
    reordered_skus: list[str] = field(default_factory=list)
    marketing_blocked: bool = False
    shipment: Shipment | None = None
    shipping_address: Address | None = None
    steps: dict[str, StepRecord] = field(default_factory=dict)
    reminders_sent: dict[str, int] = field(default_factory=dict)
    # Whether the customer's older journeys were told this order's consumables
    # were reordered (done once, after the confirmation).
    older_journeys_told: bool = False
    last_activity_at: datetime | None = None
    sent: list[SentMessage] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)
    scheduled: list[ScheduledStep] = field(default_factory=list)
    waiting_for: list[EventType] = field(default_factory=list)
    next_step: str = ""
    runs: int = 1  # workflow runs so far (continue-as-new increments it)
    # Sends the frequency cap deferred (agenda key -> the slot held for them).
    deferred: dict[str, datetime] = field(default_factory=dict)
    # The customer's own choices (consent, quiet hours, channel, zone), newest known.
    overrides: CustomerOverrides | None = None
    # Sends a pause holds (agenda key -> since when, why); when each is asked again
    # is its entry in ``deferred``.
    held: dict[str, HeldSend] = field(default_factory=dict)
    # The journey's own pause (pause_journey, pause_journey_all); None: not paused.
    journey_pause: JourneyPause | None = None
    # What the JourneyPaused search attribute says: a send held, or a pause of its own.
    paused: bool = False
    # The customer's arm in each experiment this journey met (experiment id -> variant
    # or "holdout"), pinned when first assigned (workflows.experiments).
    experiments: dict[str, str] = field(default_factory=dict)
    # Texts reported undelivered, not looked at yet; and the sends ("step#iteration")
    # that fell back to their step's next channel after such a report (once each).
    undelivered: list[UndeliveredMessage] = field(default_factory=list)
    fallen_back: list[str] = field(default_factory=list)
    # Stage changes and the end, for outbound subscribers: noted so far (numbering
    # them), and those not reported yet (the database was down at the last try).
    event_notes: int = 0
    unreported: list[JourneyEventNote] = field(default_factory=list)


@dataclass(frozen=True)
class JourneyInput:
    """The order; plus, after continue-as-new, the pinned plan and the state so far."""

    order: Order
    plan: PinnedPlan | None = None
    state: JourneyState | None = None
    # The customer's stored preferences when the journey starts (None: none known).
    overrides: CustomerOverrides | None = None
    # False when the API found no other journey of this customer on record, so a
    # reorder has no older journey to tell (skips a visibility search and an
    # activity). True when unknown, as in histories from before this field.
    customer_has_other_journeys: bool = True
