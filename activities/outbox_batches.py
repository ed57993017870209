"""Handing the journey event outbox on to one subscription, a batch per activity
call, in order: what the webhook and the broker activities share.

The batch starts after the cursor the dispatcher passed, or further on where an
earlier attempt of the call got to (its heartbeat) or what the subscription records
as handled (the outbox may be pruned behind it). Each event is heartbeated once it
is handed on, so a retry repeats at most the one in flight; events the
subscription's filter skips move the cursor all the same.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from temporalio import activity

from engine.messaging.event_subscriptions import EventSubscriptions, OutboxEvent, Subscription
from workflows.webhook_contracts import DeliverEventsInput, DeliverEventsResult

HandOn = Callable[[OutboxEvent], Awaitable[None]]


async def hand_on_in_order(
    subscriptions: EventSubscriptions,
    request: DeliverEventsInput,
    opened_for: Callable[[Subscription], AbstractAsyncContextManager[HandOn]],
) -> DeliverEventsResult:
    """The next ready events of ``request``'s subscription, each given to what
    ``opened_for(subscription)`` yields (opened only when there are events)."""
    subscription = await subscriptions.get(request.subscription_id)
    if subscription is None or subscription.removed_at is not None:
        return DeliverEventsResult(cursor=request.after, removed=True)
    cursor = max(_resumed_cursor(request.after), subscription.delivered_through)
    events = await subscriptions.ready_events(cursor, request.limit)
    if not events:
        return DeliverEventsResult(cursor=cursor)
    async with opened_for(subscription) as hand_on:
        for event in events:
            if subscription.wants(event.type):
                await hand_on(event)
            cursor = event.id
            activity.heartbeat(cursor)
    await subscriptions.advance(subscription.id, cursor)
    return DeliverEventsResult(cursor=cursor, handled=len(events))


def _resumed_cursor(after: int) -> int:
    """Where an earlier attempt of this activity got to, else ``after``."""
    details = activity.info().heartbeat_details
    if details and isinstance(details[0], int) and details[0] > after:
        return details[0]
    return after
