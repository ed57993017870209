"""A provider's refusal never puts the customer's address or number into logs, Temporal
failures or our tables.

Real parts throughout: the send activity runs in a Temporal worker on the dev server
(so the SDK logs the failures it completes, with their exception chains), against the
SMTP sink (refusing and dropping recipients) and the Twilio fake (failing on demand),
with the ledger and suppressions on a SQLite database, and logging configured as every
process configures it. Every failure path of both channels is driven, then every log
line (as written, and as a plain handler on the root logger sees the records), every
failure message the journey would see, every ledger error and every suppression reason
is searched for the address or number."""

from __future__ import annotations

import io
import logging
import secrets
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select
from temporalio import workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.email.smtp import SmtpConfig, SmtpMailer
from activities.send_message import MessageActivities
from activities.sms.twilio_sender import TwilioConfig, TwilioSender
from engine.customers.consent import ConsentLedger
from engine.devstack.mail_sink import MailboxHandler, MailSink
from engine.devstack.twilio_fake import TwilioFake, new_account_sid, serve_twilio_fake
from engine.messaging.ledger import MessageLedger
from engine.messaging.suppressions import SuppressionList
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.migrate import upgrade_database
from engine.platform.database.tables import Message
from engine.platform.logging import configure_logging
from engine.platform.settings import Settings
from engine.processes.worker import build_channels
from tests.support.databases import sqlite_url
from tests.support.marks import TEST_MARKS
from tests.support.orders import domain_order
from workflows.contracts import SEND_MESSAGE_ACTIVITY, SendMessageInput, SentMessage
from workflows.vocabulary import Channel

TOKEN = "redaction-test-token"
FROM_NUMBER = "+15005550006"
STEP = "order_confirmation"
# Twilio's answer, in the case where it comes too late: after the sender gave up.
SHORT_TIMEOUT_SECONDS = 0.5

# The SDK's own aiohttp client still uses aiohttp's deprecated BasicAuth; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:BasicAuth is deprecated:DeprecationWarning",
    "ignore:The 'auth' parameter is deprecated:DeprecationWarning",
)


@workflow.defn(name="RedactionTestSendOnce", sandboxed=False)
class SendOnce:
    """One attempt of ``send_message``, as a journey runs it; answers what the journey
    would learn: the outcome, or every message of the failure's chain."""

    @workflow.run
    async def run(self, request: SendMessageInput) -> list[str]:
        try:
            sent = await workflow.execute_activity(
                SEND_MESSAGE_ACTIVITY,
                request,
                result_type=SentMessage,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
        except ActivityError as err:
            return failure_chain(err.cause)
        return [str(sent.status), sent.detail]


def failure_chain(err: BaseException | None) -> list[str]:
    """The failure's type and message, then its causes'."""
    texts: list[str] = []
    current = err
    while current is not None:
        kind = current.type if isinstance(current, ApplicationError) else type(current).__name__
        texts.append(f"{kind}: {current}")
        current = current.__cause__
    return texts


@dataclass
class DropsMidData(MailboxHandler):
    """The sink's handler, which also hangs up instead of answering the content of a
    message to one of ``drop_for`` (maybe delivered, as far as the client knows)."""

    drop_for: set[str] = field(default_factory=set)

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        dropped = {address.lower() for address in envelope.rcpt_tos} & self.drop_for
        if dropped and server.transport is not None:
            server.transport.close()
            return "250 OK"  # never arrives: the connection is gone
        return await super().handle_DATA(server, session, envelope)


class RawRecords(logging.Handler):
    """Every record as a plain formatter renders it (traceback and causes included),
    without the service's formatter or filter in the way."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass
class Logs:
    written: io.StringIO
    raw: RawRecords

    def text(self) -> str:
        return self.written.getvalue() + "\n".join(self.raw.lines)


@pytest.fixture
def logs() -> Iterator[Logs]:
    """Logging configured as the service configures it (JSON, DEBUG so every line
    counts) into a buffer, plus a plain handler on the root logger; restored after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    structlog_config = structlog.get_config()
    buffer = io.StringIO()
    # configure_logging binds its handler to the sys.stderr of the moment.
    real_stderr, sys.stderr = sys.stderr, buffer
    try:
        configure_logging("DEBUG", "json")
    finally:
        sys.stderr = real_stderr
    # First, so it sees each record before the service's handler redacts it in
    # place: what it finds clean, the providers' errors made clean at the source.
    raw = RawRecords()
    root.handlers.insert(0, raw)
    yield Logs(buffer, raw)
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**structlog_config)


@dataclass
class Stack:
    client: Client
    task_queue: str
    sink: MailSink
    fake: TwilioFake
    sender: TwilioSender
    database_url: str
    logs: Logs
    outcomes: list[list[str]] = field(default_factory=list)

    async def send(self, channel: Channel, *, email: str = "", phone: str = "") -> list[str]:
        order = domain_order(email=email or "nobody@example.test", phone=phone)
        request = SendMessageInput(
            journey_id=f"order-{order.order_id}",
            step=STEP,
            template=STEP,
            category="transactional",
            channel=channel,
            order=order,
        )
        outcome = await self.client.execute_workflow(
            SendOnce.run,
            request,
            id=f"redaction-{uuid.uuid4().hex}",
            task_queue=self.task_queue,
            execution_timeout=timedelta(seconds=60),
        )
        self.outcomes.append(outcome)
        return outcome

    async def stored_texts(self) -> tuple[list[str], list[str]]:
        """Every ledger error and every suppression reason, read from the database."""
        engine = create_engine(self.database_url)
        try:
            sessions = create_session_factory(engine)
            async with sessions() as session:
                errors = [e for e in await session.scalars(select(Message.error)) if e]
            reasons = [s.reason for s in await SuppressionList(sessions).entries()]
        finally:
            await engine.dispose()
        return errors, reasons


@pytest.fixture
async def stack(temporal_client: Client, tmp_path: Path, logs: Logs) -> AsyncIterator[Stack]:
    database = sqlite_url(tmp_path)
    upgrade_database(database)
    sink = MailSink("127.0.0.1", 0, None)
    sink.handler = DropsMidData(None)
    engine = create_engine(database)
    sessions = create_session_factory(engine)
    task_queue = f"redaction-{uuid.uuid4().hex[:8]}"
    async with (
        sink,
        serve_twilio_fake("127.0.0.1", 0, new_account_sid(), TOKEN) as fake,
    ):
        settings = Settings(
            _env_file=None,
            database_url=database,
            smtp_port=sink.port,
            smtp_timeout_seconds=5,
            secret_key="test-link-secret-0123456789abcdef",
            public_base_url="https://care.shop.example",
            state_dir=tmp_path,
        )
        mailer = SmtpMailer(SmtpConfig.from_settings(settings))
        sender = TwilioSender(
            TwilioConfig(
                account_sid=fake.account_sid,
                auth_token=TOKEN,
                from_number=FROM_NUMBER,
                api_base_url=fake.base_url,
            ),
            timeout_seconds=10,
        )
        activities = MessageActivities(
            MessageLedger(sessions),
            SuppressionList(sessions),
            ConsentLedger(sessions, TEST_MARKS),
            build_channels(settings, mailer, sender),
            # A maybe-delivered message holds its row this long; nothing retries here.
            report_grace=timedelta(seconds=1),
        )
        try:
            async with Worker(
                temporal_client,
                task_queue=task_queue,
                workflows=[SendOnce],
                activities=[activities.send_message],
                workflow_runner=UnsandboxedWorkflowRunner(),
            ):
                yield Stack(temporal_client, task_queue, sink, fake, sender, database, logs)
        finally:
            await sender.aclose()
            await mailer.aclose()
            await engine.dispose()


def new_address() -> str:
    return f"Jane.Doe+{secrets.token_hex(4)}@Example.test"


def new_number() -> str:
    # A German mobile number of its own per case: +49 151 and eight random digits.
    return "+49151" + "".join(secrets.choice("0123456789") for _ in range(8))


def leaks(text: str, personal: list[str]) -> list[str]:
    """The lines of ``text`` where one of the addresses or numbers occurs, in any
    spelling a provider may use (test data: shown, so a failure says where)."""
    spellings: set[str] = set()
    for value in personal:
        spellings |= {value, value.lower()}
        if "@" in value:
            spellings.add(value.split("@")[0].lower())
            spellings.add(value.split("@")[0])
        else:
            digits = value.lstrip("+")
            spellings |= {digits, digits[2:], "0" + digits[2:]}  # national: 0151...
    return [
        line
        for line in text.splitlines()
        if any(spelling.lower() in line.lower() for spelling in spellings)
    ]


async def test_email_failures_leave_no_address_behind(stack: Stack) -> None:
    deferred, refused, dropped = new_address(), new_address(), new_address()
    # Refusals that quote the recipient, as Postfix's do.
    stack.sink.handler.refusals[deferred.lower()] = (
        f"450 4.2.0 <{deferred}>: Recipient address rejected: Greylisted, try again"
    )
    stack.sink.handler.refusals[refused.lower()] = (
        f"550 5.1.1 <{refused}>: Recipient address rejected: User unknown in mailbox table"
    )

    assert isinstance(stack.sink.handler, DropsMidData)
    stack.sink.handler.drop_for.add(dropped.lower())

    temporary = await stack.send(Channel.EMAIL, email=deferred)
    permanent = await stack.send(Channel.EMAIL, email=refused)
    mid_data = await stack.send(Channel.EMAIL, email=dropped)

    # The useful facts stay: what the server said, with its codes.
    assert temporary[0].startswith("TransientDeliveryFailure: ")
    assert "450" in temporary[0]
    assert "4.2.0" in temporary[0]
    assert "Greylisted" in temporary[0]
    assert permanent[0] == "bounced"
    assert "550" in permanent[1]
    assert "5.1.1" in permanent[1]
    assert "User unknown" in permanent[1]
    assert mid_data[0].startswith("TransientDeliveryFailure: ")
    errors, reasons = await stack.stored_texts()
    assert len(errors) == 1
    assert "550 5.1.1" in errors[0]
    assert len(reasons) == 1
    assert "550 5.1.1" in reasons[0]

    personal = [deferred, refused, dropped]
    logged = stack.logs.text()
    assert "Completing activity as failed" in logged  # the SDK's own failure lines
    assert not leaks(logged, personal), "addresses in the logs"
    assert not leaks(repr(stack.outcomes), personal), "addresses in Temporal failures"
    assert not leaks(repr(errors), personal), "addresses in messages.error"
    assert not leaks(repr(reasons), personal), "addresses in suppressions.reason"


async def test_sms_failures_leave_no_number_behind(stack: Stack) -> None:
    invalid, unsubscribed, limited, broken, slow = (new_number() for _ in range(5))
    fake = stack.fake
    fake.unsubscribed.add(unsubscribed)

    # Twilio quotes the number in its 21211 text; the others quote it here too, so a
    # text that reached a log or a table unredacted would show.
    fake.fail_next(
        400, code=21211, message=f"The 'To' number {invalid} is not a valid phone number."
    )
    not_valid = await stack.send(Channel.SMS, phone=invalid)
    opted_out = await stack.send(Channel.SMS, phone=unsubscribed)
    fake.fail_next(429, retry_after=1, message=f"Too many requests for {limited}")
    too_many = await stack.send(Channel.SMS, phone=limited)
    fake.fail_next(500, message=f"Internal error while sending to {broken}")
    server_error = await stack.send(Channel.SMS, phone=broken)
    stack.sender.timeout_seconds, fake.answer_delay_seconds = SHORT_TIMEOUT_SECONDS, 2.0
    timed_out = await stack.send(Channel.SMS, phone=slow)

    assert not_valid[0] == "bounced"
    assert "21211" in not_valid[1]
    assert "not a valid phone number" in not_valid[1]
    assert opted_out[0] == "bounced"
    assert "21610" in opted_out[1]
    assert too_many[0].startswith("TransientDeliveryFailure: ")
    assert "429" in too_many[0]
    assert server_error[0].startswith("TransientDeliveryFailure: ")
    assert "500" in server_error[0]
    assert timed_out[0].startswith("TransientDeliveryFailure: ")
    assert "did not answer" in timed_out[0]
    errors, reasons = await stack.stored_texts()
    assert sorted("21211" in e for e in errors) == [False, True]
    assert len(reasons) == 2
    assert any("21610" in r for r in reasons)

    personal = [invalid, unsubscribed, limited, broken, slow]
    logged = stack.logs.text()
    assert "Completing activity as failed" in logged
    assert not leaks(logged, personal), "numbers in the logs"
    assert not leaks(repr(stack.outcomes), personal), "numbers in Temporal failures"
    assert not leaks(repr(errors), personal), "numbers in messages.error"
    assert not leaks(repr(reasons), personal), "numbers in suppressions.reason"
