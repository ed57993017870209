"""SubscriptionsService: who receives journey events as signed webhooks."""

from __future__ import annotations

import asyncio

import grpc
from aftercare.v1 import subscriptions_pb2 as pb
from aftercare.v1 import subscriptions_pb2_grpc as pb_grpc

from engine.integrations.subscriptions.dispatchers import Dispatchers
from engine.integrations.subscriptions.requests import create_request, subscription_id_request
from engine.journeys.replies import timestamp
from engine.messaging.event_demand import DEMAND_SETTLE
from engine.messaging.event_subscriptions import EventSubscriptions, Subscription
from engine.platform.logging import get_logger
from engine.platform.rpc.answers import Refusal, answered

log = get_logger(__name__)


class SubscriptionNotFound(Exception):
    """No active subscription has the id."""


def _refusal(error: Exception) -> Refusal | None:
    if isinstance(error, SubscriptionNotFound):
        return grpc.StatusCode.NOT_FOUND, "no active subscription has this subscription_id"
    return None


_answered = answered(refuse=_refusal, unavailable=lambda err: f"Temporal unreachable ({err})")


def subscription_reply(subscription: Subscription) -> pb.Subscription:
    return pb.Subscription(
        subscription_id=subscription.id,
        url=subscription.url,
        event_types=sorted(subscription.event_types),
        include_personal_data=subscription.include_personal_data,
        created_at=timestamp(subscription.created_at),
    )


class SubscriptionsServicer(pb_grpc.SubscriptionsServiceServicer):
    def __init__(self, subscriptions: EventSubscriptions, dispatchers: Dispatchers) -> None:
        self._subscriptions = subscriptions
        self._dispatchers = dispatchers

    @_answered
    async def CreateSubscription(
        self, request: pb.CreateSubscriptionRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateSubscriptionResponse:
        wanted = create_request(request)
        # From now on: a subscriber gets what happens after it subscribed.
        cursor = await self._subscriptions.latest_event_id()
        subscription = await self._subscriptions.create(
            url=wanted.url,
            event_types=wanted.event_types,
            include_personal_data=wanted.include_personal_data,
            delivered_through=cursor,
        )
        try:
            # Until every process's copy of who wants what includes it, events
            # of its types may go unrecorded: the caller hears of it after that.
            await asyncio.sleep(DEMAND_SETTLE.total_seconds())
            await self._dispatchers.start(subscription.id, cursor)
        except BaseException:
            # Nobody would deliver to it: the caller's retry creates another.
            await self._subscriptions.remove(subscription.id)
            raise
        log.info(
            "subscription created",
            subscription_id=subscription.id,
            personal_data=subscription.include_personal_data,
        )
        return pb.CreateSubscriptionResponse(
            subscription=subscription_reply(subscription), secret=subscription.secret
        )

    @_answered
    async def ListSubscriptions(
        self, request: pb.ListSubscriptionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSubscriptionsResponse:
        active = await self._subscriptions.active()
        return pb.ListSubscriptionsResponse(
            subscriptions=[subscription_reply(subscription) for subscription in active]
        )

    @_answered
    async def RemoveSubscription(
        self, request: pb.RemoveSubscriptionRequest, context: grpc.aio.ServicerContext
    ) -> pb.RemoveSubscriptionResponse:
        subscription_id = subscription_id_request(request.subscription_id)
        if not await self._subscriptions.remove(subscription_id):
            raise SubscriptionNotFound()
        await self._dispatchers.stop(subscription_id)
        log.info("subscription removed", subscription_id=subscription_id)
        return pb.RemoveSubscriptionResponse()
