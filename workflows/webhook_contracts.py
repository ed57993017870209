"""What the webhook dispatch workflow and its delivery activity exchange."""

from __future__ import annotations

from dataclasses import dataclass

DELIVER_JOURNEY_EVENTS_ACTIVITY = "deliver_journey_events"


def dispatch_workflow_id(subscription_id: str) -> str:
    """One dispatcher per subscription: the id makes a second start a no-op."""
    return f"webhooks-{subscription_id}"


@dataclass(frozen=True)
class WebhookDispatchInput:
    subscription_id: str
    # The outbox id of the last event handled (delivered, or skipped by the filter).
    cursor: int = 0
    # Batches (or idle waits) before the run continues as new, keeping history short.
    batches_per_run: int = 200


@dataclass(frozen=True)
class DeliverEventsInput:
    subscription_id: str
    after: int
    limit: int = 100


@dataclass(frozen=True)
class DeliverEventsResult:
    cursor: int
    # Events handled by this call: 0 means none are ready yet.
    handled: int = 0
    # The subscription was removed: its dispatcher ends.
    removed: bool = False
