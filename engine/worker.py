"""The Temporal worker: journey workflows and the activities that do their I/O."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio.client import Client
from temporalio.worker import Worker

from activities.choose_plan import PlanActivities
from activities.email.brand import default_brand
from activities.email.rendering import EmailRenderer
from activities.email.smtp import SmtpConfig, SmtpMailer
from activities.send_message import LinkBuilder, MessageActivities
from activities.supersede import SupersedeActivities
from activities.support_ticket import SupportDeskActivities
from engine.database.connection import create_engine, create_session_factory
from engine.database.ledger import MessageLedger
from engine.settings import Settings
from workflows.order_journey import OrderJourney


def build_message_activities(settings: Settings, ledger: MessageLedger) -> MessageActivities:
    return MessageActivities(
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
        messages = build_message_activities(settings, MessageLedger(create_session_factory(engine)))
        plans = PlanActivities(settings.plans_dir)
        support = SupportDeskActivities(settings.support_webhook_url)
        supersede = SupersedeActivities(client)
        yield Worker(
            client,
            task_queue=settings.task_queue,
            workflows=[OrderJourney],
            activities=[
                plans.choose_plan,
                messages.send_message,
                support.open_support_ticket,
                supersede.supersede_replenishment,
            ],
        )
    finally:
        await engine.dispose()
