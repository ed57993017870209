"""An operator's cancel that lands while an activity is in flight (here: a send the
mail server keeps deferring, so the activity waits between attempts) ends the
journey as cancelled. It used to be taken for a failed send: the journey noted
"not delivered" and carried on to its next steps."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import CancelledError

from engine.devstack.mail_sink import MailSink
from tests.support.orders import domain_order
from tests.support.virtual_time import VirtualJourneys
from tests.support.waiting import eventually
from workflows.order_journey import OrderJourney
from workflows.vocabulary import Stage


async def test_a_cancel_during_a_send_ends_the_journey_as_cancelled(
    journeys: VirtualJourneys, mail_sink: MailSink
) -> None:
    email = f"deferred-{uuid.uuid4().hex[:8]}@example.test"
    mail_sink.handler.refusals[email] = "451 4.2.0 mailbox busy, try later"
    try:
        handle = await journeys.start(domain_order(email=email))

        async def send_attempts() -> int:
            description = await handle.describe()
            pending = description.raw_description.pending_activities
            return max((activity.attempt for activity in pending), default=0)

        # The confirmation's send has been refused at least once: the activity is
        # pending, waiting for its next attempt.
        await eventually(send_attempts, lambda attempts: attempts >= 2, seconds=60)
        await handle.cancel()

        with pytest.raises(WorkflowFailureError) as ended:
            # Bounded: a journey that swallowed the cancel would run on for days.
            await asyncio.wait_for(handle.result(), 120)
        assert isinstance(ended.value.cause, CancelledError)
        assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
        state = await handle.query(OrderJourney.state)
        assert state.stage == Stage.STOPPED
        assert state.timeline[-1].detail.startswith("journey cancelled by an operator")
        assert not any("not delivered" in entry.detail for entry in state.timeline)
        assert state.scheduled == []
        assert journeys.mails(handle.id) == []
    finally:
        del mail_sink.handler.refusals[email]
