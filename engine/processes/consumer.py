"""The bus consumer process (``aftercare consume``): order events from RabbitMQ
(``AFTERCARE_BROKER_URL``, queue ``AFTERCARE_BROKER_QUEUE``) into journeys, taken as
the API takes them: the customer's stored choices and the deployment's plans, the same
validation, the same idempotency (``engine.integrations.bus.consumer``). ``aftercare
run`` runs it too when a broker is configured."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aio_pika
from temporalio.client import Client

from engine.customers.journey_link import StoredChoices
from engine.customers.preferences import PreferenceStore
from engine.integrations.bus.consumer import BusConsumer, ConsumerSettings
from engine.integrations.intake import JourneyIntake
from engine.journeys.directory import JourneyDirectory
from engine.journeys.outbound_events import JourneyEventsOutbox
from engine.journeys.plans import deployment_plans
from engine.platform.codec.runtime import erasure_marks_for, require_secrets
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.logging import get_logger
from engine.platform.secret_values import MissingSecret
from engine.platform.settings import Settings
from engine.platform.temporal.connection import connect
from engine.processes.lifecycle import STARTUP_WAIT, stop_event

log = get_logger(__name__)


def broker_url(settings: Settings) -> str:
    if settings.broker_url is None:
        raise MissingSecret(
            "AFTERCARE_BROKER_URL is not set: it holds the RabbitMQ URL to consume from, "
            "amqp://user:password@host:5672/vhost (or AFTERCARE_BROKER_URL_FILE, a file "
            "holding it)"
        )
    return settings.broker_url.get_secret_value()


@asynccontextmanager
async def consuming(client: Client, settings: Settings) -> AsyncIterator[BusConsumer]:
    """Consume ``settings.broker_queue`` until the context ends."""
    url = broker_url(settings)
    engine = create_engine(settings.resolved_database_url)
    sessions = create_session_factory(engine)
    store = PreferenceStore(sessions, erasure_marks_for(settings))
    directory = JourneyDirectory(
        client,
        settings.task_queue,
        StoredChoices(store),
        deployment_plans(settings),
        outbox=JourneyEventsOutbox(sessions),
    )
    try:
        # Robust: a broker restart reconnects, and what was unacknowledged is redelivered.
        connection = await aio_pika.connect_robust(url)
        try:
            consumer = BusConsumer(
                connection,
                JourneyIntake(directory),
                ConsumerSettings(queue=settings.broker_queue, prefetch=settings.broker_prefetch),
            )
            await consumer.start()
            try:
                yield consumer
            finally:
                await consumer.stop()
        finally:
            await connection.close()
    finally:
        await engine.dispose()


async def run_consumer(settings: Settings) -> None:
    # The codec keys: journeys started here are encrypted like every other.
    require_secrets(settings)
    broker_url(settings)  # before waiting for Temporal: a missing URL fails at once
    stop = stop_event()
    client = await connect(settings, wait=STARTUP_WAIT)
    async with consuming(client, settings):
        await stop.wait()
        log.info("consumer stopping")
