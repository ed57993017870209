"""What a journey asks of its activities: their names, inputs and results.

Activities are called by name, so workflow code never imports their I/O modules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from workflows.experiments import ExperimentArm
from workflows.frequency import CapCheck
from workflows.orders import Address, Feedback, Order, Shipment
from workflows.vocabulary import Channel

CHOOSE_PLAN_ACTIVITY = "choose_plan"
SEND_MESSAGE_ACTIVITY = "send_message"
OPEN_SUPPORT_TICKET_ACTIVITY = "open_support_ticket"
SUPERSEDE_REPLENISHMENT_ACTIVITY = "supersede_replenishment"
REPORT_JOURNEY_EVENTS_ACTIVITY = "report_journey_events"

# Signals of the pause controls. None takes an argument, so a Temporal batch operation
# can send them to every journey a visibility query selects, with empty input.
SENDING_RESUMED_SIGNAL = "sending_resumed"  # a scope pause was lifted: ask held sends again
PAUSE_JOURNEY_SIGNAL = "pause_journey"  # hold this journey's non-transactional sends
PAUSE_JOURNEY_ALL_SIGNAL = "pause_journey_all"  # hold all its sends, transactional too
RESUME_JOURNEY_SIGNAL = "resume_journey"  # lift this journey's own pause
# A text the journey sent was reported undelivered or failed (UndeliveredMessage).
MESSAGE_UNDELIVERED_SIGNAL = "message_undelivered"


def channel_task_queue(journey_task_queue: str, channel: Channel) -> str:
    """Sends run on one task queue per channel, so each provider gets its own
    server-side rate limit and its own workers."""
    return f"{journey_task_queue}.{channel}"


class Delivery(StrEnum):
    SENT = "sent"  # handed to the provider
    UNAVAILABLE = "unavailable"  # this channel cannot reach the customer: try the next
    BOUNCED = "bounced"  # the provider refused the address for good: suppressed
    UNDELIVERABLE = "undeliverable"  # no channel of the step could reach the customer
    # Over the customer's frequency cap: not sent; it fits at ``not_before``.
    DEFERRED = "deferred"
    # Over the cap, or paused, until past the message's stale limit: dropped (the
    # ledger says why).
    STALE = "stale"
    # An operator's pause holds this message (the detail names the pause and its
    # scope): not sent, nothing claimed; the journey asks again later.
    PAUSED = "paused"
    # The customer is in the holdout of the step's experiment: no message, by design
    # (the ledger keeps a row, so the report counts the holdout's conversions).
    HOLDOUT = "holdout"


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
    # The journey's plan, which a pause may name ("" in inputs from before pauses).
    plan_id: str = ""
    # Past this instant the message is stale: a paused message is dropped (and
    # recorded) rather than held longer. None: it may wait indefinitely.
    stale_at: datetime | None = None
    # The pinned plan's version (with plan_id, the ledger's plan label; 0 in older inputs).
    plan_version: int = 0
    # The customer's arm of the step's experiment (None: the step has none), and the
    # arm's own email subject ("" keeps the template's).
    experiment: ExperimentArm | None = None
    subject: str = ""


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


@dataclass(frozen=True)
class UndeliveredMessage:
    """The provider reported a text of the journey ``undelivered`` or ``failed`` after
    taking it (Twilio's status callback): the journey may send the step's next channel."""

    step: str
    iteration: int
    channel: Channel
    message_id: str  # the provider's id of the text (Twilio's MessageSid)
    status: str  # "undelivered" or "failed"
    error_code: str = ""


@dataclass(frozen=True)
class JourneyEventNote:
    """What the journey itself decided (its stage changed, it ended), for outbound
    subscribers. ``number`` counts the journey's notes across its runs, so each has
    one event id however often the report is retried."""

    number: int
    type: str  # "stage.changed" | "journey.ended"
    occurred_at: datetime
    data: dict[str, str]


@dataclass(frozen=True)
class ReportJourneyEventsInput:
    journey_id: str
    order_id: str
    customer_id: str
    plan: str  # "plan_id@vN", "" before one is pinned
    notes: list[JourneyEventNote]
