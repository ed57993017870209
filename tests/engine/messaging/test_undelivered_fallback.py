"""A text Twilio reports undelivered falls back to the step's next channel, once, while
the step is timely, through the parts as ``aftercare run`` wires them: the worker texts
through the Twilio fake, the fake posts its signed status callbacks to the real HTTP
app, which signals the journey; the journey sends the email. Real dev server, SQLite."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr
from temporalio.client import Client

from engine.devstack.mail_sink import MailSink, ReceivedMail
from engine.devstack.temporal_server import TemporalDevServer
from engine.devstack.twilio_fake import TwilioFake, new_account_sid, serve_twilio_fake
from engine.journeys.directory import JourneyDirectory
from engine.platform.database.migrate import upgrade_database
from engine.platform.http_server import serve_http
from engine.platform.settings import Settings
from engine.platform.temporal.connection import connect
from engine.processes.dev_stack import with_dev_secrets
from engine.processes.http import http_app
from engine.processes.worker import journey_worker
from tests.support.databases import sqlite_url
from tests.support.net import free_port
from tests.support.orders import domain_order
from tests.support.waiting import eventually
from workflows.contracts import UndeliveredMessage
from workflows.state import JourneyState
from workflows.vocabulary import Channel

TOKEN = "undelivered-test-auth-token"
PLAN = """
id: text_first
version: 1
description: The confirmation by text, by email when the text cannot be delivered.
quiet_hours: null
steps:
  - id: order_confirmation
    trigger: {{on: start}}
    category: transactional
    template: order_confirmation
    channels: [sms, email]
{stale_after}
"""


@dataclass
class Stack:
    twilio: TwilioFake
    directory: JourneyDirectory
    sink: MailSink
    client: Client

    def mails(self, journey_id: str) -> list[ReceivedMail]:
        return [
            m for m in self.sink.handler.received if m.message["X-Aftercare-Journey"] == journey_id
        ]


@asynccontextmanager
async def stack(
    server: TemporalDevServer,
    temporal: Client,
    sink: MailSink,
    tmp_path: Path,
    *,
    stale_after: str = "",
    callback_delay: float = 0.0,
) -> AsyncIterator[Stack]:
    database = sqlite_url(tmp_path)
    upgrade_database(database)
    plans = tmp_path / "plans"
    plans.mkdir()
    extra = f"    stale_after: {stale_after}" if stale_after else ""
    (plans / "text_first.yaml").write_text(PLAN.format(stale_after=extra))
    http_port = free_port()
    account = new_account_sid()
    async with serve_twilio_fake(
        "127.0.0.1", 0, account, TOKEN, callback_delay_seconds=callback_delay
    ) as twilio:
        settings = with_dev_secrets(
            Settings(
                _env_file=None,
                state_dir=tmp_path,
                temporal_address=server.address,
                task_queue=f"undelivered-{uuid.uuid4().hex[:8]}",
                database_url=database,
                smtp_port=sink.port,
                plans_dir=plans,
                twilio_account_sid=account,
                twilio_auth_token=SecretStr(TOKEN),
                twilio_from_number="+15005550006",
                twilio_api_base_url=twilio.base_url,
                http_port=http_port,
                public_base_url=f"http://127.0.0.1:{http_port}",
            )
        )
        # The worker's client decodes what the HTTP app's client encodes: both take
        # the keys of the settings, as in a deployment.
        client = await connect(settings)
        async with (
            journey_worker(client, settings) as worker,
            worker,
            http_app(settings) as app,
            serve_http(app, "127.0.0.1", http_port),
        ):
            yield Stack(twilio, JourneyDirectory(client, settings.task_queue), sink, client)


def new_number() -> str:
    return f"+491515{uuid.uuid4().int % 10**7:07d}"


async def state_of(temporal: Client, journey_id: str) -> JourneyState:
    state: JourneyState = await temporal.get_workflow_handle(journey_id).query(
        "state", result_type=JourneyState
    )
    return state


async def test_an_undelivered_text_falls_back_to_email_once(
    temporal_server: TemporalDevServer, temporal_client: Client, mail_sink: MailSink, tmp_path: Path
) -> None:
    async with stack(temporal_server, temporal_client, mail_sink, tmp_path) as parts:
        number = new_number()
        parts.twilio.undeliverable.add(number)
        order = domain_order(phone=number, email=f"{uuid.uuid4().hex[:8]}@example.test")
        journey_id = (await parts.directory.start(order)).journey_id

        state = await eventually(
            lambda: state_of(parts.client, journey_id),
            lambda s: any(m.channel == Channel.EMAIL for m in s.sent),
        )
        [mail] = parts.mails(journey_id)
        assert mail.message["X-Aftercare-Step"] == "order_confirmation"
        text = next(m for m in state.sent if m.channel == Channel.SMS)
        assert "order_confirmation" in state.fallen_back[0]

        # Twilio reporting it again (``failed`` after ``undelivered``) sends nothing more.
        again = UndeliveredMessage(
            step="order_confirmation",
            iteration=0,
            channel=Channel.SMS,
            message_id=text.message_id,
            status="failed",
        )
        await parts.directory.report_undelivered(journey_id, again)
        await eventually(
            lambda: state_of(parts.client, journey_id),
            lambda s: any("no fallback" in entry.detail for entry in s.timeline),
        )
        assert len(parts.mails(journey_id)) == 1
        assert len(parts.twilio.messages) == 1
        await parts.client.get_workflow_handle(journey_id).cancel()


async def test_a_text_reported_undelivered_too_late_does_not_fall_back(
    temporal_server: TemporalDevServer, temporal_client: Client, mail_sink: MailSink, tmp_path: Path
) -> None:
    # The step is timely for one second; the fake reports after two (sent, then
    # undelivered, each after the delay).
    async with stack(
        temporal_server,
        temporal_client,
        mail_sink,
        tmp_path,
        stale_after="PT1S",
        callback_delay=1.5,
    ) as parts:
        number = new_number()
        parts.twilio.undeliverable.add(number)
        order = domain_order(phone=number, email=f"{uuid.uuid4().hex[:8]}@example.test")
        journey_id = (await parts.directory.start(order)).journey_id
        state = await eventually(
            lambda: state_of(parts.client, journey_id),
            lambda s: any("too late" in entry.detail for entry in s.timeline),
        )
        assert [m.channel for m in state.sent] == [Channel.SMS]
        assert parts.mails(journey_id) == []
        await parts.client.get_workflow_handle(journey_id).cancel()
