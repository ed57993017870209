"""What the webhook dispatch workflow and its delivery activity exchange."""

from __future__ import annotations

from dataclasses import dataclass

DELIVER_JOURNEY_EVENTS_ACTIVITY = "deliver_journey_events"
PUBLISH_JOURNEY_EVENTS_ACTIVITY = "publish_journey_events"

# How a dispatcher hands the events on: signed webhooks POSTed to the subscription's
# URL, or messages published to the configured broker's exchange.
WEBHOOK_TRANSPORT = "webhook"
BROKER_TRANSPORT = "broker"
_ACTIVITIES = {
    WEBHOOK_TRANSPORT: DELIVER_JOURNEY_EVENTS_ACTIVITY,
    BROKER_TRANSPORT: PUBLISH_JOURNEY_EVENTS_ACTIVITY,
}


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
    # WEBHOOK_TRANSPORT or BROKER_TRANSPORT; the default keeps the inputs of
    # dispatchers started before there was a broker meaning what they meant.
    transport: str = WEBHOOK_TRANSPORT

    @property
    def activity(self) -> str:
        """The activity that hands this dispatcher's events on."""
        try:
            return _ACTIVITIES[self.transport]
        except KeyError:
            raise ValueError(f"unknown journey event transport {self.transport!r}") from None


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
