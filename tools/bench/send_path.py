"""The send path alone, no Temporal: ``send_message`` as the worker runs it (same
ledger, consent, cap and phone-index database, pooled SMTP sessions, Twilio SDK),
called directly, ``in_flight`` at a time: emails into the aiosmtpd sink, SMS into
the Twilio fake (whose status callbacks our HTTP app records). Its rates are what
one worker process can send at most, to set beside the journeys' throughput: the
send path is not what limits a journey."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from temporalio.testing import ActivityEnvironment

from activities.send_message import MessageActivities
from engine.cli.samples import sample_order
from engine.devstack.mail_sink import MailSink
from engine.devstack.twilio_fake import serve_twilio_fake
from engine.journeys import parsing
from engine.platform.http_server import serve_http
from engine.platform.settings import Settings
from engine.processes.dev_stack import DEV_TWILIO_SID, DEV_TWILIO_TOKEN, dev_twilio_settings
from engine.processes.http import http_app
from engine.processes.worker import message_activities
from tools.bench.workloads import MAIL_TIMEOUT_SECONDS, WARMUP_RUNS, Throughput, bounded
from tools.ports import free_port
from workflows.contracts import Delivery, SendMessageInput
from workflows.order_journey import SEND_ATTEMPT_TIMEOUT
from workflows.orders import Order
from workflows.vocabulary import Channel

STEP = "order_confirmation"


@dataclass(frozen=True)
class SendPath:
    emails: Throughput
    sms: Throughput


def _order(order_id: str, variant: int) -> Order:
    return parsing.valid_order(sample_order(order_id, variant), now=datetime.now(UTC))


async def send_path(settings: Settings, sink: MailSink, sends: int, in_flight: int) -> SendPath:
    """``sends`` order confirmations by email, then ``sends`` by SMS, each rendered,
    checked (suppression), ledgered and handed to the provider."""
    # The fake reports each text's delivery to our HTTP app, which records it in the
    # ledger, as Twilio does in production.
    http_port = free_port()
    async with serve_twilio_fake("127.0.0.1", 0, DEV_TWILIO_SID, DEV_TWILIO_TOKEN) as fake:
        with_twilio = settings.model_copy(
            update={
                **dev_twilio_settings(fake.base_url),
                "public_base_url": f"http://127.0.0.1:{http_port}",
            }
        )
        async with (
            http_app(with_twilio) as app,
            serve_http(app, "127.0.0.1", http_port),
            message_activities(with_twilio) as activities,
        ):
            orders = [_order(f"SEND-{n}", n) for n in range(3)]
            emails = await _rate(
                activities,
                orders,
                Channel.EMAIL,
                sends,
                in_flight,
                lambda: len(sink.handler.received),
                sink.handler.wait_for,
            )
            sms = await _rate(
                activities,
                orders,
                Channel.SMS,
                sends,
                in_flight,
                lambda: len(fake.messages),
                fake.wait_for,
            )
            # Untimed: every delivery report reaches the app before it stops.
            await fake.settle()
    return SendPath(emails=emails, sms=sms)


async def _rate(
    activities: MessageActivities,
    orders: list[Order],
    channel: Channel,
    sends: int,
    in_flight: int,
    received: Callable[[], int],
    arrived: Callable[[int, float], Awaitable[object]],
) -> Throughput:
    """Warm-up sends first (not counted), then ``sends`` timed until the provider
    side holds every message (``received()`` counts them, ``arrived(count, timeout)``
    waits for a count)."""
    prefix = uuid.uuid4().hex[:6]
    environment = ActivityEnvironment()
    # The journey's own attempt timeout: the test environment's default (1 s) would
    # cut sends short whenever the shared machine is busy.
    environment.info = dataclasses.replace(
        environment.info,
        start_to_close_timeout=SEND_ATTEMPT_TIMEOUT,
        schedule_to_close_timeout=SEND_ATTEMPT_TIMEOUT,
    )
    delivered = received()

    async def one(n: int) -> None:
        request = SendMessageInput(
            journey_id=f"send-{prefix}-{n}",
            step=STEP,
            template=STEP,
            category="transactional",
            channel=channel,
            order=orders[n % len(orders)],
        )
        sent = await environment.run(activities.send_message, request)
        if sent.status != Delivery.SENT:
            raise RuntimeError(f"send path, {channel}: {sent.status} {sent.detail}")

    async def batch(first: int, count: int) -> None:
        nonlocal delivered
        await bounded(count, in_flight, lambda n: one(first + n))
        delivered += count
        await arrived(delivered, MAIL_TIMEOUT_SECONDS)

    await batch(0, WARMUP_RUNS)
    started = time.perf_counter()
    await batch(WARMUP_RUNS, sends)
    return Throughput(sends, in_flight, time.perf_counter() - started)
