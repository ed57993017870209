"""The Temporal worker: journey workflows and the activities that do their I/O."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio.client import Client
from temporalio.worker import Worker

from activities.email.brand import default_brand
from activities.email.rendering import EmailRenderer
from activities.email.smtp import SmtpConfig, SmtpMailer
from activities.send_email import EmailActivities, LinkBuilder
from engine.database.connection import create_engine, create_session_factory
from engine.database.ledger import MessageLedger
from engine.settings import Settings
from workflows.order_journey import OrderJourney


def build_email_activities(settings: Settings, ledger: MessageLedger) -> EmailActivities:
    return EmailActivities(
        ledger=ledger,
        renderer=EmailRenderer(default_brand(shop_url=settings.shop_url)),
        mailer=SmtpMailer(SmtpConfig.from_settings(settings)),
        sender_address=settings.sender_address,
        links=LinkBuilder(shop_url=settings.shop_url),
    )


@asynccontextmanager
async def journey_worker(client: Client, settings: Settings) -> AsyncIterator[Worker]:
    """A configured worker plus the database engine its activities use.

    Run it with ``await worker.run()`` (or ``async with worker``); the engine is
    disposed when the context ends.
    """
    engine = create_engine(settings.resolved_database_url)
    try:
        ledger = MessageLedger(create_session_factory(engine))
        email = build_email_activities(settings, ledger)
        yield Worker(
            client,
            task_queue=settings.task_queue,
            workflows=[OrderJourney],
            activities=[email.send_email],
        )
    finally:
        await engine.dispose()
