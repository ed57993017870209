"""Journeys on the real dev server meeting a slow provider: no message goes out twice.

An SMTP server that takes 2 s per message behind one connection, with 20 (and 40)
journeys starting at once: most confirmations wait longer for the connection than
a send attempt may last, so attempts give up before handing their message over and
are retried, and attempts that outlive their timeout are not doubled by the next.
A Twilio that takes each text but answers only after the sender stopped waiting,
and reports on it much later: the ledger row waits for the report instead of being
sent again. Every Message-ID (and every text) arrives once; the ledger says how
many attempts took each message on."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from pydantic import SecretStr
from temporalio.api.enums.v1 import EventType as HistoryEventType
from temporalio.client import Client, WorkflowHandle

from engine.devstack.mail_sink import MailboxHandler, MailSink
from engine.devstack.temporal_server import TemporalDevServer
from engine.devstack.twilio_fake import new_account_sid, serve_twilio_fake
from engine.journeys.directory import initial_search_attributes
from engine.messaging.ledger import LedgerEntry, MessageLedger, idempotency_key
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.migrate import upgrade_database
from engine.platform.database.tables import MessageStatus
from engine.platform.http_server import serve_http
from engine.platform.settings import Settings
from engine.processes.dev_stack import with_dev_secrets
from engine.processes.http import http_app
from engine.processes.worker import journey_worker
from tests.support.databases import sqlite_url
from tests.support.net import free_port
from tests.support.orders import domain_order
from tests.support.waiting import eventually
from workflows.ids import journey_id_for
from workflows.order_journey import OrderJourney
from workflows.state import JourneyInput, JourneyState

STEP = "order_confirmation"
TOKEN = "slow-provider-auth-token"
Journey = WorkflowHandle[OrderJourney, JourneyState]

# A plan whose confirmation goes by text only, for the Twilio case.
TEXT_PLAN = """\
id: texts
version: 1
description: the confirmation by SMS
steps:
  - id: order_confirmation
    trigger: {on: start}
    template: order_confirmation
    category: transactional
    channels: [sms]
"""


class SlowHandler(MailboxHandler):
    """Takes two seconds to answer each message's DATA, as a loaded server does."""

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        await asyncio.sleep(2.0)
        return await super().handle_DATA(server, session, envelope)


async def start_journeys(
    client: Client, settings: Settings, count: int, *, phone: str = ""
) -> list[Journey]:
    orders = [
        domain_order(email=f"load-{uuid.uuid4().hex[:10]}@example.test", phone=phone)
        for _ in range(count)
    ]
    return list(
        await asyncio.gather(
            *(
                client.start_workflow(
                    OrderJourney.run,
                    JourneyInput(order=order),
                    id=journey_id_for(order.order_id),
                    task_queue=settings.task_queue,
                    search_attributes=initial_search_attributes(order),
                )
                for order in orders
            )
        )
    )


async def send_attempts(handle: Journey) -> int:
    """The last attempt Temporal started of the journey's send (its only activity yet)."""
    history = await handle.fetch_history()
    return max(
        event.activity_task_started_event_attributes.attempt
        for event in history.events
        if event.event_type == HistoryEventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    )


async def all_confirmed(handles: list[Journey], seconds: float) -> None:
    """Wait until every journey has settled its confirmation (sent, or not)."""

    async def pending() -> int:
        states = [await handle.query(OrderJourney.state) for handle in handles]
        return sum(1 for state in states if STEP not in state.steps)

    await eventually(pending, lambda count: count == 0, seconds=seconds, interval=1)


async def ledger_rows(database: str, handles: list[Journey], channel: str) -> list[LedgerEntry]:
    engine = create_engine(database)
    try:
        ledger = MessageLedger(create_session_factory(engine))
        rows = [await ledger.get(idempotency_key(h.id, STEP, 0, channel)) for h in handles]
    finally:
        await engine.dispose()
    assert all(row is not None for row in rows)
    return [row for row in rows if row is not None]


@asynccontextmanager
async def worker(client: Client, settings: Settings) -> AsyncIterator[None]:
    async with journey_worker(client, settings) as group, group:
        yield


@pytest.mark.parametrize("journeys", [20, 40])
async def test_a_slow_mail_server_gets_every_confirmation_once(
    journeys: int,
    temporal_server: TemporalDevServer,
    temporal_client: Client,
    tmp_path: Path,
) -> None:
    database = sqlite_url(tmp_path)
    upgrade_database(database)
    sink = MailSink("127.0.0.1", 0, None)
    sink.handler = SlowHandler(None)
    async with sink:
        settings = Settings(
            _env_file=None,
            state_dir=tmp_path,
            temporal_address=temporal_server.address,
            task_queue=f"slow-smtp-{uuid.uuid4().hex[:8]}",
            database_url=database,
            smtp_port=sink.port,
            smtp_max_connections=1,
        )
        settings = with_dev_secrets(settings)  # kept under the state dir, as `aftercare run` does
        async with worker(temporal_client, settings):
            handles = await start_journeys(temporal_client, settings, journeys)
            await all_confirmed(handles, seconds=600)
            await asyncio.sleep(3)  # room for a stray second copy to arrive; none may
        received = Counter(str(mail.message["Message-ID"]) for mail in sink.handler.received)
        attempts = [await send_attempts(handle) for handle in handles]
        for handle in handles:
            await handle.terminate("test over")

    assert len(received) == journeys
    assert set(received.values()) == {1}, "a Message-ID arrived twice"
    rows = await ledger_rows(database, handles, "email")
    assert {row.status for row in rows} == {MessageStatus.SENT}
    assert set(received) == {row.provider_message_id for row in rows}
    # Each row counts the attempts that took the message on: at least one, never more
    # than Temporal started; attempts that only waited for another took none.
    for row, started in zip(rows, attempts, strict=True):
        assert 1 <= row.attempts <= started
    # With one connection at 2 s a message, most confirmations outwaited an
    # attempt's budget and went on a later attempt.
    assert max(attempts) >= 2


async def test_a_slow_twilio_gets_every_text_once_though_its_reports_come_late(
    temporal_server: TemporalDevServer,
    temporal_client: Client,
    mail_sink: MailSink,
    tmp_path: Path,
) -> None:
    database = sqlite_url(tmp_path)
    upgrade_database(database)
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / "texts.yaml").write_text(TEXT_PLAN)
    http_port = free_port()
    async with serve_twilio_fake(
        "127.0.0.1",
        0,
        new_account_sid(),
        TOKEN,
        # Twilio takes each text at once, answers after the sender stopped waiting,
        # and reports on it long after that.
        answer_delay_seconds=4.0,
        callback_delay_seconds=20.0,
    ) as fake:
        settings = Settings(
            _env_file=None,
            state_dir=tmp_path,
            temporal_address=temporal_server.address,
            task_queue=f"slow-twilio-{uuid.uuid4().hex[:8]}",
            database_url=database,
            smtp_port=mail_sink.port,
            plans_dir=plans,
            twilio_account_sid=fake.account_sid,
            twilio_auth_token=SecretStr(TOKEN),
            twilio_from_number="+15005550006",
            twilio_api_base_url=fake.base_url,
            twilio_timeout_seconds=2.0,
            delivery_report_grace_seconds=40.0,
            http_port=http_port,
            public_base_url=f"http://127.0.0.1:{http_port}",
        )
        settings = with_dev_secrets(settings)  # kept under the state dir, as `aftercare run` does
        async with (
            http_app(settings) as app,
            serve_http(app, "127.0.0.1", http_port),
            worker(temporal_client, settings),
        ):
            handles = await start_journeys(temporal_client, settings, 20, phone="+4915112345678")
            await all_confirmed(handles, seconds=300)
            await asyncio.sleep(3)
        # One entry per text Twilio took: the ledger row its status callback names.
        texts = [str(message.status_callback) for message in fake.messages]
        for handle in handles:
            await handle.terminate("test over")

    assert len(texts) == 20
    assert set(Counter(texts).values()) == {1}, "a text was sent twice"
    rows = await ledger_rows(database, handles, "sms")
    assert {row.status for row in rows} == {MessageStatus.SENT}
    assert {row.provider_message_id for row in rows} == {m.sid for m in fake.messages}
    # The attempt that handed the text over is the only one that took it on: the
    # retries found the row held, then settled by Twilio's report.
    assert {row.attempts for row in rows} == {1}
