"""The ``deliver_journey_events`` activity: POST the next outbox events to one
subscriber, in order, signed per Standard Webhooks.

Each request carries ``webhook-id`` (the event's stable id: a retry repeats it, and
the receiver deduplicates on it), ``webhook-timestamp`` and ``webhook-signature``.
A response other than 2xx, or none in time, fails the activity: Temporal retries
it with backoff, and the retry resumes after the last event this attempt had
delivered (its heartbeat), so only that one event can arrive twice.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.outbox_batches import HandOn, hand_on_in_order
from engine.messaging.event_subscriptions import EventSubscriptions, OutboxEvent, Subscription
from workflows.webhook_contracts import (
    DELIVER_JOURNEY_EVENTS_ACTIVITY,
    DeliverEventsInput,
    DeliverEventsResult,
)


class WebhookDeliveryActivities:
    def __init__(self, subscriptions: EventSubscriptions, timeout_seconds: float = 10.0) -> None:
        self._subscriptions = subscriptions
        self._timeout = timeout_seconds

    @activity.defn(name=DELIVER_JOURNEY_EVENTS_ACTIVITY)
    async def deliver_journey_events(self, request: DeliverEventsInput) -> DeliverEventsResult:
        return await hand_on_in_order(self._subscriptions, request, self._poster)

    @asynccontextmanager
    async def _poster(self, subscription: Subscription) -> AsyncIterator[HandOn]:
        signer = Webhook(subscription.secret)
        async with httpx.AsyncClient(timeout=self._timeout) as client:
            yield lambda event: _post(client, signer, subscription, event)


async def _post(
    client: httpx.AsyncClient, signer: Webhook, subscription: Subscription, event: OutboxEvent
) -> None:
    body = json.dumps(
        event.payload(include_personal_data=subscription.include_personal_data),
        separators=(",", ":"),
    )
    now = datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": event.event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signer.sign(event.event_id, now, body),
    }
    try:
        response = await client.post(subscription.url, content=body.encode(), headers=headers)
    except httpx.HTTPError as err:
        raise ApplicationError(
            f"subscriber unreachable: {type(err).__name__}", type="SubscriberUnreachable"
        ) from err
    if not 200 <= response.status_code < 300:
        # Retried whatever the status: a subscriber's 4xx is usually a deploy or a
        # misconfiguration that gets fixed, and the events must wait for it in order.
        raise ApplicationError(
            f"subscriber answered HTTP {response.status_code}", type="SubscriberRefused"
        )
