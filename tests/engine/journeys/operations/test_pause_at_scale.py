"""Issue 18's test: many sleeping journeys, a pause of step ``cross_sell`` through
the API, their timers fired in virtual time: nothing sent; resume: each sent exactly
once (the mail sink's Message-IDs and the message ledger agree).

Real parts throughout: the dev server with virtual time, the API process's server,
the journey worker, SMTP into the mail sink, the SQLite ledger. The journeys start
straight through Temporal (a thousand StartJourney calls would only measure the
API); the pause and the resume go through the API.

``AFTERCARE_PAUSE_JOURNEYS`` sets how many journeys (``make test``: 100;
``make ops-scale``: 1,000, the issue's figure).
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from aftercare.v1 import operations_pb2 as pb
from sqlalchemy import select
from temporalio.client import Client

from engine.devstack.mail_sink import MailSink
from engine.journeys.directory import initial_search_attributes
from engine.journeys.operations.filters import JourneyFilter, visibility_query
from engine.journeys.plans import deployment_plans
from engine.platform.database.connection import create_engine
from engine.platform.database.tables import Message
from tests.support.operations import OperationsStack, new_plan_id, operations_stack, write_plan
from tests.support.orders import domain_order
from tests.support.skipping_dev_server import fast_forward, skipping_dev_server
from tests.support.waiting import eventually
from workflows.ids import journey_id_for
from workflows.order_journey import OrderJourney
from workflows.orders import Order
from workflows.plans.model import PinnedPlan
from workflows.state import JourneyInput

JOURNEYS = int(os.environ.get("AFTERCARE_PAUSE_JOURNEYS", "100"))
# Starts in flight at once: more only queue up on two cores.
START_CONCURRENCY = 24
# The cross-sell is due a day after the start; this takes every journey past it
# (and not as far as the hour after, when a held send is asked again by itself).
PAST_DUE = timedelta(days=1, minutes=10)
# Wall-clock bounds, generous for a loaded two-core machine at 1,000 journeys.
SETTLE_SECONDS = 60 + JOURNEYS * 0.3

T = TypeVar("T")


async def bounded(jobs: list[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    gate = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    return await asyncio.gather(*(run(job) for job in jobs))


def cross_sells(sink: MailSink, journeys: set[str]) -> list[tuple[str, str]]:
    """(journey id, Message-ID) of every cross-sell email of these journeys received."""
    return [
        (str(mail.message["X-Aftercare-Journey"]), str(mail.message["Message-ID"]))
        for mail in list(sink.handler.received)
        if mail.message["X-Aftercare-Journey"] in journeys
        and mail.message["X-Aftercare-Step"] == "cross_sell"
    ]


async def ledger_rows(ops: OperationsStack, journeys: set[str]) -> list[tuple[str, str, str]]:
    """(journey id, status, provider message id) of the ledger's cross-sell rows."""
    engine = create_engine(ops.settings.resolved_database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(Message.journey_id, Message.status, Message.provider_message_id).where(
                    Message.step == "cross_sell"
                )
            )
            return [
                (row.journey_id, row.status, row.provider_message_id or "")
                for row in rows
                if row.journey_id in journeys
            ]
    finally:
        await engine.dispose()


async def start_journeys(ops: OperationsStack, client: Client, plan: PinnedPlan) -> set[str]:
    """JOURNEYS journeys on ``plan``, each of its own customer; their ids."""
    orders = [domain_order() for _ in range(JOURNEYS)]

    def start(order: Order) -> Callable[[], Awaitable[object]]:
        return lambda: client.start_workflow(
            OrderJourney.run,
            # A customer of its own: the journey need not look for their others.
            JourneyInput(order=order, plan=plan, customer_has_other_journeys=False),
            id=journey_id_for(order.order_id),
            task_queue=ops.settings.task_queue,
            search_attributes=initial_search_attributes(order),
        )

    await bounded([start(order) for order in orders], START_CONCURRENCY)
    return {journey_id_for(order.order_id) for order in orders}


async def test_a_paused_step_sends_nothing_then_each_message_once_on_resume(
    mail_sink: MailSink, tmp_path: Path
) -> None:
    plans_dir = tmp_path / "plans"
    plan_id = new_plan_id("pause-scale")
    write_plan(plans_dir, plan_id)
    async with (
        skipping_dev_server() as env,
        operations_stack(
            env.client, tmp_path / "state", mail_sink, plans_dir=plans_dir, with_worker=True
        ) as ops,
    ):
        pinned = deployment_plans(ops.settings)[plan_id]
        journeys = await start_journeys(ops, env.client, pinned)
        on_plan = pb.JourneyFilter(plan=plan_id)
        # Every journey has pinned its plan: it sleeps until the cross-sell is due.
        await eventually(
            lambda: ops.client.count_journeys(on_plan),
            lambda answer: answer.count == JOURNEYS,
            seconds=SETTLE_SECONDS,
        )

        pause = await ops.client.pause_sending(
            pb.PAUSE_SCOPE_KIND_STEP, "cross_sell", reason="wrong price in the cross-sell"
        )
        await fast_forward(env.client, visibility_query(JourneyFilter(plan=plan_id)), PAST_DUE)
        # Each cross-sell came due, was held, and its journey says so.
        held = pb.JourneyFilter(plan=plan_id, paused=True)
        await eventually(
            lambda: ops.client.count_journeys(held),
            lambda answer: answer.count == JOURNEYS,
            seconds=SETTLE_SECONDS,
        )
        assert cross_sells(mail_sink, journeys) == []
        assert not [row for row in await ledger_rows(ops, journeys) if row[1] == "sent"]

        resumed = await ops.client.resume_sending(pause.pause_id)
        assert resumed.job_id
        await eventually(
            lambda: ops.client.count_journeys(held),
            lambda answer: answer.count == 0,
            seconds=SETTLE_SECONDS,
        )
        told = await eventually(
            lambda: ops.client.get_bulk_operation(resumed.job_id),
            lambda job: job.state != pb.BULK_OPERATION_STATE_RUNNING,
        )
        assert told.state == pb.BULK_OPERATION_STATE_COMPLETED
        assert told.completed == JOURNEYS

        # Each journey sent its cross-sell exactly once: one email each, with
        # distinct Message-IDs, and one ledger row each, sent, naming that email.
        mails = cross_sells(mail_sink, journeys)
        assert Counter(journey for journey, _ in mails) == Counter(journeys)
        message_ids = {message_id for _, message_id in mails}
        assert len(message_ids) == JOURNEYS
        rows = await ledger_rows(ops, journeys)
        assert sorted(journey for journey, _, _ in rows) == sorted(journeys)
        assert {status for _, status, _ in rows} == {"sent"}
        assert {provider_id for _, _, provider_id in rows} == message_ids
