"""Workers scale out and stop gracefully: two `aftercare worker` processes on one task
queue take a few hundred journeys between them and every message goes out once; one
of them SIGTERMed mid-load finishes what it holds, exits cleanly, and nothing is lost
or doubled (real dev server, real SMTP, PostgreSQL as in docker-compose.yml).

The processes share nothing but their settings: each has a state dir of its own, and
the secrets come from their environment, as a deployment gives them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from temporalio.client import Client, WorkflowHandle

from engine.devstack.mail_sink import MailboxHandler, MailSink, ReceivedMail
from engine.devstack.temporal_server import TemporalDevServer
from engine.journeys.directory import initial_search_attributes
from engine.messaging.ledger import MessageLedger, idempotency_key
from engine.platform.codec.runtime import converter_for
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.migrate import upgrade_database
from engine.platform.settings import Settings
from engine.processes.dev_stack import with_dev_secrets
from tests.support.databases import postgres_available, postgres_database
from tests.support.orders import domain_order
from tests.support.waiting import eventually
from workflows.ids import journey_id_for
from workflows.order_journey import OrderJourney
from workflows.state import JourneyInput

pytestmark = pytest.mark.postgres

AFTERCARE = Path(sys.executable).parent / "aftercare"
JOURNEYS = 300
CONFIRMATION = "order_confirmation"
# Client calls in flight at once (starts, cancels): the dev server refuses far more.
IN_FLIGHT = 40
GRACE_SECONDS = 20

Handle = WorkflowHandle[Any, Any]


@dataclass
class SlowHandler(MailboxHandler):
    """Takes ``delay`` seconds over each message's DATA, so that sends are in flight
    whenever a worker is asked to stop; holds the first attempt to ``hold_for``
    before its DATA (nothing handed over yet) until ``release``."""

    delay: float = 0.0
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
        if address == self.hold_for and not self.held.is_set():
            self.held.set()
            await self.release.wait()
            return "421 4.3.2 closing"  # its sender gave up on it long ago
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def database() -> Iterator[str]:
    if not postgres_available():
        pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432")
    with postgres_database() as url:
        upgrade_database(url)
        yield url


@dataclass
class WorkerProcess:
    process: asyncio.subprocess.Process
    log: Path

    def lines(self) -> list[dict[str, object]]:
        """The worker's JSON log lines so far."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
        return found

    def events(self) -> list[str]:
        return [str(line.get("event", "")) for line in self.lines()]

    def sends(self, events: list[str] | None = None) -> int:
        """How many sends the worker recorded (the activity logs "message sent (...)")."""
        seen = self.events() if events is None else events
        return sum(event.startswith("message sent") for event in seen)


@dataclass
class Deployment:
    """What the workers run on: the dev server, a queue, PostgreSQL, an SMTP sink."""

    server: TemporalDevServer
    database: str
    sink: MailSink
    handler: SlowHandler
    secrets: Settings
    queue: str
    folder: Path

    def environment(self, name: str, **more: str) -> dict[str, str]:
        """One worker's environment: the deployment's settings and secrets, and a state
        dir of its own (nothing is shared through files)."""
        assert self.secrets.secret_key is not None
        assert self.secrets.codec_keys is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERCARE_")}
        env.update(
            AFTERCARE_TEMPORAL_ADDRESS=self.server.address,
            AFTERCARE_TASK_QUEUE=self.queue,
            AFTERCARE_DATABASE_URL=self.database,
            AFTERCARE_SMTP_PORT=str(self.sink.port),
            AFTERCARE_SECRET_KEY=self.secrets.secret_key.get_secret_value(),
            AFTERCARE_CODEC_KEYS=self.secrets.codec_keys.get_secret_value(),
            AFTERCARE_STATE_DIR=str(self.folder / name / "state"),
            AFTERCARE_WORKER_SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS),
            AFTERCARE_LOG_FORMAT="json",
            AFTERCARE_LOG_LEVEL="INFO",
        )
        env.update(more)
        return env

    @asynccontextmanager
    async def worker(self, name: str, **more: str) -> AsyncIterator[WorkerProcess]:
        """``aftercare worker`` started and running (its "worker running" line seen)."""
        folder = self.folder / name
        folder.mkdir(parents=True)
        log = folder / "worker.log"
        with log.open("wb") as output:
            process = await asyncio.create_subprocess_exec(
                str(AFTERCARE),
                "worker",
                env=self.environment(name, **more),
                cwd=folder,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=output,
            )
        worker = WorkerProcess(process, log)
        try:
            await eventually(
                lambda: asyncio.sleep(0, result=worker.events()),
                lambda events: "worker running" in events or process.returncode is not None,
                seconds=120,
                interval=0.2,
            )
            assert process.returncode is None, log.read_text()
            yield worker
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), GRACE_SECONDS + 30)
                except TimeoutError:
                    process.kill()
                    await process.wait()

    def confirmations(self) -> list[ReceivedMail]:
        return [
            mail
            for mail in self.handler.received
            if str(mail.message["X-Aftercare-Journey"]).startswith(f"order-{self.queue}-")
            and mail.message["X-Aftercare-Step"] == CONFIRMATION
        ]


@pytest.fixture
async def deployment(
    temporal_server: TemporalDevServer, database: str, tmp_path: Path
) -> AsyncIterator[Deployment]:
    handler = SlowHandler(None, delay=0.5)
    sink = MailSink("127.0.0.1", 0, None)
    sink.handler = handler
    await sink.start()
    try:
        yield Deployment(
            server=temporal_server,
            database=database,
            sink=sink,
            handler=handler,
            # Made as `aftercare secrets init` would, handed over through the environment.
            secrets=with_dev_secrets(Settings(_env_file=None, state_dir=tmp_path / "secrets")),
            queue=f"scale-{uuid.uuid4().hex[:8]}",
            folder=tmp_path,
        )
    finally:
        await sink.stop()


async def start_journeys(deployment: Deployment, client: Client) -> list[Handle]:
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def start(number: int) -> Handle:
        order = domain_order(
            order_id=f"{deployment.queue}-{number:04d}",
            email=f"scale-{number}@example.test",
        )
        # Placed now: no later step of the plan is due yet.
        order = dataclasses.replace(order, placed_at=datetime.now(UTC))
        async with gate:
            return await client.start_workflow(
                OrderJourney.run,
                JourneyInput(order=order),
                id=journey_id_for(order.order_id),
                task_queue=deployment.queue,
                search_attributes=initial_search_attributes(order),
            )

    return list(await asyncio.gather(*(start(n) for n in range(JOURNEYS))))


async def cancel_all(handles: list[Handle]) -> None:
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def cancel(handle: Handle) -> None:
        async with gate:
            await handle.cancel()

    await asyncio.gather(*(cancel(handle) for handle in handles))


async def every_confirmation_once(deployment: Deployment) -> None:
    """Each journey's confirmation arrived exactly once, and the ledger has it sent."""
    mails = deployment.confirmations()
    journeys = Counter(str(mail.message["X-Aftercare-Journey"]) for mail in mails)
    message_ids = Counter(str(mail.message["Message-ID"]) for mail in mails)
    assert len(journeys) == JOURNEYS
    assert [j for j, count in journeys.items() if count > 1] == []
    assert [m for m, count in message_ids.items() if count > 1] == []
    assert len(message_ids) == JOURNEYS
    engine = create_engine(deployment.database)
    try:
        ledger = MessageLedger(create_session_factory(engine))
        statuses: Counter[str] = Counter()
        for number in range(JOURNEYS):
            journey = journey_id_for(f"{deployment.queue}-{number:04d}")
            entry = await ledger.get(idempotency_key(journey, CONFIRMATION, 0))
            statuses[entry.status if entry else "missing"] += 1
    finally:
        await engine.dispose()
    assert statuses == Counter({"sent": JOURNEYS})


async def test_two_worker_processes_share_the_load_and_send_each_message_once(
    deployment: Deployment,
) -> None:
    client = await Client.connect(
        deployment.server.address, data_converter=converter_for(deployment.secrets)
    )
    async with AsyncExitStack() as running:
        first = await running.enter_async_context(deployment.worker("first"))
        second = await running.enter_async_context(deployment.worker("second"))
        handles = await start_journeys(deployment, client)
        await eventually(
            lambda: asyncio.sleep(0, result=len(deployment.confirmations())),
            lambda count: count >= JOURNEYS,
            seconds=300,
            interval=0.5,
        )
        await cancel_all(handles)
        await asyncio.sleep(2)  # room for a repeat to show up; none may
        # Both processes took part.
        sent_by = [worker.sends() for worker in (first, second)]
    assert sum(sent_by) == JOURNEYS, sent_by
    assert min(sent_by) > 0, sent_by
    await every_confirmation_once(deployment)


async def test_a_worker_stopped_mid_load_finishes_its_sends_and_nothing_is_lost_or_doubled(
    deployment: Deployment,
) -> None:
    client = await Client.connect(
        deployment.server.address, data_converter=converter_for(deployment.secrets)
    )
    async with AsyncExitStack() as running:
        stopping = await running.enter_async_context(deployment.worker("stopping"))
        await running.enter_async_context(deployment.worker("staying"))
        handles = await start_journeys(deployment, client)
        await eventually(
            lambda: asyncio.sleep(0, result=len(deployment.confirmations())),
            lambda count: count >= JOURNEYS // 5,
            seconds=300,
            interval=0.1,
        )
        loop = asyncio.get_running_loop()
        asked = loop.time()
        stopping.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(stopping.process.wait(), GRACE_SECONDS + 30)
        took = loop.time() - asked
        assert code == 0, stopping.log.read_text()[-3000:]
        events = stopping.events()
        assert events[-1] == "worker stopped"
        # It stopped taking work at once and let the sends it held finish: they were
        # recorded after it was asked to stop, within its grace.
        finished_late = stopping.sends(events[events.index("worker stopping") :])
        assert finished_late > 0, events[-20:]
        assert took < GRACE_SECONDS + 10
        assert len(deployment.confirmations()) < JOURNEYS  # mid-load indeed

        # The other worker takes everything that is left.
        await eventually(
            lambda: asyncio.sleep(0, result=len(deployment.confirmations())),
            lambda count: count >= JOURNEYS,
            seconds=300,
            interval=0.5,
        )
        await cancel_all(handles)
        await asyncio.sleep(2)
    await every_confirmation_once(deployment)


async def test_a_send_still_held_when_the_grace_runs_out_is_handed_back_to_another_worker(
    deployment: Deployment,
) -> None:
    """A send whose SMTP exchange hangs before the message is handed over: the stopping
    worker waits its grace, cancels it and exits; Temporal gives the attempt to the
    other worker, which sends the message, once."""
    grace = 2
    deployment.handler.delay = 0
    order = dataclasses.replace(
        domain_order(order_id=f"{deployment.queue}-held", email="held@example.test"),
        placed_at=datetime.now(UTC),
    )
    deployment.handler.hold_for = order.customer.email
    journey_id = journey_id_for(order.order_id)
    client = await Client.connect(
        deployment.server.address, data_converter=converter_for(deployment.secrets)
    )
    loop = asyncio.get_running_loop()
    async with AsyncExitStack() as running:
        stopping = await running.enter_async_context(
            deployment.worker("stopping", AFTERCARE_WORKER_SHUTDOWN_GRACE_SECONDS=str(grace))
        )
        handle = await client.start_workflow(
            OrderJourney.run,
            JourneyInput(order=order),
            id=journey_id,
            task_queue=deployment.queue,
            search_attributes=initial_search_attributes(order),
        )
        await asyncio.wait_for(deployment.handler.held.wait(), 60)
        await running.enter_async_context(deployment.worker("staying"))
        asked = loop.time()
        stopping.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(stopping.process.wait(), grace + 30)
        stopped_after = loop.time() - asked
        assert code == 0, stopping.log.read_text()[-3000:]
        assert grace <= stopped_after < grace + 10
        assert stopping.sends() == 0
        assert f"will wait 0:00:0{grace} before cancelling activities" in " ".join(
            stopping.events()
        )

        mails = await eventually(
            lambda: asyncio.sleep(0, result=deployment.confirmations()),
            lambda found: len(found) >= 1,
            seconds=120,
            interval=0.2,
        )
        handed_back_after = loop.time() - asked
        deployment.handler.release.set()
        await asyncio.sleep(2)  # room for a repeat to show up; none may
        assert len(deployment.confirmations()) == 1
        assert mails[0].message["X-Aftercare-Journey"] == journey_id
        await handle.cancel()
    engine = create_engine(deployment.database)
    try:
        entry = await MessageLedger(create_session_factory(engine)).get(
            idempotency_key(journey_id, CONFIRMATION, 0)
        )
    finally:
        await engine.dispose()
    assert entry is not None
    assert entry.status == "sent"
    assert entry.attempts == 2  # the cancelled attempt claimed it; the retry sent it
    # Handed back, not left to time out: well before the send's 20 s heartbeat timeout.
    assert handed_back_after < grace + 8, handed_back_after
