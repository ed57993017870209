"""The ``publish_journey_events`` activity: publish the next outbox events to the
broker's exchange, in order, each confirmed by the broker before the next is sent.

A message per event, persistent, on a durable topic exchange we declare; routing key
the event type, ``message_id`` the event's stable id (consumers deduplicate on it),
the body the JSON a webhook subscriber gets. A broker out of reach, a refusal or no
confirmation in time fails the activity: Temporal retries it with backoff, resuming
after the last event confirmed (its heartbeat), so only that one can arrive twice.

The connection is the worker's, opened on first use and kept (robust: it reconnects by
itself); the credentials are read from the settings, never from the subscription.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection
from pydantic import SecretStr
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.outbox_batches import HandOn, hand_on_in_order
from engine.messaging.event_subscriptions import EventSubscriptions, OutboxEvent, Subscription
from workflows.webhook_contracts import (
    PUBLISH_JOURNEY_EVENTS_ACTIVITY,
    DeliverEventsInput,
    DeliverEventsResult,
)

APP_ID = "aftercare"


class BrokerPublishActivities:
    def __init__(
        self,
        subscriptions: EventSubscriptions,
        url: SecretStr | None,
        exchange: str,
        *,
        timeout_seconds: float = 10.0,
    ) -> None:
        self._subscriptions = subscriptions
        self._url = url
        self._exchange_name = exchange
        self._timeout = timeout_seconds
        self._lock = asyncio.Lock()
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None

    @activity.defn(name=PUBLISH_JOURNEY_EVENTS_ACTIVITY)
    async def publish_journey_events(self, request: DeliverEventsInput) -> DeliverEventsResult:
        return await hand_on_in_order(self._subscriptions, request, self._publisher)

    @asynccontextmanager
    async def _publisher(self, subscription: Subscription) -> AsyncIterator[HandOn]:
        exchange = await self._ready_exchange()
        yield lambda event: self._publish(exchange, subscription, event)

    async def aclose(self) -> None:
        async with self._lock:
            connection, self._connection = self._connection, None
            self._channel = self._exchange = None
            if connection is not None:
                await connection.close()

    async def _ready_exchange(self) -> AbstractExchange:
        """The exchange on an open channel with publisher confirms: the kept one, or
        a new one (connecting first, the first time)."""
        if self._url is None:
            # Events wait, in order, until a worker with the setting takes them.
            raise ApplicationError(
                "AFTERCARE_EVENTS_BROKER_URL is not set on this worker", type="BrokerNotConfigured"
            )
        async with self._lock:
            channel_open = self._channel is not None and not self._channel.is_closed
            if self._exchange is not None and channel_open:
                return self._exchange
            try:
                async with asyncio.timeout(self._timeout):
                    if self._connection is None:
                        self._connection = await aio_pika.connect_robust(
                            self._url.get_secret_value(), timeout=self._timeout
                        )
                    channel = await self._connection.channel(publisher_confirms=True)
                    self._exchange = await channel.declare_exchange(
                        self._exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
                    )
                    self._channel = channel
            except Exception as err:
                # The type only: the error's text may carry the URL.
                raise ApplicationError(
                    f"broker unreachable: {type(err).__name__}", type="BrokerUnreachable"
                ) from None
            return self._exchange

    async def _publish(
        self, exchange: AbstractExchange, subscription: Subscription, event: OutboxEvent
    ) -> None:
        body = json.dumps(
            event.payload(include_personal_data=subscription.include_personal_data),
            separators=(",", ":"),
        )
        message = aio_pika.Message(
            body=body.encode(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=event.event_id,
            timestamp=event.occurred_at,
            type=event.type,
            app_id=APP_ID,
        )
        try:
            # Unroutable (no queue bound) is not an error: the shop binds what it wants.
            await exchange.publish(
                message, routing_key=event.type, mandatory=False, timeout=self._timeout
            )
        except Exception as err:
            await self._drop_channel()
            raise ApplicationError(
                f"broker did not confirm {event.event_id}: {type(err).__name__}",
                type="BrokerRefused",
            ) from None

    async def _drop_channel(self) -> None:
        """Forget the channel after a failed publish: the next attempt opens another."""
        async with self._lock:
            channel, self._channel, self._exchange = self._channel, None, None
        if channel is not None and not channel.is_closed:
            try:
                await asyncio.wait_for(channel.close(), self._timeout)
            except Exception:  # it is being given up either way
                activity.logger.debug("closing a failed broker channel failed")
