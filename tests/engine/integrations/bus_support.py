"""The real RabbitMQ on 127.0.0.1:5672 for the consumer's tests: a queue of their own
per test (and its dead-letter queue), deleted afterwards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aio_pika
from aftercare.v1 import journey_pb2 as pb
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

from engine.integrations.bus.consumer import DEAD_LETTER_SUFFIX, declare_queues
from engine.integrations.bus.envelope import encode

BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/"


@dataclass
class Broker:
    connection: AbstractRobustConnection
    channel: AbstractChannel
    queue: str

    @property
    def dead_letter(self) -> str:
        return self.queue + DEAD_LETTER_SUFFIX

    async def publish(self, request: pb.StartJourneyRequest | pb.RecordEventRequest) -> None:
        message_type, body = encode(request)
        await self.publish_raw(message_type, body)

    async def publish_raw(self, message_type: str | None, body: bytes) -> None:
        message = aio_pika.Message(
            body=body,
            type=message_type,
            content_type="application/json",
            message_id=str(uuid.uuid4()),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await self.channel.default_exchange.publish(message, routing_key=self.queue)

    async def waiting(self, queue: str | None = None) -> int:
        """Messages ready in the queue (not those delivered and unacknowledged)."""
        # A channel of its own: a robust channel hands back the queue it declared
        # before, with the count of then.
        channel = await self.connection.channel()
        try:
            declared = await channel.declare_queue(queue or self.queue, passive=True)
            return int(declared.declaration_result.message_count or 0)
        finally:
            await channel.close()

    async def dead_letters(self) -> list[AbstractIncomingMessage]:
        """Takes (removes) the dead-lettered messages there are now."""
        queue = await self.channel.declare_queue(self.dead_letter, passive=True)
        taken = []
        while (message := await queue.get(fail=False, no_ack=True)) is not None:
            taken.append(message)
        return taken


@asynccontextmanager
async def broker_queue(prefix: str) -> AsyncIterator[Broker]:
    connection = await aio_pika.connect_robust(BROKER_URL)
    channel = await connection.channel()
    name = f"test.{prefix}.{uuid.uuid4().hex[:8]}"
    await declare_queues(channel, name)
    try:
        yield Broker(connection, channel, name)
    finally:
        await channel.queue_delete(name)
        await channel.queue_delete(name + DEAD_LETTER_SUFFIX)
        await channel.exchange_delete(name + DEAD_LETTER_SUFFIX)
        await connection.close()
