"""The send path alone, no Temporal: ``MessageActivities.send_message`` called directly
with the real renderer, ledger (SQLite in a temp dir) and SMTP mailer, into the sink."""

from __future__ import annotations

import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from temporalio.testing import ActivityEnvironment

from activities.email.smtp import SmtpConfig, SmtpMailer
from activities.send_message import MessageActivities
from engine.api import requests
from engine.api.violations import Violations
from engine.bench.workloads import MAIL_TIMEOUT_SECONDS, WARMUP_RUNS, Throughput
from engine.database.connection import create_engine, create_session_factory
from engine.database.consent import ConsentLedger
from engine.database.ledger import MessageLedger
from engine.database.migrate import upgrade_database
from engine.database.suppressions import SuppressionList
from engine.devstack.mail_sink import MailSink
from engine.samples import sample_order
from engine.settings import Settings
from engine.worker import build_channels
from workflows.model import Channel, Delivery, Order, SendMessageInput

STEP = "order_confirmation"


def _order(order_id: str, variant: int) -> Order:
    v = Violations()
    order = requests.order(v, sample_order(order_id, variant), now=datetime.now(UTC))
    v.raise_if_any()
    return order


async def send_path(sink: MailSink, sends: int) -> Throughput:
    """``sends`` order confirmations, one after another, rendered, ledgered and mailed."""
    with tempfile.TemporaryDirectory(prefix="aftercare-bench-send-") as tmp:
        settings = Settings(_env_file=None, state_dir=Path(tmp), smtp_port=sink.port)
        upgrade_database(settings.resolved_database_url)
        engine = create_engine(settings.resolved_database_url)
        mailer = SmtpMailer(SmtpConfig.from_settings(settings))
        try:
            sessions = create_session_factory(engine)
            activities = MessageActivities(
                MessageLedger(sessions),
                SuppressionList(sessions),
                ConsentLedger(sessions),
                build_channels(settings, mailer, None),
            )
            orders = [_order(f"SEND-{n}", n) for n in range(3)]
            prefix = uuid.uuid4().hex[:6]
            environment = ActivityEnvironment()
            before = len(sink.handler.received)
            started = time.perf_counter()
            for n in range(sends + WARMUP_RUNS):
                if n == WARMUP_RUNS:
                    started = time.perf_counter()
                request = SendMessageInput(
                    journey_id=f"send-{prefix}-{n}",
                    step=STEP,
                    template=STEP,
                    category="transactional",
                    channel=Channel.EMAIL,
                    order=orders[n % len(orders)],
                )
                sent = await environment.run(activities.send_message, request)
                if sent.status != Delivery.SENT:
                    raise RuntimeError(f"send path: {sent.status} {sent.detail}")
            await sink.handler.wait_for(before + sends + WARMUP_RUNS, MAIL_TIMEOUT_SECONDS)
            return Throughput(sends, 1, time.perf_counter() - started)
        finally:
            await mailer.aclose()
            await engine.dispose()
