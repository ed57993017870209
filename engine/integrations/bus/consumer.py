"""Order events from a RabbitMQ queue into journeys, at least once.

Every message ends in one of two places: taken by a journey (then acknowledged), or
published to the dead-letter exchange with the reason in its headers (then
acknowledged). Nothing is acknowledged before either has happened, so a consumer
killed at any moment loses nothing: the broker delivers its unacknowledged messages
again, and the API's idempotency (one journey per order id, an event once per event
id) makes the second delivery change nothing.

Back-pressure: the broker hands out at most ``prefetch`` unacknowledged messages
(``basic.qos``), and the consumer works on all of them at once at most. While Temporal
or the database is slow, those stay in flight and the broker sends no more; while
they are out of reach, each message is retried with growing pauses and never
acknowledged, so it stays on the broker.

An event for an order whose journey does not exist yet is tried again for a while
(its ``StartJourney`` may be in flight beside it, or queued behind it) before it is
dead-lettered.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
    ConsumerTag,
)
from temporalio.service import RPCError

from engine.integrations.bus.envelope import NotARequest, decode
from engine.integrations.intake import Intake, RefusalKind, Refused
from engine.platform.logging import get_logger
from engine.platform.rpc.answers import DATABASE_UNREACHABLE

log = get_logger(__name__)

DEAD_LETTER_SUFFIX = ".dead-letter"
# Headers of a dead-lettered message: why, in a word and in a sentence, and which
# request fields were wrong (comma-separated).
REASON_HEADER = "x-aftercare-reason"
REFUSAL_HEADER = "x-aftercare-refusal"
FIELDS_HEADER = "x-aftercare-fields"
NOT_A_REQUEST = "not_a_request"
# What stands between a message and its journey for a while; anything else is a bug.
_UNREACHABLE = (RPCError, ConnectionError, TimeoutError, *DATABASE_UNREACHABLE)


@dataclass(frozen=True)
class Backoff:
    """Pauses between tries: ``first`` doubling up to ``most``."""

    first: float = 0.5
    most: float = 30.0

    def pause(self, attempt: int) -> float:
        return float(min(self.most, self.first * 2 ** min(attempt, 30)))


@dataclass(frozen=True)
class ConsumerSettings:
    queue: str
    prefetch: int = 16
    # How often an event waits for its journey to be started before it is dead-lettered.
    no_journey_attempts: int = 6
    backoff: Backoff = Backoff()

    @property
    def dead_letter(self) -> str:
        return self.queue + DEAD_LETTER_SUFFIX


class BusConsumer:
    def __init__(
        self,
        connection: AbstractRobustConnection,
        intake: Intake,
        settings: ConsumerSettings,
    ) -> None:
        self._connection = connection
        self._intake = intake
        self._settings = settings
        self._in_flight = asyncio.Semaphore(settings.prefetch)
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._channel: AbstractChannel | None = None
        self._dead_letters: AbstractExchange | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: ConsumerTag | None = None

    async def start(self) -> None:
        """Declare the queue and its dead-letter exchange and queue (durable), and
        start consuming."""
        channel = await self._connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=self._settings.prefetch)
        queue = await declare_queues(channel, self._settings.queue)
        self._dead_letters = await channel.get_exchange(self._settings.dead_letter)
        self._channel = channel
        self._queue = queue
        self._consumer_tag = await queue.consume(self._deliver)
        log.info(
            "consuming",
            queue=self._settings.queue,
            prefetch=self._settings.prefetch,
            dead_letter=self._settings.dead_letter,
        )

    async def stop(self) -> None:
        """Stop taking messages; those in flight and not yet taken go back to the
        broker (requeued), for this consumer's successor."""
        self._stopping.set()
        # No new deliveries first: a message handed back must not come straight back.
        channel_open = self._channel is not None and not self._channel.is_closed
        if channel_open and self._queue is not None and self._consumer_tag is not None:
            await self._queue.cancel(self._consumer_tag)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()

    async def _deliver(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            async with self._in_flight:
                await self._handle(message)
        except asyncio.CancelledError:
            # Stopping: hand it back now, for the next consumer.
            await asyncio.shield(_hand_back(message))
            raise
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        try:
            request = decode(message.type, message.body)
        except NotARequest as err:
            await self._dead_letter(message, NOT_A_REQUEST, str(err), [])
            return
        attempt = 0
        while not self._stopping.is_set():
            try:
                taken = await self._intake.take(request)
            except Refused as refused:
                waiting = refused.kind == RefusalKind.NO_JOURNEY
                if waiting and attempt + 1 < self._settings.no_journey_attempts:
                    attempt += 1
                    await asyncio.sleep(self._settings.backoff.pause(attempt))
                    continue
                fields = [v.field for v in refused.violations]
                await self._dead_letter(message, refused.kind.value, refused.reason, fields)
                return
            except Exception as err:
                # Kept unacknowledged and tried again: Temporal or the database out
                # of reach, or a bug (logged with its traceback) that a fix will clear.
                attempt += 1
                pause = self._settings.backoff.pause(attempt)
                if isinstance(err, _UNREACHABLE):
                    log.warning(
                        "bus message not taken; retrying",
                        error=type(err).__name__,
                        detail=str(err)[:200],
                        attempt=attempt,
                        retry_in=pause,
                    )
                else:
                    log.exception("bus message failed; retrying", attempt=attempt)
                await asyncio.sleep(pause)
                continue
            await message.ack()
            log.info("bus message taken", journey_id=taken.journey_id, created=taken.created)
            return
        await _hand_back(message)

    async def _dead_letter(
        self, message: AbstractIncomingMessage, refusal: str, reason: str, fields: list[str]
    ) -> None:
        assert self._dead_letters is not None
        headers = dict(message.headers or {})
        headers.update(
            {
                REFUSAL_HEADER: refusal,
                REASON_HEADER: reason[:1000],
                FIELDS_HEADER: ",".join(fields)[:1000],
            }
        )
        copy = aio_pika.Message(
            body=message.body,
            headers=headers,
            content_type=message.content_type,
            type=message.type,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            timestamp=message.timestamp,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        # Confirmed by the broker before the original is acknowledged: a crash in
        # between leaves a copy in both queues at worst, never in neither.
        await self._dead_letters.publish(copy, routing_key=self._settings.queue)
        await message.ack()
        log.warning(
            "bus message dead-lettered",
            refusal=refusal,
            reason=reason[:200],
            fields=fields[:20],
            message_id=message.message_id,
        )


async def declare_queues(channel: AbstractChannel, queue_name: str) -> AbstractQueue:
    """The queue and its dead-letter exchange and queue, durable (idempotent)."""
    dead_letter = queue_name + DEAD_LETTER_SUFFIX
    exchange = await channel.declare_exchange(
        dead_letter, aio_pika.ExchangeType.FANOUT, durable=True
    )
    parked = await channel.declare_queue(dead_letter, durable=True)
    await parked.bind(exchange)
    return await channel.declare_queue(queue_name, durable=True)


async def _hand_back(message: AbstractIncomingMessage) -> None:
    if not message.processed and not message.channel.is_closed:
        await message.nack(requeue=True)
        log.info("bus message handed back", message_id=message.message_id)
