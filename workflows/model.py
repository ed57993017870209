"""Data that crosses the workflow boundary: inputs, events, state and activity contracts.

Plain dataclasses (samples-python style), carried by Temporal's pydantic data
converter, importable by the workflow sandbox without side effects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from workflows.frequency import CapCheck
from workflows.overrides import CustomerOverrides
from workflows.plan import PinnedPlan

# Re-exported: callers take the whole journey vocabulary from this module.
from workflows.vocabulary import Channel as Channel
from workflows.vocabulary import EventType as EventType
from workflows.vocabulary import Stage as Stage

# Activities are called by name so workflow code never imports their I/O modules.
CHOOSE_PLAN_ACTIVITY = "choose_plan"
SEND_MESSAGE_ACTIVITY = "send_message"
OPEN_SUPPORT_TICKET_ACTIVITY = "open_support_ticket"
SUPERSEDE_REPLENISHMENT_ACTIVITY = "supersede_replenishment"


def channel_task_queue(journey_task_queue: str, channel: Channel) -> str:
    """Sends run on one task queue per channel, so each provider gets its own
    server-side rate limit and its own workers."""
    return f"{journey_task_queue}.{channel}"


@dataclass(frozen=True)
class Customer:
    id: str
    name: str
    email: str
    phone: str = ""
    locale: str = "en"
    timezone: str = "UTC"
    # Orders the customer placed before this one (from the shop): 0 = first-time buyer.
    previous_orders: int = 0


@dataclass(frozen=True)
class Address:
    name: str
    line1: str
    city: str
    postal_code: str
    country_code: str
    line2: str = ""
    region: str = ""


@dataclass(frozen=True)
class LineItem:
    sku: str
    name: str
    quantity: int
    unit_price_minor: int
    category: str = ""
    # How many days one unit lasts (catalogue data); 0 = not a consumable.
    consumption_days: int = 0


@dataclass(frozen=True)
class Recommendation:
    """A complementary product for cross-sell, from the shop's catalogue."""

    sku: str
    name: str
    url: str = ""


@dataclass(frozen=True)
class Order:
    """An order as the shop knows it; amounts are in the currency's minor unit."""

    order_id: str
    customer: Customer
    items: list[LineItem]
    currency: str
    subtotal_minor: int
    shipping_minor: int
    tax_minor: int
    total_minor: int
    shipping_address: Address
    placed_at: datetime
    discount_minor: int = 0
    recommendations: list[Recommendation] = field(default_factory=list)

    @property
    def item_count(self) -> int:
        return sum(item.quantity for item in self.items)


@dataclass(frozen=True)
class Shipment:
    carrier: str = ""
    tracking_number: str = ""
    tracking_url: str = ""
    estimated_delivery: datetime | None = None


@dataclass(frozen=True)
class Feedback:
    score: int
    comment: str = ""


@dataclass(frozen=True)
class OrderEvent:
    """Something that happened to the order, as reported by a backend service."""

    event_id: str
    type: EventType
    occurred_at: datetime
    shipment: Shipment | None = None
    feedback: Feedback | None = None
    new_address: Address | None = None
    # For returns, refunds and reorders: the SKUs concerned; empty = the whole order.
    skus: list[str] = field(default_factory=list)


class Delivery(StrEnum):
    SENT = "sent"  # handed to the provider
    UNAVAILABLE = "unavailable"  # this channel cannot reach the customer: try the next
    BOUNCED = "bounced"  # the provider refused the address for good: suppressed
    UNDELIVERABLE = "undeliverable"  # no channel of the step could reach the customer
    # Over the customer's frequency cap: not sent; it fits at ``not_before``.
    DEFERRED = "deferred"
    # Over the cap until past the message's stale limit: dropped (the ledger says why).
    STALE = "stale"


@dataclass(frozen=True)
class SentMessage:
    step: str
    channel: Channel | None
    template: str
    sent_at: datetime
    message_id: str
    status: Delivery = Delivery.SENT
    detail: str = ""
    not_before: datetime | None = None  # for DEFERRED: when the message fits the cap


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


@dataclass(frozen=True)
class ChoosePlanInput:
    order: Order


@dataclass(frozen=True)
class SendMessageInput:
    """One message for one step of one journey.

    ``iteration`` tells repeated sends of the same step apart (replenishment
    cycles); with the journey (workflow) id and step it forms the ledger's
    idempotency key, so a retried activity never sends twice.
    """

    journey_id: str
    step: str
    template: str
    category: str
    channel: Channel
    order: Order
    iteration: int = 0
    shipment: Shipment | None = None
    focus_sku: str = ""
    feedback: Feedback | None = None
    skus: list[str] = field(default_factory=list)
    new_address: Address | None = None
    run_out_at: datetime | None = None
    max_sms_segments: int = 2
    # The customer's frequency cap for this message; None: not capped.
    cap: CapCheck | None = None


@dataclass(frozen=True)
class SupportTicketInput:
    journey_id: str
    order_id: str
    customer_id: str
    score: int
    comment: str


@dataclass(frozen=True)
class SupportTicketResult:
    status: str  # "opened" | "not_configured"
    reference: str = ""


@dataclass(frozen=True)
class SupersedeInput:
    """A new journey tells the customer's older journeys to stop these reminders."""

    journey_id: str
    customer_id: str
    skus: list[str]


@dataclass(frozen=True)
class SupersedeResult:
    notified_journeys: list[str]
