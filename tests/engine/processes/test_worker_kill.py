"""The worker process is SIGKILLed in the middle of a send: the message still goes out,
exactly once, when another worker takes over (real dev server, real SMTP, real ledger)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session
from temporalio.client import Client

from engine.devstack.mail_sink import MailboxHandler, MailSink
from engine.devstack.temporal_server import TemporalDevServer
from engine.journeys.directory import initial_search_attributes
from engine.messaging.ledger import MessageLedger, idempotency_key
from engine.platform.codec.runtime import converter_for
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.migrate import upgrade_database
from engine.platform.settings import Settings
from engine.processes.dev_stack import with_dev_secrets
from tests.support.databases import sqlite_url
from tests.support.orders import domain_order
from tests.support.waiting import eventually
from workflows.ids import journey_id_for
from workflows.order_journey import OrderJourney
from workflows.state import JourneyInput

AFTERCARE = Path(sys.executable).parent / "aftercare"


@dataclass
class HoldingHandler(MailboxHandler):
    """Stops in the middle of the SMTP exchange (after RCPT) for one recipient."""

    hold_for: str = ""
    held: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address == self.hold_for and not self.release.is_set():
            self.held.set()
            await self.release.wait()
            return "421 4.3.2 connection lost"  # the client is gone by now anyway
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


@asynccontextmanager
async def worker_process(env: dict[str, str]) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        str(AFTERCARE),
        "worker",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 30)


def secrets_environment(settings: Settings) -> dict[str, str]:
    """``AFTERCARE_SECRET_KEY`` and ``AFTERCARE_CODEC_KEYS`` of ``settings``, which
    ``aftercare worker`` refuses to start without."""
    assert settings.secret_key is not None
    assert settings.codec_keys is not None
    return {
        "AFTERCARE_SECRET_KEY": settings.secret_key.get_secret_value(),
        "AFTERCARE_CODEC_KEYS": settings.codec_keys.get_secret_value(),
    }


async def test_a_send_interrupted_by_sigkill_is_delivered_once(
    temporal_server: TemporalDevServer, tmp_path: Path
) -> None:
    database = sqlite_url(tmp_path)
    upgrade_database(database)
    order = domain_order(email=f"kill-{uuid.uuid4().hex[:8]}@example.test")
    handler = HoldingHandler(folder=None, hold_for=order.customer.email)
    sink = MailSink("127.0.0.1", 0, None)
    sink.handler = handler
    await sink.start()
    queue = f"kill-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERCARE_")}
    env.update(
        AFTERCARE_TEMPORAL_ADDRESS=temporal_server.address,
        AFTERCARE_TASK_QUEUE=queue,
        AFTERCARE_DATABASE_URL=database,
        AFTERCARE_SMTP_PORT=str(sink.port),
        AFTERCARE_STATE_DIR=str(tmp_path),
        AFTERCARE_LOG_FORMAT="json",
    )
    journey_id = journey_id_for(order.order_id)
    # The worker processes get the deployment's secrets (made here as the dev stack
    # makes its own) and encrypt with those keys: so do we.
    secrets = with_dev_secrets(Settings(_env_file=None, state_dir=tmp_path))
    env.update(secrets_environment(secrets))
    temporal_client = await Client.connect(
        temporal_server.address, data_converter=converter_for(secrets)
    )
    try:
        async with worker_process(env) as first:
            handle = await temporal_client.start_workflow(
                OrderJourney.run,
                JourneyInput(order=order),
                id=journey_id,
                task_queue=queue,
                search_attributes=initial_search_attributes(order),
            )
            await asyncio.wait_for(handler.held.wait(), 60)  # mid-send ...
            first.kill()  # ... SIGKILL: no cleanup, no ledger write, no completion
            await first.wait()
        handler.release.set()
        assert handler.received == []

        async with worker_process(env):
            # Temporal notices the lost attempt when it times out, and retries it.
            await eventually(
                lambda: asyncio.sleep(0, result=len(handler.received)),
                lambda count: count >= 1,
                seconds=120,
                interval=0.5,
            )
            await asyncio.sleep(2)  # room for a duplicate to show up; none may
            state = await handle.query(OrderJourney.state)
        assert len(handler.received) == 1
        assert handler.received[0].message["X-Aftercare-Step"] == "order_confirmation"
        assert [m.step for m in state.sent] == ["order_confirmation"]

        engine = create_engine(database)
        try:
            ledger = MessageLedger(create_session_factory(engine))
            entry = await ledger.get(idempotency_key(journey_id, "order_confirmation", 0))
        finally:
            await engine.dispose()
        assert entry is not None
        assert entry.status == "sent"
        assert entry.attempts == 2  # the killed attempt claimed it; the retry sent it
        await handle.cancel()
    finally:
        await sink.stop()
